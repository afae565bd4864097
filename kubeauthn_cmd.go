package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/kubeuser"
	"github.com/authframework/authframework/pkg/serverapi"
)

// kubeAuthnOptions are the flags of `authframework kube-authn-config`.
type kubeAuthnOptions struct {
	namespace, policy string
	audiences         []string
	names             kubeuser.Names
	caFile            string
	discoveryURL      string
	log               logOptions
}

func (o *kubeAuthnOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.namespace, "namespace", "", "Namespace of the TokenPolicy.")
	fs.StringVar(&o.policy, "policy", "", "Name of the TokenPolicy whose tokens kube-apiserver should accept.")
	fs.Func("audience", "Audience kube-apiserver accepts (repeatable or comma-separated); each must be one of the policy's spec.audiences, and one that no other service accepts, so that a token meant for a service is not also a Kubernetes credential.", func(v string) error {
		o.audiences = append(o.audiences, splitList(v)...)
		return nil
	})
	fs.StringVar(&o.names.UsernamePrefix, "username-prefix", kubeuser.DefaultPrefix, "Prefix of user names, as the server's --"+serverapi.FlagTokenReviewUsernamePrefix+".")
	fs.StringVar(&o.names.GroupsPrefix, "groups-prefix", kubeuser.DefaultPrefix, "Prefix of groups, as the server's --"+serverapi.FlagTokenReviewGroupsPrefix+".")
	fs.StringVar(&o.caFile, "certificate-authority-file", "", "PEM bundle that verifies the auth server's TLS certificate, embedded as issuer.certificateAuthority; empty: the API server's system roots.")
	fs.StringVar(&o.discoveryURL, "discovery-url", "", "Where kube-apiserver fetches the discovery document when the issuer URL is not reachable from it (an in-cluster Service URL ending in /.well-known/openid-configuration).")
}

// runKubeAuthnConfig prints the AuthenticationConfiguration that makes
// kube-apiserver verify a TokenPolicy's tokens itself, read from the
// cluster of --kubeconfig.
func runKubeAuthnConfig(args []string, stdout, stderr io.Writer) error {
	var opts kubeAuthnOptions
	if _, err := parseCommand("kube-authn-config", args, stderr, opts.bind, &opts.log); err != nil {
		return err
	}
	if opts.namespace == "" || opts.policy == "" || len(opts.audiences) == 0 {
		return fmt.Errorf("kube-authn-config: --namespace, --policy and --audience are required")
	}
	var ca []byte
	if opts.caFile != "" {
		var err error
		if ca, err = os.ReadFile(opts.caFile); err != nil {
			return err
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p authv1alpha1.TokenPolicy
	if err := c.Get(ctx, types.NamespacedName{Namespace: opts.namespace, Name: opts.policy}, &p); err != nil {
		return fmt.Errorf("reading TokenPolicy %s/%s: %w", opts.namespace, opts.policy, err)
	}
	ac, err := opts.names.ConfigFor(kubeuser.Policy{Namespace: p.Namespace, Name: p.Name, Issuer: p.Spec.Issuer, Audiences: p.Spec.Audiences},
		kubeuser.Issuer{Audiences: opts.audiences, DiscoveryURL: opts.discoveryURL, CertificateAuthority: string(ca)})
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(ac)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# kube-apiserver --authentication-config for the tokens of TokenPolicy %s/%s.\n"+
		"# The API server verifies them itself: a revoked token, or one of a disabled or deleted account,\n"+
		"# is accepted until it expires (at most the policy's accessTokenTTL). Use /tokenreview for revocation.\n", p.Namespace, p.Name)
	_, err = stdout.Write(out)
	return err
}
