package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"github.com/authframework/authframework/test/testenv"
)

// startEcho serves an upstream that answers with the request headers it got,
// so a caller can see what nginx passed on after the auth server allowed it.
func startEcho(port int) (stop func(), err error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, fmt.Errorf("echo upstream: %w", err)
	}
	srv := &http.Server{Handler: testenv.EchoHandler()}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// startNginx runs nginx unprivileged with everything under the state dir,
// configured the way ingress-nginx configures auth-url (testenv.Nginx).
func startNginx(ctx context.Context, o options) (*testenv.Child, error) {
	args, err := testenv.Nginx{Prefix: filepath.Join(o.stateDir, "nginx"), Port: o.nginxPort, AuthPort: o.authPort, EchoPort: o.echoPort}.Configure()
	if err != nil {
		return nil, err
	}
	return startChild(ctx, "nginx", fmt.Sprintf("http://127.0.0.1:%d/healthz-nginx", o.nginxPort), o.nginx, args...)
}
