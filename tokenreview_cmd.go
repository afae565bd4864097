package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"

	"github.com/authframework/authframework/internal/kubeuser"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
)

// tokenReviewOptions are the flags of the /tokenreview listener.
type tokenReviewOptions struct {
	listen, certFile, keyFile, clientCAFile string
	names                                   kubeuser.Names
	audiences                               []string
	allowedNames                            []string
}

func (o *tokenReviewOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, serverapi.FlagTokenReviewListen, "", "Address of the mutual-TLS listener that serves "+serverapi.PathTokenReview+
		" (the Kubernetes webhook token authenticator) to kube-apiserver; empty: not served. Needs the three files below.")
	fs.StringVar(&o.certFile, serverapi.FlagTokenReviewTLSCertFile, "", "Serving certificate (PEM) of that listener; re-read when it changes.")
	fs.StringVar(&o.keyFile, serverapi.FlagTokenReviewTLSKeyFile, "", "Private key (PEM) of that serving certificate.")
	fs.StringVar(&o.clientCAFile, serverapi.FlagTokenReviewClientCAFile, "", "CA bundle (PEM) of the client certificate kube-apiserver presents (the user of its webhook kubeconfig); no other caller gets through.")
	fs.StringVar(&o.names.UsernamePrefix, serverapi.FlagTokenReviewUsernamePrefix, kubeuser.DefaultPrefix, "Prefix of user names: <prefix><namespace>:<account>. Must not be empty or start with system:.")
	fs.StringVar(&o.names.GroupsPrefix, serverapi.FlagTokenReviewGroupsPrefix, kubeuser.DefaultPrefix, "Prefix of groups: <prefix><namespace>:<role>. Must not be empty or start with system:.")
	fs.Func(serverapi.FlagTokenReviewAllowedNames, "Comma-separated common names of the client certificates allowed to call "+serverapi.PathTokenReview+" (as kube-apiserver's --requestheader-allowed-names); empty: any certificate the client CA verifies. Set it when that CA signs other clients' certificates too.", func(v string) error {
		o.allowedNames = splitList(v)
		return nil
	})
	fs.Func(serverapi.FlagTokenReviewAudiences, "Comma-separated audiences of the calling kube-apiserver (its --api-audiences): what a TokenReview without spec.audiences means. kube-apiserver always sends them; empty: such a review is unauthenticated.", func(v string) error {
		o.audiences = splitList(v)
		return nil
	})
}

// check refuses an incomplete or unsafe configuration.
func (o tokenReviewOptions) check() error {
	files := map[string]string{serverapi.FlagTokenReviewTLSCertFile: o.certFile, serverapi.FlagTokenReviewTLSKeyFile: o.keyFile,
		serverapi.FlagTokenReviewClientCAFile: o.clientCAFile}
	var errs []error
	for _, name := range []string{serverapi.FlagTokenReviewTLSCertFile, serverapi.FlagTokenReviewTLSKeyFile, serverapi.FlagTokenReviewClientCAFile} {
		switch {
		case o.listen != "" && files[name] == "":
			errs = append(errs, fmt.Errorf("--%s is set but --%s is not: the tokenreview listener serves mutual TLS only", serverapi.FlagTokenReviewListen, name))
		case o.listen == "" && files[name] != "":
			errs = append(errs, fmt.Errorf("--%s is set but --%s is not", name, serverapi.FlagTokenReviewListen))
		}
	}
	if err := o.names.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--%s/--%s: %w", serverapi.FlagTokenReviewUsernamePrefix, serverapi.FlagTokenReviewGroupsPrefix, err))
	}
	return errors.Join(errs...)
}

// serverOptions is what the handler needs.
func (o tokenReviewOptions) serverOptions() auth.TokenReviewOptions {
	return auth.TokenReviewOptions{Names: o.names, ImplicitAudiences: o.audiences, AllowedNames: o.allowedNames}
}

// start serves the handler's /tokenreview on its own mutual-TLS listener
// and reports Serve's end on serveErr; nil when no listener is configured.
func (o tokenReviewOptions) start(h *auth.Server, serveErr chan<- error, log logr.Logger) (*http.Server, error) {
	if o.listen == "" {
		return nil, nil
	}
	cfg, err := auth.TokenReviewTLSConfig(o.certFile, o.keyFile, o.clientCAFile, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h.TokenReviewHandler(), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	log.Info("tokenreview listener serving mutual TLS", "address", ln.Addr().String(), "path", serverapi.PathTokenReview)
	return srv, nil
}
