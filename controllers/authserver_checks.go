package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// Endpoints resolves the base URL of one color of an AuthServer. In a
// cluster it is the color's Service; tests point it at real auth server
// processes on loopback.
type Endpoints interface {
	URL(as *authv1alpha1.AuthServer, active bool) string
}

// ServiceEndpoints reaches the active and preview Services by cluster DNS.
type ServiceEndpoints struct{}

// URL implements Endpoints.
func (ServiceEndpoints) URL(as *authv1alpha1.AuthServer, active bool) string {
	name := as.Name
	if !active {
		name += "-preview"
	}
	return fmt.Sprintf("http://%s.%s.svc", name, as.Namespace)
}

// ColorEndpoints reaches every AuthServer's blue and green colors at fixed
// URLs. It is for development against a simulated cluster, whose pods do not
// run: auth server processes on the host stand in for each color.
type ColorEndpoints map[authv1alpha1.Color]string

// URL implements Endpoints.
func (e ColorEndpoints) URL(as *authv1alpha1.AuthServer, active bool) string {
	c := as.Status.ActiveColor
	if c == "" {
		c = authv1alpha1.Blue
	}
	if !active {
		c = c.Other()
	}
	return e[c]
}

// ParseColorEndpoints reads "blue=URL,green=URL"; both colors are required
// and each URL must be an absolute http or https URL.
func ParseColorEndpoints(s string) (ColorEndpoints, error) {
	e := ColorEndpoints{}
	for _, part := range strings.Split(s, ",") {
		color, raw, ok := strings.Cut(strings.TrimSpace(part), "=")
		c := authv1alpha1.Color(color)
		if !ok || (c != authv1alpha1.Blue && c != authv1alpha1.Green) {
			return nil, fmt.Errorf("%q: want blue=URL or green=URL", part)
		}
		if _, dup := e[c]; dup {
			return nil, fmt.Errorf("%s is given twice", c)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: %q is not an absolute http(s) URL", c, raw)
		}
		e[c] = strings.TrimSuffix(raw, "/")
	}
	if len(e) != 2 {
		return nil, fmt.Errorf("both blue and green are required")
	}
	return e, nil
}

// HTTPChecks runs smoke tests and reads metrics over HTTP.
type HTTPChecks struct {
	Client    client.Reader
	Endpoints Endpoints
	HTTP      *http.Client
	Clock     clock.PassiveClock
}

// Smoke checks the preview color: /readyz answers; for a policy with an
// account, a token minted with the active key validates and a forged one
// (same claims and kid, another key) is refused; the preview and active
// colors publish the same JWKS.
func (c *HTTPChecks) Smoke(ctx context.Context, as *authv1alpha1.AuthServer) error {
	preview, active := c.Endpoints.URL(as, false), c.Endpoints.URL(as, true)
	if code, _, err := c.get(ctx, preview+serverapi.PathReadyz, ""); err != nil || code != 200 {
		return fmt.Errorf("preview readyz: %d %v", code, err)
	}
	p, sa, key, err := c.subject(ctx, as.Namespace)
	if err != nil {
		return err
	}
	if p == nil {
		return nil // nothing to mint with yet; readiness is all that can be checked
	}
	good, err := c.mint(p, sa, key)
	if err != nil {
		return err
	}
	forgedKey, err := keys.Generate(key.Algorithm, 0, rand.Reader)
	if err != nil {
		return err
	}
	forgedKey.ID = key.ID
	forged, err := c.mint(p, sa, forgedKey)
	if err != nil {
		return err
	}
	if code, hdr, err := c.get(ctx, preview+serverapi.PathValidate, good); err != nil || code != 200 {
		return fmt.Errorf("a token minted with the active key was refused by the preview: %d %s %v", code, hdr.Get(serverapi.HeaderAuthError), err)
	}
	if code, _, err := c.get(ctx, preview+serverapi.PathValidate, forged); err != nil || code != 401 {
		return fmt.Errorf("a forged token was not refused by the preview: %d %v", code, err)
	}
	jwks := serverapi.JWKSPath(p.Namespace, p.Name)
	ca, ba, errA := c.body(ctx, active+jwks)
	cp, bp, errP := c.body(ctx, preview+jwks)
	if errA == nil && errP == nil && ca == 200 && (cp != 200 || ba != bp) {
		return fmt.Errorf("the preview publishes a different JWKS than the active color")
	}
	return nil
}

// subject finds a policy with an active key and an enabled account of it.
func (c *HTTPChecks) subject(ctx context.Context, ns string) (*authv1alpha1.TokenPolicy, *authv1alpha1.ServiceAccount, keys.Key, error) {
	var accounts authv1alpha1.ServiceAccountList
	if err := c.Client.List(ctx, &accounts, client.InNamespace(ns)); err != nil {
		return nil, nil, keys.Key{}, err
	}
	for i := range accounts.Items {
		sa := &accounts.Items[i]
		if sa.Spec.Disabled || sa.Status.ClientID == "" {
			continue
		}
		var p authv1alpha1.TokenPolicy
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: sa.Spec.TokenPolicyRef.Name}, &p); err != nil || p.Status.ActiveKeyID == "" {
			continue
		}
		var s corev1.Secret
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: p.Name + authv1alpha1.KeySecretSuffix}, &s); err != nil {
			continue
		}
		ks, err := keys.ParsePrivate(s.Data[authv1alpha1.KeySetDataKey])
		if err != nil {
			continue
		}
		if i := slices.IndexFunc(ks, func(k keys.Key) bool { return k.ID == p.Status.ActiveKeyID }); i >= 0 {
			return &p, sa, ks[i], nil
		}
	}
	return nil, nil, keys.Key{}, nil
}

func (c *HTTPChecks) mint(p *authv1alpha1.TokenPolicy, sa *authv1alpha1.ServiceAccount, k keys.Key) (string, error) {
	raw, _, err := token.Mint(p.Spec.Issuer, p.Spec.AccessTokenTTL.Duration, k, c.Clock, rand.Reader, token.Subject{
		ClientID: sa.Status.ClientID, Namespace: sa.Namespace, UID: string(sa.UID), Name: sa.Name, Roles: sa.Status.Roles,
	}, p.Spec.Audiences[0], sa.Status.Permissions)
	return raw, err
}

// Traffic reads one color's validation requests and server errors from its
// /metrics: the active color after promotion, the preview during a canary.
func (c *HTTPChecks) Traffic(ctx context.Context, as *authv1alpha1.AuthServer, active bool) (requests, serverErrors int64, err error) {
	code, body, err := c.body(ctx, c.Endpoints.URL(as, active)+serverapi.PathMetrics)
	if err != nil || code != 200 {
		return 0, 0, fmt.Errorf("reading metrics: %d %v", code, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	mf := families[serverapi.MetricRequests]
	if mf == nil {
		return 0, 0, nil
	}
	for _, m := range mf.GetMetric() {
		n := int64(m.GetCounter().GetValue())
		requests += n
		for _, l := range m.GetLabel() {
			if l.GetName() == serverapi.LabelCode && strings.HasPrefix(l.GetValue(), "5") {
				serverErrors += n
			}
		}
	}
	return requests, serverErrors, nil
}

func (c *HTTPChecks) get(ctx context.Context, url, bearer string) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, nil
}

func (c *HTTPChecks) body(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

func (c *HTTPChecks) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}
