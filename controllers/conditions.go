package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// setCondition sets a condition with the injected clock's time, so tests on a
// fake clock see the times they set. The transition time changes only when
// the status does.
func setCondition(conds *[]metav1.Condition, generation int64, now time.Time, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now),
	})
}

// semanticEqual compares what is about to be written with what is there, so
// unchanged status and objects are not written again.
func semanticEqual(a, b any) bool { return equality.Semantic.DeepEqual(a, b) }
