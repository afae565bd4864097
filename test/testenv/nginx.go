package testenv

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// EchoHandler is an upstream that answers with the request headers it got
// (as JSON: path, method, headers), so a caller can see what nginx passed on
// after the auth server allowed the request. It never echoes Authorization.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k, v := range r.Header {
			if k == "Authorization" {
				continue // do not echo credentials
			}
			h[k] = strings.Join(v, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "method": r.Method, "headers": h})
	})
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

// IngressLocation is one protected location of the ingress: requests under
// Path are allowed when the auth server answers 200 to /validate?Query.
type IngressLocation struct{ Name, Path, Query string }

// IngressLocations are the locations `make run` and the end-to-end tests
// put in front of the echo upstream: orders need orders:read, orders-admin
// orders:write, and payments another audience.
var IngressLocations = []IngressLocation{
	{Name: "orders", Path: "/api/orders/", Query: "aud=orders-api&permission=orders:read"},
	{Name: "orders-admin", Path: "/api/orders-admin/", Query: "aud=orders-api&permission=orders:write"},
	{Name: "payments", Path: "/api/payments/", Query: "aud=payments-api"},
}

// IngressIdentityHeaders are the auth server's response headers nginx passes
// to the upstream (auth-response-headers).
var IngressIdentityHeaders = []string{"X-User-ID", "X-User-Permissions", "X-User-Namespace", "X-Client-ID", "X-User-Roles", "X-Token-ID"}

// Nginx describes an unprivileged nginx configured like ingress-nginx with
// auth-url: everything it writes lives under Prefix.
type Nginx struct {
	// Prefix is nginx's working directory (configuration, logs, temp files).
	Prefix string
	// Port is where nginx listens on 127.0.0.1.
	Port int
	// AuthPort is the auth server's port on 127.0.0.1 (the auth-url).
	AuthPort int
	// EchoPort is the upstream's port on 127.0.0.1.
	EchoPort int
}

// Configure writes the configuration under Prefix and returns the arguments
// to run nginx with it in the foreground.
func (n Nginx) Configure() (args []string, err error) {
	if err := os.MkdirAll(n.Prefix, 0o755); err != nil {
		return nil, err
	}
	type header struct{ Name, Var string }
	var headers []header
	for _, h := range IngressIdentityHeaders {
		headers = append(headers, header{Name: h, Var: strings.ReplaceAll(strings.ToLower(h), "-", "_")})
	}
	conf := filepath.Join(n.Prefix, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	err = nginxConf.Execute(f, map[string]any{
		"Prefix": n.Prefix, "Port": n.Port, "AuthPort": n.AuthPort, "EchoPort": n.EchoPort,
		"Headers": headers, "Locations": IngressLocations,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return []string{"-p", n.Prefix, "-c", conf, "-e", filepath.Join(n.Prefix, "error.log")}, nil
}
