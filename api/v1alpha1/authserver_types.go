package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthServerSpec is the auth server deployment: what runs, how many, and how a
// change rolls out.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling))",message="set either replicas or autoscaling, not both",fieldPath=".replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.tokenReviewWebhook) || !has(self.port) || self.tokenReviewWebhook.port != self.port",message="tokenReviewWebhook.port must differ from port: the webhook has a mutual-TLS listener of its own",fieldPath=".tokenReviewWebhook.port"
type AuthServerSpec struct {
	// Image is the auth server container image (runs `authframework server`).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Image string `json:"image"`

	// ImagePullPolicy of the auth server container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +kubebuilder:default=IfNotPresent
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets for the auth server pods.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Args are extra arguments to `authframework server`.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Args []string `json:"args,omitempty"`

	// Env are extra environment variables of the auth server container.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// Resources of the auth server container. Set CPU requests when
	// autoscaling: the HPA's target is a share of them.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Replicas is the fixed number of pods when autoscaling is not set.
	// Default 2.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling runs an autoscaling/v2 HorizontalPodAutoscaler on the active
	// color instead of a fixed replica count.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Port the auth server listens on and the Services target.
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// WatchNamespaces limits the namespaces whose policies and accounts this
	// server serves. Empty means all namespaces.
	// +kubebuilder:validation:MaxItems=128
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	WatchNamespaces []string `json:"watchNamespaces,omitempty"`

	// ResponseHeaders names the identity headers `/validate` returns on success.
	// +kubebuilder:default={}
	// +optional
	ResponseHeaders IdentityHeaders `json:"responseHeaders,omitzero"`

	// ResultCacheSize bounds the number of validation results cached per pod.
	// 0 disables the cache.
	// +kubebuilder:default=100000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	ResultCacheSize *int32 `json:"resultCacheSize,omitempty"`

	// TrustedProxies are the CIDRs (such as `10.0.0.0/8` or `10.1.2.3/32`) of
	// the proxies in front of the auth server, typically the ingress
	// controller's pods. Their X-Forwarded-For (the rightmost hop that is not
	// a trusted proxy) or X-Real-IP names the source address that per-source
	// throttling counts; from any other peer those headers are ignored and the
	// source is the TCP peer. Empty: nobody's headers are trusted. Passed to
	// the pods as --trusted-proxies.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="each entry must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	// +listType=set
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// Rollout says how a change to the pod template reaches traffic.
	// +kubebuilder:default={}
	// +optional
	Rollout RolloutSpec `json:"rollout,omitzero"`

	// PodDisruptionBudget of the active color.
	// +kubebuilder:default={}
	// +optional
	PodDisruptionBudget PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitzero"`

	// NodeSelector of the auth server pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of the auth server pods.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// PriorityClassName of the auth server pods. Auth is on the path of every
	// request; a high priority is usually right.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// TokenExchange, when set, lets pods exchange their projected Kubernetes
	// service-account tokens at POST /token for the access token of the
	// ServiceAccount that lists them in spec.kubernetesServiceAccounts
	// (RFC 8693). The pods verify those tokens with the TokenReview API, so
	// the operator binds their ServiceAccount to the ClusterRole that grants
	// `create` on tokenreviews (when the install allows it:
	// --server-tokenreview-cluster-role). Off when unset.
	// +optional
	TokenExchange *TokenExchangeSpec `json:"tokenExchange,omitempty"`

	// TokenReviewWebhook, when set, serves POST /tokenreview on a mutual-TLS
	// listener of its own, so that kube-apiserver
	// (--authentication-token-webhook-config-file) authenticates this
	// server's access tokens. The active and preview Services expose it as
	// port 443, named `tokenreview`. Off when unset.
	// +optional
	TokenReviewWebhook *TokenReviewWebhookSpec `json:"tokenReviewWebhook,omitempty"`
}

// TokenExchangeSpec configures the exchange of Kubernetes service-account
// tokens (RFC 8693) at POST /token.
type TokenExchangeSpec struct {
	// Audience the projected service-account tokens must carry, as in
	// `kubectl create token <sa> --audience=<audience>` or a projected
	// volume's `audience`. Never the API server's own audience: a pod's
	// credential for the Kubernetes API alone must not be enough. Passed as
	// --token-exchange-audience. Default `authframework`.
	// +kubebuilder:default=authframework
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[^\s,]+$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('https://kubernetes.default.svc')",message="must not be an audience of the Kubernetes API server (https://kubernetes.default.svc...): tokens for the API server would then be accepted for exchange"
	// +optional
	Audience string `json:"audience,omitempty"`

	// CacheTTL bounds how long the auth server reuses the Kubernetes API's
	// answer (TokenReview) about a subject token, never past the token's
	// exp: it is also how late a deleted pod's token may still be
	// exchanged. From 1s to 10m. Unset: the server's default (10s). Passed
	// as --token-exchange-cache-ttl.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('10m')",message="must be a duration between 1s and 10m, such as 10s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
}

// TokenReviewWebhookSpec configures the /tokenreview listener: its serving
// certificate, the CA of the client certificate kube-apiserver presents
// (nothing else may call it), and how users and groups are named.
type TokenReviewWebhookSpec struct {
	// Port of the mutual-TLS listener in the pods, 1024-65535, not the
	// same as spec.port. Default 8443.
	// +kubebuilder:default=8443
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// TLSSecretName is a Secret in this namespace with the listener's
	// serving certificate, keys `tls.crt` and `tls.key` (type
	// kubernetes.io/tls, as cert-manager writes). Its names must include
	// what kube-apiserver's webhook kubeconfig dials, such as
	// `<name>.<namespace>.svc`. Mounted read-only.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	TLSSecretName string `json:"tlsSecretName"`

	// ClientCA holds the CA bundle (PEM) that signed the client certificate
	// kube-apiserver presents to the webhook. Exactly one of configMap or
	// secret.
	ClientCA CABundleSource `json:"clientCA"`

	// UsernamePrefix is prepended to the account in status.user.username.
	// Unset: the server's default. Letters, digits and . : / @ _ -; must not
	// start with `system:`, which Kubernetes reserves, nor be the start of it
	// (a namespace could complete it).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9.:/@_-]*$`
	// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().startsWith('system:') && !'system:'.startsWith(self.lowerAscii())",message="must not start with system: or be the start of it, which Kubernetes reserves for its own users and groups"
	// +optional
	UsernamePrefix *string `json:"usernamePrefix,omitempty"`

	// GroupsPrefix is prepended to every group (one per Role). Unset: the
	// server's default. The rules of usernamePrefix.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9.:/@_-]*$`
	// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().startsWith('system:') && !'system:'.startsWith(self.lowerAscii())",message="must not start with system: or be the start of it, which Kubernetes reserves for its own users and groups"
	// +optional
	GroupsPrefix *string `json:"groupsPrefix,omitempty"`
}

// CABundleSource is a key of a ConfigMap or a Secret in the same namespace
// that holds a PEM CA bundle.
//
// +kubebuilder:validation:XValidation:rule="has(self.configMap) != has(self.secret)",message="set exactly one of configMap or secret"
type CABundleSource struct {
	// ConfigMap holding the bundle.
	// +optional
	ConfigMap *KeyRef `json:"configMap,omitempty"`
	// Secret holding the bundle.
	// +optional
	Secret *KeyRef `json:"secret,omitempty"`
}

// KeyRef is a key of a ConfigMap or Secret in the same namespace.
type KeyRef struct {
	// Name of the ConfigMap or Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// Key holding the PEM bundle. Default `ca.crt`.
	// +kubebuilder:default=ca.crt
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// AutoscalingSpec bounds the HorizontalPodAutoscaler of the active color.
//
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas",fieldPath=".minReplicas"
type AutoscalingSpec struct {
	// MinReplicas is the lower bound. Default 2, so one pod can fail without an
	// outage.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the upper bound.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetCPUUtilizationPercentage is the average CPU use, as a share of
	// requests, the HPA aims for.
	// +kubebuilder:default=70
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// RequestsPerSecond, when set, also scales on the per-pod rate of
	// validations (a custom pods metric, which needs a metrics adapter such as
	// prometheus-adapter).
	// +optional
	RequestsPerSecond *CustomMetricTarget `json:"requestsPerSecond,omitempty"`
}

// CustomMetricTarget is a per-pod custom metric and its target average.
type CustomMetricTarget struct {
	// MetricName as served by the custom metrics API.
	// +kubebuilder:default=authframework_validate_requests_per_second
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_:][a-zA-Z0-9_:]*$`
	// +optional
	MetricName string `json:"metricName,omitempty"`
	// AverageValue per pod the HPA aims for, such as `2k`.
	AverageValue resource.Quantity `json:"averageValue"`
}

// IdentityHeaders are the response header names `/validate` uses to tell the
// upstream who called. Names are HTTP header tokens.
type IdentityHeaders struct {
	// UserID carries the token's subject.
	// +kubebuilder:default=X-User-ID
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	UserID string `json:"userID,omitempty"`
	// Permissions carries the token's permissions, comma-separated.
	// +kubebuilder:default=X-User-Permissions
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	Permissions string `json:"permissions,omitempty"`
	// Namespace carries the ServiceAccount's namespace.
	// +kubebuilder:default=X-User-Namespace
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// ClientID carries the OAuth2 client id.
	// +kubebuilder:default=X-Client-ID
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	ClientID string `json:"clientID,omitempty"`
	// Roles carries the account's roles, comma-separated.
	// +kubebuilder:default=X-User-Roles
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	Roles string `json:"roles,omitempty"`
	// TokenID carries the token's `jti`.
	// +kubebuilder:default=X-Token-ID
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	TokenID string `json:"tokenID,omitempty"`
}

// RolloutSpec is the blue-green rollout of a template change: the idle color
// gets the new template, must become available and pass smoke tests, traffic
// switches, the new pods are analysed for BakeTime, and the old color scales
// down after ScaleDownDelay. Any failure switches traffic back.
type RolloutSpec struct {
	// AutoPromote switches traffic as soon as smoke tests pass. When false the
	// rollout waits for the promote annotation.
	// +kubebuilder:default=true
	// +optional
	AutoPromote *bool `json:"autoPromote,omitempty"`

	// AvailableTimeout is how long the new color has to become available.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('1h')",message="must be a duration between 10s and 1h, such as 5m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	AvailableTimeout metav1.Duration `json:"availableTimeout,omitzero"`

	// SmokeTests run against the preview color before traffic switches.
	// +kubebuilder:default={}
	// +optional
	SmokeTests SmokeTestSpec `json:"smokeTests,omitzero"`

	// Analysis of the new color after traffic switched.
	// +kubebuilder:default={}
	// +optional
	Analysis AnalysisSpec `json:"analysis,omitzero"`

	// ScaleDownDelay is how long the old color keeps running after promotion.
	// The default, 90s, outlasts the 60s for which ingress-nginx keeps idle
	// upstream connections to the auth server alive, so no kept-alive
	// connection meets a removed pod.
	// +kubebuilder:default="90s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="must be a duration between 0s and 24h, such as 90s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	ScaleDownDelay metav1.Duration `json:"scaleDownDelay,omitzero"`

	// TrafficRouting, when set, moves traffic in weighted steps before the
	// full switch: through the backendRef weights of a Gateway API
	// HTTPRoute, or (legacy) an ingress-nginx canary Ingress. In both cases
	// the active Service's endpoints move in the same steps, so the
	// external-auth sub-requests that proxies send to it follow too.
	// +optional
	TrafficRouting *TrafficRoutingSpec `json:"trafficRouting,omitempty"`
}

// SmokeTestSpec configures the checks against the preview color: `/readyz`, a
// token minted with the active key validates, a forged token is refused, and
// the JWKS of preview and active agree.
type SmokeTestSpec struct {
	// Enabled runs the smoke tests. Disabling them is for emergencies only.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Timeout of the whole smoke test.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('10m')",message="must be a duration between 1s and 10m, such as 30s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Timeout metav1.Duration `json:"timeout,omitzero"`
}

// AnalysisSpec reads the new pods' metrics after promotion and rolls back when
// the error rate exceeds the threshold.
type AnalysisSpec struct {
	// BakeTime is how long the new color is analysed after promotion.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="must be a duration between 0s and 24h, such as 5m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	BakeTime metav1.Duration `json:"bakeTime,omitzero"`

	// Interval between two reads of the metrics.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="must be a duration between 1s and 1h, such as 30s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Interval metav1.Duration `json:"interval,omitzero"`

	// MaxServerErrorPercent is the highest share of 5xx responses, in percent,
	// the new color may serve.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxServerErrorPercent *int32 `json:"maxServerErrorPercent,omitempty"`

	// MinRequests is how many requests the analysis must see before it judges
	// the error rate; fewer pass the analysis.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MinRequests *int32 `json:"minRequests,omitempty"`
}

// TrafficRoutingSpec moves traffic in weighted steps through a Gateway API
// HTTPRoute (gateway.networking.k8s.io/v1) whose backendRef weights the
// operator sets, or, the legacy path, an ingress-nginx canary Ingress that
// the operator keeps beside the named Ingress. Name exactly one.
//
// +kubebuilder:validation:XValidation:rule="has(self.httpRoute) != has(self.ingress)",message="name exactly one of httpRoute or ingress"
type TrafficRoutingSpec struct {
	// HTTPRoute is the name of a gateway.networking.k8s.io/v1 HTTPRoute in
	// the same namespace with rules whose only backendRef is the active
	// Service. At each step the operator gives that backendRef 100-weight
	// and adds the preview Service with the weight; after promotion or an
	// abort the rules are restored as they were. Rules that do not point at
	// the active Service are never touched.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	HTTPRoute string `json:"httpRoute,omitempty"`

	// Ingress is the name of the ingress-nginx Ingress that routes to the
	// active Service, in the same namespace (the legacy path: ingress-nginx
	// is no longer maintained).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	Ingress string `json:"ingress,omitempty"`

	// Steps are the canary weights, in percent, strictly increasing.
	// +kubebuilder:default={5,10,25,50,75,90}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=99
	// +kubebuilder:validation:XValidation:rule="self.isSorted()",message="steps must be strictly increasing"
	// +listType=set
	// +optional
	Steps []int32 `json:"steps,omitempty"`

	// StepInterval is how long each weight holds, analysed, before the next.
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('1h')",message="must be a duration between 10s and 1h, such as 1m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	StepInterval metav1.Duration `json:"stepInterval,omitzero"`
}

// PodDisruptionBudgetSpec configures the PodDisruptionBudget of the active
// color.
type PodDisruptionBudgetSpec struct {
	// Enabled creates the PodDisruptionBudget.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// MaxUnavailable pods of the active color during voluntary disruptions.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxUnavailable *int32 `json:"maxUnavailable,omitempty"`
}

// Color is one of the two Deployments of an AuthServer.
// +kubebuilder:validation:Enum=blue;green
type Color string

// The two colors.
const (
	Blue  Color = "blue"
	Green Color = "green"
)

// Other is the other color.
func (c Color) Other() Color {
	if c == Green {
		return Blue
	}
	return Green
}

// RolloutPhase is where an AuthServer is in its rollout.
// +kubebuilder:validation:Enum=Stable;Deploying;Verifying;Promoting;Canary;Analysing;ScalingDown;RolledBack;Degraded
type RolloutPhase string

// The rollout phases.
const (
	// PhaseStable: one color serves, the other is scaled to zero.
	PhaseStable RolloutPhase = "Stable"
	// PhaseDeploying: the idle color runs the new template and is becoming
	// available.
	PhaseDeploying RolloutPhase = "Deploying"
	// PhaseVerifying: smoke tests run against the preview color.
	PhaseVerifying RolloutPhase = "Verifying"
	// PhasePromoting: smoke tests passed; waiting for the promote annotation
	// (autoPromote: false).
	PhasePromoting RolloutPhase = "Promoting"
	// PhaseCanary: the HTTPRoute or canary Ingress of
	// spec.rollout.trafficRouting sends status.canaryWeight percent of its
	// traffic to the new color, and the active Service's endpoints include
	// the new color at status.serviceCanaryWeight percent, in steps, while
	// the new color's metrics are watched; status.activeColor has not moved.
	PhaseCanary RolloutPhase = "Canary"
	// PhaseAnalysing: the new color serves and its metrics are watched.
	PhaseAnalysing RolloutPhase = "Analysing"
	// PhaseScalingDown: the old color waits out ScaleDownDelay, then scales to
	// zero.
	PhaseScalingDown RolloutPhase = "ScalingDown"
	// PhaseRolledBack: the last rollout failed; the previous template serves and
	// the failed template is not retried until the spec changes.
	PhaseRolledBack RolloutPhase = "RolledBack"
	// PhaseDegraded: the active color lost capacity (pods that served, or all).
	PhaseDegraded RolloutPhase = "Degraded"
)

// AuthServerStatus is the observed state of an AuthServer.
type AuthServerStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Available, Progressing, RolledBack.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Phase of the rollout.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`

	// PhaseReason says why the rollout entered its phase.
	// +optional
	PhaseReason string `json:"phaseReason,omitempty"`

	// PhaseStartedAt is when the rollout entered its phase.
	// +optional
	PhaseStartedAt *metav1.Time `json:"phaseStartedAt,omitempty"`

	// NextCheckTime is when the controller next looks at the rollout.
	// +optional
	NextCheckTime *metav1.Time `json:"nextCheckTime,omitempty"`

	// ActiveColor is the color the active Service selects.
	// +optional
	ActiveColor Color `json:"activeColor,omitempty"`

	// ActiveTemplateHash is the pod template hash of the active color.
	// +optional
	ActiveTemplateHash string `json:"activeTemplateHash,omitempty"`

	// DesiredTemplateHash is the pod template hash of the current spec.
	// +optional
	DesiredTemplateHash string `json:"desiredTemplateHash,omitempty"`

	// FailedTemplateHash is the template of the last rollout that was rolled
	// back; it is not retried until the spec changes.
	// +optional
	FailedTemplateHash string `json:"failedTemplateHash,omitempty"`

	// CanaryWeight is the share of traffic, in percent, on the new color during
	// a stepped rollout.
	// +optional
	CanaryWeight int32 `json:"canaryWeight,omitempty"`

	// ServiceCanaryWeight is the share, in percent, of the active Service's
	// ready endpoints that are the new color's during a stepped rollout:
	// the share of the external-auth sub-requests proxies send to the
	// active Service. It is as near CanaryWeight as whole pods allow.
	// +optional
	ServiceCanaryWeight int32 `json:"serviceCanaryWeight,omitempty"`

	// Replicas of the active color.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// AvailableReplicas of the active color.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`

	// ActiveService and PreviewService are the Services in front of the active
	// and the idle color.
	// +optional
	ActiveService string `json:"activeService,omitempty"`
	// +optional
	PreviewService string `json:"previewService,omitempty"`

	// LastPromoteRequest and LastAbortRequest are the values of the promote and
	// abort annotations last acted on.
	// +optional
	LastPromoteRequest string `json:"lastPromoteRequest,omitempty"`
	// +optional
	LastAbortRequest string `json:"lastAbortRequest,omitempty"`
}

// AuthServer is a deployment of the auth server that the operator runs: blue
// and green Deployments behind an active and a preview Service, an HPA and a
// PodDisruptionBudget, with blue-green rollouts, smoke tests and automatic
// rollback.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=afserver;afs,categories=authframework
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.activeColor`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.availableReplicas`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Canary",type=integer,JSONPath=`.status.canaryWeight`,priority=1
// +kubebuilder:printcolumn:name="Service Canary",type=integer,JSONPath=`.status.serviceCanaryWeight`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired deployment.
	Spec AuthServerSpec `json:"spec"`
	// Status is the observed rollout.
	// +optional
	Status AuthServerStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AuthServerList is a list of AuthServer.
type AuthServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthServer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AuthServer{}, &AuthServerList{})
}
