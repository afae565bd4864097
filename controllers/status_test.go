package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func cond(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: typ + " " + reason}
}

// TestReadyTables: each kind's Ready follows a failed step first, then the
// first False row of its table, advisory reasons excepted.
func TestReadyTables(t *testing.T) {
	const (
		T = metav1.ConditionTrue
		F = metav1.ConditionFalse
		U = metav1.ConditionUnknown
	)
	a := authv1alpha1.ReasonReconciled
	tests := []struct {
		name       string
		table      []readyRow
		conds      []metav1.Condition
		failure    *stepError
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"policy ready", tokenPolicyReady, []metav1.Condition{cond(authv1alpha1.ConditionKeysReady, T, a)}, nil, T, "ok"},
		{"policy key write refused", tokenPolicyReady, []metav1.Condition{cond(authv1alpha1.ConditionKeysReady, F, authv1alpha1.ReasonKeySecretWriteFailed)}, nil, F, authv1alpha1.ReasonKeySecretWriteFailed},
		{"policy rotation is not readiness", tokenPolicyReady, []metav1.Condition{cond(authv1alpha1.ConditionKeysReady, T, a), cond(authv1alpha1.ConditionKeysRotated, F, "x")}, nil, T, "ok"},
		{"account ready", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionPolicyResolved, T, a), cond(authv1alpha1.ConditionRolesResolved, T, a), cond(authv1alpha1.ConditionCredentialsReady, T, a)}, nil, T, "ok"},
		{"account policy first", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionRolesResolved, F, authv1alpha1.ReasonRoleNotFound), cond(authv1alpha1.ConditionPolicyResolved, F, authv1alpha1.ReasonPolicyNotFound)}, nil, F, authv1alpha1.ReasonPolicyNotFound},
		{"account role missing", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionPolicyResolved, T, a), cond(authv1alpha1.ConditionRolesResolved, F, authv1alpha1.ReasonRoleNotFound)}, nil, F, authv1alpha1.ReasonRoleNotFound},
		{"account token too large is advisory", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionTokenIssuable, F, authv1alpha1.ReasonTokenTooLarge)}, nil, T, "ok"},
		{"account Kubernetes service account missing is advisory", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionKubernetesServiceAccountsResolved, F, authv1alpha1.ReasonKubernetesServiceAccountNotFound)}, nil, T, "ok"},
		{"account Kubernetes service account conflict is advisory", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionKubernetesServiceAccountsResolved, F, authv1alpha1.ReasonKubernetesServiceAccountConflict)}, nil, T, "ok"},
		{"account step failure beats conditions", serviceAccountReady, []metav1.Condition{cond(authv1alpha1.ConditionRolesResolved, F, authv1alpha1.ReasonRoleNotFound)},
			&stepError{kind: stalling, reason: authv1alpha1.ReasonInvalidSpec}, F, authv1alpha1.ReasonInvalidSpec},
		{"server cross-namespace is advisory", authServerReady, []metav1.Condition{cond(authv1alpha1.ConditionPermissionsGranted, F, authv1alpha1.ReasonCrossNamespaceNotAllowed), cond(authv1alpha1.ConditionAvailable, T, "AllAvailable")}, nil, T, "ok"},
		{"server token review not granted is advisory", authServerReady, []metav1.Condition{cond(authv1alpha1.ConditionPermissionsGranted, F, authv1alpha1.ReasonTokenReviewNotGranted), cond(authv1alpha1.ConditionAvailable, T, "AllAvailable")}, nil, T, "ok"},
		{"server not managed", authServerReady, []metav1.Condition{cond(authv1alpha1.ConditionPermissionsGranted, U, authv1alpha1.ReasonNotManaged)}, nil, T, "ok"},
		{"server role missing", authServerReady, []metav1.Condition{cond(authv1alpha1.ConditionPermissionsGranted, F, authv1alpha1.ReasonClusterRoleMissing), cond(authv1alpha1.ConditionAvailable, F, "CapacityLost")}, nil, F, authv1alpha1.ReasonClusterRoleMissing},
		{"server capacity lost", authServerReady, []metav1.Condition{cond(authv1alpha1.ConditionPermissionsGranted, T, authv1alpha1.ReasonGranted), cond(authv1alpha1.ConditionAvailable, F, "CapacityLost")}, nil, F, "CapacityLost"},
		{"role invalid", nil, nil, &stepError{kind: stalling, reason: authv1alpha1.ReasonInvalidSpec}, F, authv1alpha1.ReasonInvalidSpec},
		{"role ready", nil, nil, nil, T, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, reason, _ := summariseReady(tt.table, tt.conds, tt.failure, "ok", "fine")
			if status != tt.wantStatus || reason != tt.wantReason {
				t.Errorf("Ready %s/%s, want %s/%s", status, reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

// TestResultOf: stalling keeps the schedule without an error, waiting
// requeues at the earlier time, transient and untyped errors are returned;
// conflicts are not failures of a step.
func TestResultOf(t *testing.T) {
	sched := ctrl.Result{RequeueAfter: time.Hour}
	plain := errors.New("boom")
	tests := []struct {
		name    string
		err     error
		want    ctrl.Result
		wantErr bool
	}{
		{"ok", nil, sched, false},
		{"stalled", stalled("", authv1alpha1.ReasonInvalidSpec, "x"), sched, false},
		{"waiting sooner", waitFor("", authv1alpha1.ReasonClusterRoleMissing, "x", time.Minute), ctrl.Result{RequeueAfter: time.Minute}, false},
		{"waiting later", waitFor("", authv1alpha1.ReasonClusterRoleMissing, "x", 2*time.Hour), sched, false},
		{"transient", failed("", authv1alpha1.ReasonApplyFailed, "x", plain), ctrl.Result{}, true},
		{"untyped", plain, ctrl.Result{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resultOf(sched, tt.err)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("resultOf = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "x", errors.New("changed"))
	if asStepError(failed("", authv1alpha1.ReasonApplyFailed, "writing", conflict)) != nil {
		t.Error("a wrapped conflict is treated as a failed step")
	}
	if se := asStepError(fmt.Errorf("reading: %w", plain)); se == nil || se.kind != transient || se.reason != authv1alpha1.ReasonReconcileFailed {
		t.Errorf("untyped error classified as %+v", se)
	}
	if se := asStepError(waitFor("", "R", "m", 0)); se.after < time.Second {
		t.Errorf("waiting for %v", se.after)
	}
}
