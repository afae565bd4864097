package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// startEcho serves an upstream that answers with the request headers it got,
// so a caller can see what nginx passed on after the auth server allowed it.
func startEcho(port int) (stop func(), err error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, fmt.Errorf("echo upstream: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k, v := range r.Header {
			if k == "Authorization" {
				continue // do not echo credentials
			}
			h[k] = strings.Join(v, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "method": r.Method, "headers": h})
	})}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// nginxConf is an nginx configuration built the way ingress-nginx builds an
// Ingress with the auth-url and auth-response-headers annotations: an
// internal location per protected location that proxies to the auth URL
// without the body and with the X-Original-* headers, and auth_request_set +
// proxy_set_header for each response header.
var nginxConf = template.Must(template.New("nginx").Parse(`
worker_processes 1;
daemon off;
pid {{.Prefix}}/nginx.pid;
error_log {{.Prefix}}/error.log warn;
events { worker_connections 1024; }
http {
  access_log {{.Prefix}}/access.log;
  client_body_temp_path {{.Prefix}}/client_body;
  proxy_temp_path {{.Prefix}}/proxy;
  fastcgi_temp_path {{.Prefix}}/fastcgi;
  uwsgi_temp_path {{.Prefix}}/uwsgi;
  scgi_temp_path {{.Prefix}}/scgi;
  server {
    listen 127.0.0.1:{{.Port}};
    location = /healthz-nginx { return 200 "ok"; }
{{range .Locations}}
    location = /_external-auth-{{.Name}} {
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Proto "";
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header Host 127.0.0.1:{{$.AuthPort}};
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Auth-Request-Redirect $request_uri;
      proxy_http_version 1.1;
      proxy_pass http://127.0.0.1:{{$.AuthPort}}/validate?{{.Query}};
    }
    location {{.Path}} {
      auth_request /_external-auth-{{.Name}};
{{range $i, $h := $.Headers}}      auth_request_set $authHeader{{$i}} $upstream_http_{{$h.Var}};
      proxy_set_header {{$h.Name}} $authHeader{{$i}};
{{end}}      proxy_pass http://127.0.0.1:{{$.EchoPort}};
    }
{{end}}
  }
}
`))

type nginxLocation struct{ Name, Path, Query string }
type nginxHeader struct{ Name, Var string }

// startNginx runs nginx unprivileged with everything under the state dir.
func startNginx(ctx context.Context, o options) (*child, error) {
	prefix := filepath.Join(o.stateDir, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return nil, err
	}
	var headers []nginxHeader
	for _, h := range []string{"X-User-ID", "X-User-Permissions", "X-User-Namespace", "X-Client-ID", "X-User-Roles", "X-Token-ID"} {
		headers = append(headers, nginxHeader{Name: h, Var: strings.ReplaceAll(strings.ToLower(h), "-", "_")})
	}
	data := map[string]any{
		"Prefix": prefix, "Port": o.nginxPort, "AuthPort": o.authPort, "EchoPort": o.echoPort, "Headers": headers,
		"Locations": []nginxLocation{
			{Name: "orders", Path: "/api/orders/", Query: "aud=orders-api&permission=orders:read"},
			{Name: "orders-admin", Path: "/api/orders-admin/", Query: "aud=orders-api&permission=orders:write"},
			{Name: "payments", Path: "/api/payments/", Query: "aud=payments-api"},
		},
	}
	conf := filepath.Join(prefix, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	if err := nginxConf.Execute(f, data); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	return startChild(ctx, "nginx", fmt.Sprintf("http://127.0.0.1:%d/healthz-nginx", o.nginxPort), o.nginx, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
}
