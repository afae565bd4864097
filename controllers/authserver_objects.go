package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/rollout"
	"github.com/authframework/authframework/pkg/serverapi"
)

// Labels of the auth server's pods.
const (
	LabelInstance     = "app.kubernetes.io/instance"
	LabelColor        = "auth.authframework.dev/color"
	LabelTemplateHash = "auth.authframework.dev/template-hash"
	serverName        = "authframework-server"
)

// TemplateHash identifies the pod template an AuthServer spec asks for: a
// change of any of these fields is a new template and rolls out.
func TemplateHash(as *authv1alpha1.AuthServer) string {
	s := as.Spec
	fields := []any{s.Image, s.ImagePullPolicy, s.ImagePullSecrets, s.Args, s.Env, s.Resources, s.Port,
		s.WatchNamespaces, s.ResponseHeaders, s.ResultCacheSize, s.NodeSelector, s.Tolerations, s.PriorityClassName}
	// Fields added later count only when set, so an upgrade of the operator
	// does not roll out every AuthServer.
	if len(s.TrustedProxies) > 0 {
		fields = append(fields, s.TrustedProxies)
	}
	if s.TokenExchange != nil {
		fields = append(fields, "tokenExchange", s.TokenExchange)
	}
	if s.TokenReviewWebhook != nil {
		fields = append(fields, "tokenReviewWebhook", s.TokenReviewWebhook)
	}
	b, _ := json.Marshal(fields)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}

func deploymentName(as *authv1alpha1.AuthServer, c rollout.Color) string {
	return as.Name + "-" + string(c)
}

func podLabels(as *authv1alpha1.AuthServer, c rollout.Color) map[string]string {
	return map[string]string{"app.kubernetes.io/name": serverName, LabelInstance: as.Name, LabelColor: string(c)}
}

// podTemplate is the auth server pod of the current spec.
func podTemplate(as *authv1alpha1.AuthServer, c rollout.Color, hash string) corev1.PodTemplateSpec {
	s := as.Spec
	labels := podLabels(as, c)
	labels[LabelTemplateHash] = hash
	args := []string{"server", serverapi.Flag(serverapi.FlagListen, ":"+strconv.Itoa(int(s.Port))),
		serverapi.Flag(serverapi.FlagCacheSize, strconv.Itoa(int(ptr.Deref(s.ResultCacheSize, 100000)))),
		serverapi.Flag(serverapi.FlagHeaderUserID, s.ResponseHeaders.UserID), serverapi.Flag(serverapi.FlagHeaderPermissions, s.ResponseHeaders.Permissions),
		serverapi.Flag(serverapi.FlagHeaderNamespace, s.ResponseHeaders.Namespace), serverapi.Flag(serverapi.FlagHeaderClientID, s.ResponseHeaders.ClientID),
		serverapi.Flag(serverapi.FlagHeaderRoles, s.ResponseHeaders.Roles), serverapi.Flag(serverapi.FlagHeaderTokenID, s.ResponseHeaders.TokenID)}
	if len(s.WatchNamespaces) > 0 {
		args = append(args, serverapi.Flag(serverapi.FlagWatchNamespaces, strings.Join(s.WatchNamespaces, ",")))
	}
	if len(s.TrustedProxies) > 0 {
		args = append(args, serverapi.Flag(serverapi.FlagTrustedProxies, strings.Join(s.TrustedProxies, ",")))
	}
	args = append(args, kubernetesIdentityArgs(s)...)
	args = append(args, s.Args...)
	volumes, mounts := tokenReviewVolumes(s.TokenReviewWebhook)
	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: s.Port}}
	if w := s.TokenReviewWebhook; w != nil {
		ports = append(ports, corev1.ContainerPort{Name: tokenReviewPortName, ContainerPort: tokenReviewPort(w)})
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}}, PeriodSeconds: 5}
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: as.Name,
			ImagePullSecrets:   s.ImagePullSecrets,
			NodeSelector:       s.NodeSelector,
			Tolerations:        s.Tolerations,
			PriorityClassName:  s.PriorityClassName,
			Volumes:            volumes,
			SecurityContext:    &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "server", Image: s.Image, ImagePullPolicy: s.ImagePullPolicy, Args: args,
				Env:            append([]corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}, s.Env...),
				Ports:          ports,
				VolumeMounts:   mounts,
				Resources:      s.Resources,
				ReadinessProbe: probe(serverapi.PathReadyz),
				LivenessProbe:  probe(serverapi.PathHealthz),
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
}

// service selects one color of the auth server.
func service(as *authv1alpha1.AuthServer, name string, c rollout.Color) *corev1.Service {
	ports := []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}
	if as.Spec.TokenReviewWebhook != nil {
		ports = append(ports, corev1.ServicePort{Name: tokenReviewPortName, Port: TokenReviewServicePort, TargetPort: intstr.FromString(tokenReviewPortName)})
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: name, Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name}},
		Spec: corev1.ServiceSpec{
			Selector: podLabels(as, c),
			Ports:    ports,
		},
	}
}

func hpa(as *authv1alpha1.AuthServer, c rollout.Color) *autoscalingv2.HorizontalPodAutoscaler {
	a := as.Spec.Autoscaling
	metrics := []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(a.TargetCPUUtilizationPercentage)}}}}
	if rps := a.RequestsPerSecond; rps != nil {
		metrics = append(metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: rps.MetricName}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &rps.AverageValue}}})
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: as.Name, Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: deploymentName(as, c)},
			MinReplicas:    ptr.To(a.MinReplicas), MaxReplicas: a.MaxReplicas, Metrics: metrics,
		},
	}
}

func pdb(as *authv1alpha1.AuthServer, c rollout.Color) *policyv1.PodDisruptionBudget {
	mu := intstr.FromInt32(ptr.Deref(as.Spec.PodDisruptionBudget.MaxUnavailable, 1))
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: as.Name, Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name}},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &mu, Selector: &metav1.LabelSelector{MatchLabels: podLabels(as, c)}},
	}
}

// observed reads a Deployment into what the state machine needs.
func observed(d *appsv1.Deployment) rollout.Deployment {
	if d == nil {
		return rollout.Deployment{}
	}
	return rollout.Deployment{Exists: true, TemplateHash: d.Spec.Template.Labels[LabelTemplateHash],
		Replicas: ptr.Deref(d.Spec.Replicas, 1), Available: d.Status.AvailableReplicas}
}
