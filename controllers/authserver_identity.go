package controllers

import (
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/pkg/serverapi"
)

// The /tokenreview listener of the auth server pods.
const (
	// TokenReviewServicePort is the port of the active and preview Services
	// that reaches the pods' /tokenreview listener (named tokenReviewPortName).
	TokenReviewServicePort = 443
	tokenReviewPortName    = "tokenreview"
	// defaultTokenExchangeAudience is the API default of
	// spec.tokenExchange.audience, for objects stored before it existed.
	defaultTokenExchangeAudience = "authframework"
	tokenReviewTLSDir            = "/etc/authframework/tokenreview/tls"
	tokenReviewClientCADir       = "/etc/authframework/tokenreview/client-ca"
	clientCAFile                 = "ca.crt"
)

func tokenReviewPort(w *authv1alpha1.TokenReviewWebhookSpec) int32 {
	if w.Port == 0 {
		return 8443
	}
	return w.Port
}

// kubernetesIdentityArgs are the server flags of spec.tokenExchange and
// spec.tokenReviewWebhook; none when neither is set. spec.args come after
// them, so a user can still set the other --token-exchange-* flags.
func kubernetesIdentityArgs(s authv1alpha1.AuthServerSpec) []string {
	var args []string
	if x := s.TokenExchange; x != nil {
		aud := x.Audience
		if aud == "" {
			aud = defaultTokenExchangeAudience
		}
		args = append(args, serverapi.Flag(serverapi.FlagTokenExchangeAudience, aud))
		if x.CacheTTL != nil {
			args = append(args, serverapi.Flag(serverapi.FlagTokenExchangeCacheTTL, x.CacheTTL.Duration.String()))
		}
	}
	if w := s.TokenReviewWebhook; w != nil {
		args = append(args,
			serverapi.Flag(serverapi.FlagTokenReviewListen, ":"+strconv.Itoa(int(tokenReviewPort(w)))),
			serverapi.Flag(serverapi.FlagTokenReviewTLSCertFile, path.Join(tokenReviewTLSDir, corev1.TLSCertKey)),
			serverapi.Flag(serverapi.FlagTokenReviewTLSKeyFile, path.Join(tokenReviewTLSDir, corev1.TLSPrivateKeyKey)),
			serverapi.Flag(serverapi.FlagTokenReviewClientCAFile, path.Join(tokenReviewClientCADir, clientCAFile)))
		if w.UsernamePrefix != nil {
			args = append(args, serverapi.Flag(serverapi.FlagTokenReviewUsernamePrefix, *w.UsernamePrefix))
		}
		if w.GroupsPrefix != nil {
			args = append(args, serverapi.Flag(serverapi.FlagTokenReviewGroupsPrefix, *w.GroupsPrefix))
		}
	}
	return args
}

// tokenReviewVolumes mount the /tokenreview listener's serving certificate
// and the API server's client CA, read-only; none without the webhook.
func tokenReviewVolumes(w *authv1alpha1.TokenReviewWebhookSpec) ([]corev1.Volume, []corev1.VolumeMount) {
	if w == nil {
		return nil, nil
	}
	// Default file modes (0644): the pods run as an arbitrary non-root
	// user without an fsGroup, who could not read 0440 files.
	tls := corev1.Volume{Name: "tokenreview-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: w.TLSSecretName,
		Items:      []corev1.KeyToPath{{Key: corev1.TLSCertKey, Path: corev1.TLSCertKey}, {Key: corev1.TLSPrivateKeyKey, Path: corev1.TLSPrivateKeyKey}},
	}}}
	ca := corev1.Volume{Name: "tokenreview-client-ca"}
	switch src := w.ClientCA; {
	case src.Secret != nil:
		ca.Secret = &corev1.SecretVolumeSource{SecretName: src.Secret.Name,
			Items: []corev1.KeyToPath{{Key: keyOrCA(src.Secret.Key), Path: clientCAFile}}}
	case src.ConfigMap != nil:
		ca.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: src.ConfigMap.Name},
			Items: []corev1.KeyToPath{{Key: keyOrCA(src.ConfigMap.Key), Path: clientCAFile}}}
	}
	return []corev1.Volume{tls, ca}, []corev1.VolumeMount{
		{Name: tls.Name, MountPath: tokenReviewTLSDir, ReadOnly: true},
		{Name: ca.Name, MountPath: tokenReviewClientCADir, ReadOnly: true},
	}
}

func keyOrCA(k string) string {
	if k == "" {
		return clientCAFile
	}
	return k
}
