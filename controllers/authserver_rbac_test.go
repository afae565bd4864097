package controllers

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func TestServerBindings(t *testing.T) {
	o := ServerRBAC{ReadClusterRole: "read", RevocationsClusterRole: "revoke", ClusterScopeNamespaces: []string{"authframework-system"}}
	revoke := func(ns string) binding {
		return binding{Namespace: ns, Name: "authframework-server-revocations:auth", ClusterRole: "revoke"}
	}
	read := func(asNS, ns string) binding {
		return binding{Namespace: ns, Name: "authframework-server:" + asNS + ":auth", ClusterRole: "read"}
	}
	for _, tc := range []struct {
		name        string
		ns          string
		watch       []string
		opts        ServerRBAC
		want        []binding
		wantRefusal string
	}{
		{name: "trusted namespace, all namespaces: a ClusterRoleBinding", ns: "authframework-system",
			want: []binding{revoke("authframework-system"), read("authframework-system", "")}},
		{name: "trusted namespace, listed namespaces: a RoleBinding in each", ns: "authframework-system", watch: []string{"team-a", "team-b"},
			want: []binding{revoke("authframework-system"), read("authframework-system", "team-a"), read("authframework-system", "team-b")}},
		{name: "own namespace only: allowed anywhere", ns: "team-a", watch: []string{"team-a"},
			want: []binding{revoke("team-a"), read("team-a", "team-a")}},
		{name: "untrusted namespace, all namespaces: own namespace only, refused", ns: "team-a",
			want: []binding{revoke("team-a"), read("team-a", "team-a")}, wantRefusal: "may only read its own namespace; set spec.watchNamespaces to [team-a]"},
		{name: "untrusted namespace reaching into another: refused for that one", ns: "team-a", watch: []string{"team-a", "kube-system"},
			want: []binding{revoke("team-a"), read("team-a", "team-a")}, wantRefusal: "not kube-system"},
		{name: "no namespace trusted", ns: "authframework-system", opts: ServerRBAC{ReadClusterRole: "read", RevocationsClusterRole: "revoke"},
			want: []binding{revoke("authframework-system"), read("authframework-system", "authframework-system")}, wantRefusal: "none are"},
		{name: "binding switched off", ns: "authframework-system", opts: ServerRBAC{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := o
			if tc.opts.ReadClusterRole != "" || tc.name == "binding switched off" {
				opts = tc.opts
			}
			as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{WatchNamespaces: tc.watch}}
			got, refused := serverBindings(as, opts)
			if !slices.Equal(tc.want, got) {
				t.Errorf("bindings\n got %+v\nwant %+v", got, tc.want)
			}
			if (tc.wantRefusal == "") != (refused == "") || !strings.Contains(refused, tc.wantRefusal) {
				t.Errorf("refusal %q, want one containing %q", refused, tc.wantRefusal)
			}
		})
	}
}

func TestTokenReviewBinding(t *testing.T) {
	on := ServerRBAC{ReadClusterRole: "read", RevocationsClusterRole: "revoke", TokenReviewClusterRole: "review"}
	off := on
	off.TokenReviewClusterRole = ""
	exchange := &authv1alpha1.TokenExchangeSpec{Audience: "authframework"}
	crb := binding{Name: "authframework-server-tokenreview:team-a:auth", ClusterRole: "review"}
	for _, tc := range []struct {
		name        string
		exchange    *authv1alpha1.TokenExchangeSpec
		opts        ServerRBAC
		want        []binding
		wantRefusal string
	}{
		{name: "no token exchange: no binding, even when allowed", opts: on},
		{name: "token exchange, allowed: a ClusterRoleBinding (TokenReviews are cluster-scoped)", exchange: exchange, opts: on, want: []binding{crb}},
		{name: "token exchange, not allowed by the install: none, and why", exchange: exchange, opts: off, wantRefusal: "tokenExchange.enabled=true"},
		{name: "the operator binds nothing at all", exchange: exchange, opts: ServerRBAC{TokenReviewClusterRole: "review"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{TokenExchange: tc.exchange}}
			got, refused := tokenReviewBinding(as, tc.opts)
			if !slices.Equal(tc.want, got) {
				t.Errorf("bindings\n got %+v\nwant %+v", got, tc.want)
			}
			if (tc.wantRefusal == "") != (refused == "") || !strings.Contains(refused, tc.wantRefusal) {
				t.Errorf("refusal %q, want one containing %q", refused, tc.wantRefusal)
			}
		})
	}
}
