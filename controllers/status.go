package controllers

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// readyRow is one row of a kind's Ready table: a condition that keeps the
// resource from being Ready while it is False, unless its reason is one of
// Advisory (shown, warned about, but the resource still serves).
type readyRow struct {
	Type     string
	Advisory []string
}

// summariseReady decides the Ready condition of one reconcile. A failed step
// comes first (it is what happened now), then the first False row of the
// kind's table, in table order; otherwise the resource is Ready with the
// reason and message the kind gave for success. It is pure.
func summariseReady(table []readyRow, conds []metav1.Condition, failure *stepError, reason, msg string) (metav1.ConditionStatus, string, string) {
	if failure != nil {
		return metav1.ConditionFalse, failure.reason, failure.msg
	}
	for _, row := range table {
		c := meta.FindStatusCondition(conds, row.Type)
		if c != nil && c.Status == metav1.ConditionFalse && !slices.Contains(row.Advisory, c.Reason) {
			return metav1.ConditionFalse, c.Reason, c.Message
		}
	}
	return metav1.ConditionTrue, reason, msg
}

// statusStep is the one deferred status step of a Reconcile. obj is the
// object with the status this reconcile built; base is the same object with
// the status it was read with, so the merge patch holds status only.
type statusStep struct {
	client   client.Client
	recorder events.EventRecorder
	obj      client.Object
	base     client.Object
	conds    *[]metav1.Condition
	table    []readyRow
	now      time.Time
	// readyReason and readyMessage are Ready's when nothing keeps it False.
	readyReason, readyMessage string
}

// finish writes the failure of the step that stopped the reconcile (if any)
// into its condition, summarises Ready, warns when a failure changed Ready,
// and patches status when it changed: one merge patch with the optimistic
// lock. It returns what controller-runtime gets (see resultOf). A conflict
// is returned untouched: the object moved on and is reconciled again.
func (s statusStep) finish(ctx context.Context, res ctrl.Result, err error) (ctrl.Result, error) {
	failure := asStepError(err)
	if err != nil && failure == nil {
		return ctrl.Result{}, err
	}
	gen := s.obj.GetGeneration()
	if failure != nil && failure.condition != "" {
		setCondition(s.conds, gen, s.now, failure.condition, metav1.ConditionFalse, failure.reason, failure.msg)
	}
	prev := meta.FindStatusCondition(*s.conds, authv1alpha1.ConditionReady)
	status, reason, msg := summariseReady(s.table, *s.conds, failure, s.readyReason, s.readyMessage)
	if failure != nil && (prev == nil || prev.Status != status || prev.Reason != reason || prev.Message != msg) {
		s.recorder.Eventf(s.obj, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", msg)
	}
	setCondition(s.conds, gen, s.now, authv1alpha1.ConditionReady, status, reason, msg)
	if !semanticEqual(s.base, s.obj) {
		if perr := s.client.Status().Patch(ctx, s.obj, client.MergeFromWithOptions(s.base, client.MergeFromWithOptimisticLock{})); perr != nil {
			return ctrl.Result{}, perr
		}
	}
	return resultOf(res, err)
}
