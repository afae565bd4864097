package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/rollout"
)

// Checks are the rollout's probes of the running auth servers.
type Checks interface {
	// Smoke tests the preview color.
	Smoke(ctx context.Context, as *authv1alpha1.AuthServer) error
	// Traffic reads the validation requests and server errors of the active
	// color, or of the preview color when active is false.
	Traffic(ctx context.Context, as *authv1alpha1.AuthServer, active bool) (requests, serverErrors int64, err error)
}

// AuthServerReconciler runs the auth server: blue and green Deployments, an
// active and a preview Service, an HPA and a PodDisruptionBudget, moved
// through blue-green rollouts by internal/rollout.
type AuthServerReconciler struct {
	client.Client
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	Checks    Checks
	// RBAC says how the auth server pods are granted their permissions.
	RBAC ServerRBAC
	// GatewayAPI: the cluster served gateway.networking.k8s.io/v1 HTTPRoutes
	// when the operator started (SetupWithManager finds out); without it an
	// AuthServer naming an HTTPRoute is told so.
	GatewayAPI bool
}

// +kubebuilder:rbac:groups=auth.authframework.dev,resources=authservers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=authservers/finalizers,verbs=update
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterrolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;bind,resourceNames=authframework-server;authframework-server-revocations
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=authservers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete

// authServerReady is the AuthServer's Ready table. An AuthServer that may
// read only its own namespace still serves it: CrossNamespaceNotAllowed is
// advisory; so is TokenReviewNotGranted (validation and client credentials
// work, only token exchange is refused).
var authServerReady = []readyRow{
	{Type: authv1alpha1.ConditionPermissionsGranted, Advisory: []string{authv1alpha1.ReasonCrossNamespaceNotAllowed, authv1alpha1.ReasonTokenReviewNotGranted}},
	{Type: authv1alpha1.ConditionAvailable},
}

// ClusterRoleRecheck is how long an AuthServer whose server ClusterRole is
// missing waits before looking again. ClusterRoles are not watched: the
// operator may get only the two it binds, not list them.
const ClusterRoleRecheck = 15 * time.Second

// Reconcile grants the pods their permissions, then observes, asks the
// state machine, runs the checks it asks for, writes the objects, and
// requeues at the next check. Status is patched once, in the deferred step,
// whatever happened.
func (r *AuthServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	var as authv1alpha1.AuthServer
	if err := r.APIReader.Get(ctx, req.NamespacedName, &as); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !as.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.release(ctx, &as)
	}
	now := r.Clock.Now().UTC().Truncate(time.Second)
	before := as.Status.DeepCopy()
	var readyReason, readyMessage string
	defer func() {
		as.Status.ObservedGeneration = as.Generation
		base := as.DeepCopy()
		base.Status = *before
		res, err = statusStep{client: r.Client, recorder: r.Recorder, obj: &as, base: base, conds: &as.Status.Conditions,
			table: authServerReady, now: now, readyReason: readyReason, readyMessage: readyMessage}.finish(ctx, res, err)
	}()

	// The pods get their permissions before they exist.
	perms, err := r.grant(ctx, &as)
	if err != nil {
		return ctrl.Result{}, failed(authv1alpha1.ConditionPermissionsGranted, authv1alpha1.ReasonGrantFailed, "binding the auth server's ServiceAccount", err)
	}
	r.recordPermissions(&as, before, perms, now)
	in, plan, split, err := r.rollOut(ctx, &as)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.recordRollout(&as, before, in, plan, split, now)
	readyReason, readyMessage = plan.Status.Reason, plan.Message
	res = ctrl.Result{RequeueAfter: requeueAfter(plan.NextCheck, in.Now)}
	if perms.reason == authv1alpha1.ReasonClusterRoleMissing {
		// The rollout went on (the pods wait for their permissions), but
		// the AuthServer is not Ready until the ClusterRole exists.
		return res, waitFor(authv1alpha1.ConditionPermissionsGranted, perms.reason, perms.message, ClusterRoleRecheck)
	}
	return res, nil
}

// rollOut observes the colors, asks the state machine, runs the checks it
// asks for, and writes the objects of the plan.
func (r *AuthServerReconciler) rollOut(ctx context.Context, as *authv1alpha1.AuthServer) (rollout.Input, rollout.Plan, rollout.ServiceSplit, error) {
	in, deps, err := r.observe(ctx, as)
	if err != nil {
		return in, rollout.Plan{}, rollout.ServiceSplit{}, err
	}
	rt, err := r.observeRouting(ctx, as, &in)
	if err != nil {
		return in, rollout.Plan{}, rollout.ServiceSplit{}, err
	}
	plan := rollout.Next(in)
	if plan.RunSmokeTests || plan.RunAnalysis {
		// Run what the plan asked for and decide again with the results.
		observed := in.Status
		r.check(ctx, as, plan, &in)
		plan = rollout.Next(in)
		// The analysis is decided from the first plan's status; the event
		// is for the whole step from what was observed.
		plan.Transitioned = rollout.Transitioned(observed, plan.Status)
	}
	split, err := r.splitService(ctx, as, plan)
	if err != nil {
		return in, plan, split.ServiceSplit, err
	}
	if err := r.apply(ctx, as, plan, deps, split); err != nil {
		return in, plan, split.ServiceSplit, failed("", authv1alpha1.ReasonApplyFailed, "writing the auth server's objects", err)
	}
	// After the Services: at the end of the steps the active Service has
	// switched before the canary Ingress goes or the HTTPRoute is restored.
	weight := plan.Status.CanaryWeight
	if in.Results.RoutingProblem != "" {
		weight = 0
	}
	if err := r.route(ctx, as, weight, rt); err != nil {
		return in, plan, split.ServiceSplit, failed("", authv1alpha1.ReasonApplyFailed, "writing the canary Ingress or HTTPRoute weights", err)
	}
	return in, plan, split.ServiceSplit, nil
}

func (r *AuthServerReconciler) observe(ctx context.Context, as *authv1alpha1.AuthServer) (rollout.Input, map[rollout.Color]*appsv1.Deployment, error) {
	deps := map[rollout.Color]*appsv1.Deployment{}
	colors := map[rollout.Color]rollout.Deployment{}
	for _, c := range []rollout.Color{rollout.Blue, rollout.Green} {
		var d appsv1.Deployment
		switch err := r.Get(ctx, types.NamespacedName{Namespace: as.Namespace, Name: deploymentName(as, c)}, &d); {
		case err == nil:
			deps[c] = &d
		case !apierrors.IsNotFound(err):
			return rollout.Input{}, nil, err
		}
		colors[c] = observed(deps[c])
	}
	s := as.Spec
	spec := rollout.Spec{
		TemplateHash: TemplateHash(as), Replicas: ptr.Deref(s.Replicas, 2), Autoscaling: s.Autoscaling != nil,
		AutoPromote: ptr.Deref(s.Rollout.AutoPromote, true), SmokeTests: ptr.Deref(s.Rollout.SmokeTests.Enabled, true),
		AvailableTimeout: s.Rollout.AvailableTimeout.Duration, BakeTime: s.Rollout.Analysis.BakeTime.Duration,
		ScaleDownDelay: s.Rollout.ScaleDownDelay.Duration,
		MaxErrorRate:   float64(ptr.Deref(s.Rollout.Analysis.MaxServerErrorPercent, 1)) / 100,
		MinRequests:    int64(ptr.Deref(s.Rollout.Analysis.MinRequests, 20)),
	}
	if tr := s.Rollout.TrafficRouting; tr != nil {
		spec.CanarySteps, spec.StepInterval = tr.Steps, tr.StepInterval.Duration
		if len(spec.CanarySteps) == 0 {
			spec.CanarySteps = defaultCanarySteps
		}
		if spec.StepInterval <= 0 {
			spec.StepInterval = time.Minute
		}
	}
	if s.Autoscaling != nil {
		spec.Replicas = s.Autoscaling.MinReplicas
	}
	st := as.Status
	in := rollout.Input{
		Spec: spec, Colors: colors, Now: r.Clock.Now().UTC(),
		Status: rollout.Status{Phase: rollout.Phase(st.Phase), Reason: st.PhaseReason, ActiveColor: rollout.Color(st.ActiveColor),
			ActiveHash: st.ActiveTemplateHash, FailedHash: st.FailedTemplateHash, PhaseStartedAt: timeOf(st.PhaseStartedAt),
			CanaryWeight: st.CanaryWeight, Available: st.AvailableReplicas, CapacityLost: capacityLost(st.Conditions)},
	}
	if v := as.Annotations[authv1alpha1.AnnotationPromote]; v != "" && v != st.LastPromoteRequest {
		in.Results.Promote = true
	}
	if v := as.Annotations[authv1alpha1.AnnotationAbort]; v != "" && v != st.LastAbortRequest {
		in.Results.Abort = true
	}
	return in, deps, nil
}

func (r *AuthServerReconciler) check(ctx context.Context, as *authv1alpha1.AuthServer, plan rollout.Plan, in *rollout.Input) {
	// The checks talk to the colors of the plan: after a promotion the
	// analysis reads the new active color.
	probe := as.DeepCopy()
	probe.Status.ActiveColor = authv1alpha1.Color(plan.Status.ActiveColor)
	if plan.RunSmokeTests {
		cctx, cancel := context.WithTimeout(ctx, max(as.Spec.Rollout.SmokeTests.Timeout.Duration, time.Second))
		err := r.Checks.Smoke(cctx, probe)
		cancel()
		ok := err == nil
		in.Results.Smoke = &ok
		if err != nil {
			in.Results.SmokeMessage = err.Error()
		}
	}
	if plan.RunAnalysis {
		// Decide again from the plan's status: the analysis belongs to the
		// phase it was asked for.
		in.Status = plan.Status
		reqs, errs, err := r.Checks.Traffic(ctx, probe, plan.AnalyseColor == plan.Status.ActiveColor)
		if err != nil {
			log.FromContext(ctx).Info("reading the new color's metrics failed; analysis continues", "error", err.Error())
			return
		}
		in.Results.Analysed, in.Results.Requests, in.Results.ServerErr = true, reqs, errs
	}
}

// apply writes the Deployments, Services, canary EndpointSlice, HPA and PDB
// the plan describes.
func (r *AuthServerReconciler) apply(ctx context.Context, as *authv1alpha1.AuthServer, plan rollout.Plan, deps map[rollout.Color]*appsv1.Deployment, split serviceSplit) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: as.Name}}
	if err := r.ensure(ctx, as, sa, func() {}); err != nil {
		return err
	}
	active, idle := plan.Status.ActiveColor, plan.Status.ActiveColor.Other()
	// The Services first: a color scaled down below (after an abort) has
	// left the active Service by then. The active Service's endpoints
	// change in the order that never gives the new color more than the
	// step: when its selector moves to the new color the borrowed old pods
	// are listed first; otherwise the selector moves back first and the
	// borrowed pods change after.
	if err := r.writeColorServices(ctx, as); err != nil {
		return err
	}
	if split.selector != active {
		if err := r.writeSlice(ctx, as, split); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		name  string
		color rollout.Color
	}{{as.Name, split.selector}, {as.Name + "-preview", idle}} {
		want := service(as, s.name, s.color)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: s.name}}
		if err := r.ensure(ctx, as, svc, func() {
			svc.Labels, svc.Spec.Selector, svc.Spec.Ports = want.Labels, want.Spec.Selector, want.Spec.Ports
		}); err != nil {
			return err
		}
	}
	if split.selector == active {
		if err := r.writeSlice(ctx, as, split); err != nil {
			return err
		}
	}
	hash := TemplateHash(as)
	for c, target := range plan.Colors {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: deploymentName(as, c)}}
		if deps[c] == nil && target.Replicas == 0 {
			continue // never needed yet
		}
		err := r.ensure(ctx, as, d, func() {
			d.Labels = map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name, LabelColor: string(c)}
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: podLabels(as, c)}
			// Only the current spec's template can be written; a color that
			// keeps an older template keeps its pods as they are.
			if target.TemplateHash == hash && d.Spec.Template.Labels[LabelTemplateHash] != hash {
				d.Spec.Template = podTemplate(as, c, hash)
			}
			if !target.ScaledByHPA || d.Spec.Replicas == nil || target.Replicas == 0 || plan.HPAColor != c {
				d.Spec.Replicas = ptr.To(target.Replicas)
			}
		})
		if err != nil {
			return err
		}
	}
	if plan.HPAColor != "" {
		want := hpa(as, plan.HPAColor)
		h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: want.ObjectMeta}
		if err := r.ensure(ctx, as, h, func() { h.Labels, h.Spec = want.Labels, want.Spec }); err != nil {
			return err
		}
	} else if err := r.deleteIfOwned(ctx, as, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: as.Name}}); err != nil {
		return err
	}
	if ptr.Deref(as.Spec.PodDisruptionBudget.Enabled, true) {
		want := pdb(as, active)
		p := &policyv1.PodDisruptionBudget{ObjectMeta: want.ObjectMeta}
		return r.ensure(ctx, as, p, func() { p.Labels, p.Spec = want.Labels, want.Spec })
	}
	return r.deleteIfOwned(ctx, as, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: as.Name}})
}

func (r *AuthServerReconciler) ensure(ctx context.Context, as *authv1alpha1.AuthServer, obj client.Object, mutate func()) error {
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, obj, func() error {
		mutate()
		return controllerutil.SetControllerReference(as, obj, r.Scheme())
	})
	return err
}

func (r *AuthServerReconciler) deleteIfOwned(ctx context.Context, as *authv1alpha1.AuthServer, obj client.Object) error {
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, as) {
		return nil
	}
	return client.IgnoreNotFound(r.Delete(ctx, obj))
}

// recordPermissions sets PermissionsGranted and warns when it turns False
// with a new reason; a missing ClusterRole is warned about with Ready, as the
// failure that keeps the AuthServer from being Ready.
func (r *AuthServerReconciler) recordPermissions(as *authv1alpha1.AuthServer, before *authv1alpha1.AuthServerStatus, perms permissions, now time.Time) {
	prev := meta.FindStatusCondition(before.Conditions, authv1alpha1.ConditionPermissionsGranted)
	setCondition(&as.Status.Conditions, as.Generation, now, authv1alpha1.ConditionPermissionsGranted, perms.status, perms.reason, perms.message)
	if perms.status == metav1.ConditionFalse && perms.reason != authv1alpha1.ReasonClusterRoleMissing && (prev == nil || prev.Reason != perms.reason) {
		r.Recorder.Eventf(as, nil, corev1.EventTypeWarning, perms.reason, "Grant", "%s", perms.message)
	}
}

// recordRollout records the plan the objects now follow: phase, colors,
// replicas, the Available, Progressing, RolledBack and TrafficRoutingReady
// conditions, and the events of the step.
func (r *AuthServerReconciler) recordRollout(as *authv1alpha1.AuthServer, before *authv1alpha1.AuthServerStatus, in rollout.Input, plan rollout.Plan, split rollout.ServiceSplit, now time.Time) {
	ps := plan.Status
	st := &as.Status
	st.Phase, st.PhaseReason = authv1alpha1.RolloutPhase(ps.Phase), ps.Reason
	st.PhaseStartedAt = metaTimeOf(ps.PhaseStartedAt)
	st.NextCheckTime = metaTimeOf(plan.NextCheck.Truncate(time.Second))
	st.ActiveColor = authv1alpha1.Color(ps.ActiveColor)
	st.ActiveTemplateHash, st.FailedTemplateHash, st.DesiredTemplateHash = ps.ActiveHash, ps.FailedHash, in.Spec.TemplateHash
	st.ActiveService, st.PreviewService = as.Name, as.Name+"-preview"
	st.CanaryWeight, st.ServiceCanaryWeight = ps.CanaryWeight, split.Percent
	active := in.Colors[ps.ActiveColor]
	st.Replicas, st.AvailableReplicas = active.Replicas, active.Available
	if in.Results.Promote {
		st.LastPromoteRequest = as.Annotations[authv1alpha1.AnnotationPromote]
	}
	if in.Results.Abort {
		st.LastAbortRequest = as.Annotations[authv1alpha1.AnnotationAbort]
	}
	gen := as.Generation
	capacity := plan.Capacity
	setCondition(&st.Conditions, gen, now, authv1alpha1.ConditionAvailable, boolCondition(capacity.OK), capacity.Reason, capacity.Message)
	progressing := ps.Phase == rollout.Deploying || ps.Phase == rollout.Verifying || ps.Phase == rollout.Promoting || ps.Phase == rollout.Canary ||
		ps.Phase == rollout.Analysing || ps.Phase == rollout.ScalingDown
	setCondition(&st.Conditions, gen, now, authv1alpha1.ConditionProgressing, boolCondition(progressing), ps.Reason, plan.Message)
	setCondition(&st.Conditions, gen, now, authv1alpha1.ConditionRolledBack, boolCondition(ps.Phase == rollout.RolledBack), ps.Reason, plan.Message)
	r.recordRouting(as, before, in.Results.RoutingProblem, now)
	if plan.Transitioned {
		kind := corev1.EventTypeNormal
		if ps.Phase == rollout.RolledBack || ps.Phase == rollout.Degraded {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(as, nil, kind, ps.Reason, string(ps.Phase), "%s", plan.Message)
	}
	if capacity.Lost && !capacityLost(before.Conditions) && ps.Phase != rollout.Degraded {
		// Mid-rollout a loss is no phase change, but still worth a warning.
		r.Recorder.Eventf(as, nil, corev1.EventTypeWarning, capacity.Reason, string(ps.Phase), "%s", capacity.Message)
	}
}

// recordRouting sets TrafficRoutingReady from what observeRouting found,
// and warns when it turns False or says something new while False.
func (r *AuthServerReconciler) recordRouting(as *authv1alpha1.AuthServer, before *authv1alpha1.AuthServerStatus, problem string, now time.Time) {
	st := &as.Status
	tr := as.Spec.Rollout.TrafficRouting
	if tr == nil {
		meta.RemoveStatusCondition(&st.Conditions, authv1alpha1.ConditionTrafficRoutingReady)
		return
	}
	found, unusable := authv1alpha1.ReasonIngressFound, authv1alpha1.ReasonIngressUnusable
	msg := fmt.Sprintf("steps go through %s-canary beside Ingress %s", tr.Ingress, tr.Ingress)
	if tr.HTTPRoute != "" {
		found, unusable = authv1alpha1.ReasonHTTPRouteFound, authv1alpha1.ReasonHTTPRouteUnusable
		msg = fmt.Sprintf("steps set the weights of Services %s and %s-preview in HTTPRoute %s", as.Name, as.Name, tr.HTTPRoute)
	}
	if problem == "" {
		setCondition(&st.Conditions, as.Generation, now, authv1alpha1.ConditionTrafficRoutingReady, metav1.ConditionTrue, found, msg)
		return
	}
	setCondition(&st.Conditions, as.Generation, now, authv1alpha1.ConditionTrafficRoutingReady, metav1.ConditionFalse, unusable, problem)
	if prev := meta.FindStatusCondition(before.Conditions, authv1alpha1.ConditionTrafficRoutingReady); prev == nil || prev.Status != metav1.ConditionFalse || prev.Message != problem {
		r.Recorder.Eventf(as, nil, corev1.EventTypeWarning, unusable, "TrafficRouting", "%s", problem)
	}
}

// capacityLost reads from the Available condition whether the active color
// had lost pods that served, for rollout.Status.
func capacityLost(conds []metav1.Condition) bool {
	c := meta.FindStatusCondition(conds, authv1alpha1.ConditionAvailable)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == rollout.ReasonCapacityLost
}

func boolCondition(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// SetupWithManager watches AuthServers and what they own, their pods, and
// the HTTPRoutes they name when the cluster serves the Gateway API.
func (r *AuthServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.GatewayAPI = gatewayAPIServed(mgr)
	b := ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.AuthServer{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.Ingress{}).
		Watches(&discoveryv1.EndpointSlice{}, slicesOfAuthServer())
	if r.GatewayAPI {
		b = b.Watches(&gatewayv1.HTTPRoute{}, handler.EnqueueRequestsFromMapFunc(r.authServersOfRoute))
	}
	return b.Named("authserver").Complete(r)
}

// gatewayAPIServed says whether the scheme knows HTTPRoutes and the API
// server serves them.
func gatewayAPIServed(mgr ctrl.Manager) bool {
	gvk := gatewayv1.SchemeGroupVersion.WithKind("HTTPRoute")
	if !mgr.GetScheme().Recognizes(gvk) {
		return false
	}
	_, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err == nil
}

// authServersOfRoute enqueues the AuthServers that name an HTTPRoute, so a
// route fixed or broken shows in TrafficRoutingReady at once.
func (r *AuthServerReconciler) authServersOfRoute(ctx context.Context, obj client.Object) []reconcile.Request {
	var list authv1alpha1.AuthServerList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, as := range list.Items {
		if tr := as.Spec.Rollout.TrafficRouting; tr != nil && tr.HTTPRoute == obj.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&as)})
		}
	}
	return reqs
}
