package controllers

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func TestKubernetesServiceAccountKeys(t *testing.T) {
	sa := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sync"},
		Spec: authv1alpha1.ServiceAccountSpec{KubernetesServiceAccounts: []authv1alpha1.KubernetesServiceAccountRef{
			{Name: "worker"}, {Namespace: "batch", Name: "cron"}, {Namespace: "team", Name: "worker"}, {Name: "api"},
		}}}
	// The namespace defaults to the account's; the same one named twice
	// (once with, once without the namespace) is one key.
	want := []string{"batch/cron", "team/api", "team/worker"}
	if got := sa.KubernetesServiceAccountKeys(); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

func TestKubernetesServiceAccountsDecision(t *testing.T) {
	const (
		mapped   = authv1alpha1.KubernetesServiceAccountMapped
		notFound = authv1alpha1.KubernetesServiceAccountNotFound
		conflict = authv1alpha1.KubernetesServiceAccountConflict
	)
	many := []string{"a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "a/8", "a/9"}
	tests := []struct {
		name       string
		in         kubernetesIdentities
		wantStates []authv1alpha1.KubernetesServiceAccountState
		wantAlso   [][]string
		wantOK     bool
		wantReason string
		wantInMsg  []string
	}{
		{name: "all exist, listed here only",
			in:         kubernetesIdentities{keys: []string{"team/api", "team/worker"}, exists: map[string]bool{"team/api": true, "team/worker": true}},
			wantStates: []authv1alpha1.KubernetesServiceAccountState{mapped, mapped}, wantAlso: [][]string{nil, nil},
			wantOK: true, wantReason: authv1alpha1.ReasonKubernetesServiceAccountsMapped, wantInMsg: []string{"team/api, team/worker"}},
		{name: "one missing: a warning, not a conflict",
			in:         kubernetesIdentities{keys: []string{"team/api", "team/worker"}, exists: map[string]bool{"team/api": true}},
			wantStates: []authv1alpha1.KubernetesServiceAccountState{mapped, notFound}, wantAlso: [][]string{nil, nil},
			wantReason: authv1alpha1.ReasonKubernetesServiceAccountNotFound, wantInMsg: []string{"do not exist", "team/worker", "once they are created"}},
		{name: "listed by another account: conflict names it",
			in: kubernetesIdentities{keys: []string{"team/api"}, exists: map[string]bool{"team/api": true},
				others: map[string][]string{"team/api": {"other/reader"}}},
			wantStates: []authv1alpha1.KubernetesServiceAccountState{conflict}, wantAlso: [][]string{{"other/reader"}},
			wantReason: authv1alpha1.ReasonKubernetesServiceAccountConflict, wantInMsg: []string{"team/api (also listed by ServiceAccount other/reader)", "refuses their token exchanges"}},
		{name: "conflict outranks missing, and both are said",
			in: kubernetesIdentities{keys: []string{"team/api", "team/gone"}, exists: map[string]bool{},
				others: map[string][]string{"team/api": {"other/reader"}}},
			wantStates: []authv1alpha1.KubernetesServiceAccountState{conflict, notFound}, wantAlso: [][]string{{"other/reader"}, nil},
			wantReason: authv1alpha1.ReasonKubernetesServiceAccountConflict, wantInMsg: []string{"other/reader", "do not exist", "team/gone"}},
		{name: "a missing one listed twice is a conflict",
			in:         kubernetesIdentities{keys: []string{"team/api"}, others: map[string][]string{"team/api": {"x/y"}}},
			wantStates: []authv1alpha1.KubernetesServiceAccountState{conflict}, wantAlso: [][]string{{"x/y"}},
			wantReason: authv1alpha1.ReasonKubernetesServiceAccountConflict},
		{name: "at most 8 others are named",
			in:         kubernetesIdentities{keys: []string{"team/api"}, exists: map[string]bool{"team/api": true}, others: map[string][]string{"team/api": many}},
			wantStates: []authv1alpha1.KubernetesServiceAccountState{conflict}, wantAlso: [][]string{many[:8]},
			wantReason: authv1alpha1.ReasonKubernetesServiceAccountConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, ok, reason, msg := kubernetesServiceAccountsDecision(tt.in)
			var states []authv1alpha1.KubernetesServiceAccountState
			var also [][]string
			for i, e := range entries {
				if key := authv1alpha1.KubernetesServiceAccountKey(e.Namespace, e.Name); key != tt.in.keys[i] {
					t.Errorf("entry %d is %s, want %s", i, key, tt.in.keys[i])
				}
				states, also = append(states, e.State), append(also, e.AlsoListedBy)
			}
			if !slices.Equal(states, tt.wantStates) || !reflect.DeepEqual(also, tt.wantAlso) {
				t.Errorf("states %v also %v, want %v %v", states, also, tt.wantStates, tt.wantAlso)
			}
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("condition %v/%s, want %v/%s", ok, reason, tt.wantOK, tt.wantReason)
			}
			for _, want := range tt.wantInMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
}
