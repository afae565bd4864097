package controllers

import (
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// The three ways a reconcile step can fail, after flux's source-controller:
// what the controller does next depends only on which one it is.
type failureKind int

const (
	// transient: the API server or a write failed; the error is returned and
	// controller-runtime retries with exponential backoff.
	transient failureKind = iota
	// stalling: only a change by the user (usually to the spec) can fix it;
	// a condition and a Warning event, no retry.
	stalling
	// waiting: something outside the spec is not there yet and is not
	// watched; the object is looked at again after a computed time.
	waiting
)

// stepError is the failure of one reconcile step: the condition it turns
// False (empty: only Ready), the reason (a constant of api/v1alpha1) and
// message shown there, and what happens next.
type stepError struct {
	kind      failureKind
	condition string
	reason    string
	msg       string
	after     time.Duration // waiting only: when to look again, > 0
	cause     error
}

func (e *stepError) Error() string { return e.msg }
func (e *stepError) Unwrap() error { return e.cause }

// stalled is a failure the user must fix by changing the spec.
func stalled(condition, reason, msg string) error {
	return &stepError{kind: stalling, condition: condition, reason: reason, msg: msg}
}

// waitFor is a failure that resolves by itself or by a change nothing
// watches; after must be > 0.
func waitFor(condition, reason, msg string, after time.Duration) error {
	return &stepError{kind: waiting, condition: condition, reason: reason, msg: msg, after: max(after, time.Second)}
}

// failed is a transient failure of a step, retried with backoff; the
// condition and Ready show reason with what went wrong.
func failed(condition, reason, what string, err error) error {
	return &stepError{kind: transient, condition: condition, reason: reason, msg: fmt.Sprintf("%s: %v", what, err), cause: err}
}

// asStepError classifies any error a step returned. A bare error is a
// transient failure with reason ReconcileFailed; nil for nil and for write
// conflicts, which only mean the object moved on and are retried at once
// without touching status.
func asStepError(err error) *stepError {
	var se *stepError
	switch {
	case err == nil || apierrors.IsConflict(err):
		return nil
	case errors.As(err, &se):
		return se
	default:
		return &stepError{kind: transient, reason: authv1alpha1.ReasonReconcileFailed, msg: err.Error(), cause: err}
	}
}

// resultOf is what controller-runtime gets for a reconcile that scheduled res
// and ended with err: stalling keeps only the schedule (no error, no
// backoff), waiting requeues at the earlier of the two, transient returns
// the error.
func resultOf(res ctrl.Result, err error) (ctrl.Result, error) {
	if err == nil {
		return res, nil
	}
	var se *stepError
	if !errors.As(err, &se) {
		return ctrl.Result{}, err
	}
	switch se.kind {
	case stalling:
		return res, nil
	case waiting:
		if res.RequeueAfter <= 0 || se.after < res.RequeueAfter {
			res.RequeueAfter = se.after
		}
		return res, nil
	}
	return ctrl.Result{}, err
}
