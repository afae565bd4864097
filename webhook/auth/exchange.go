package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// exchangeRefusal is an RFC 6749 §5.2 error of a token exchange.
type exchangeRefusal struct {
	status     int
	code, msg  string
	retryAfter time.Duration
	// detail goes to the audit line only: what the Kubernetes API said,
	// which an anonymous caller must not learn (it tells a genuine but
	// invalidated token from a forged one).
	detail string
}

// invalidRequest is RFC 8693 §2.2.2's answer to a subject token that is
// invalid or unacceptable by policy: invalid_request.
func invalidRequest(format string, args ...any) *exchangeRefusal {
	return &exchangeRefusal{status: http.StatusBadRequest, code: "invalid_request", msg: fmt.Sprintf(format, args...)}
}

// subjectTokenAlgorithms are the algorithms kube-apiserver signs
// service-account tokens with.
var subjectTokenAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512}

// checkExchangeForm checks the RFC 8693 §2.1 parameters of a token
// exchange request, before anything is verified.
func checkExchangeForm(form url.Values, clientAuth bool) *exchangeRefusal {
	switch {
	case clientAuth:
		return invalidRequest("token exchange takes no client authentication: the subject token is the credential")
	case form.Get("subject_token") == "":
		return invalidRequest("subject_token is required")
	case form.Get("subject_token_type") != serverapi.TokenTypeJWT:
		return invalidRequest("subject_token_type must be %s (a Kubernetes service-account token)", serverapi.TokenTypeJWT)
	case form.Get("actor_token") != "" || form.Get("actor_token_type") != "":
		return invalidRequest("actor tokens (delegation) are not supported")
	}
	switch form.Get("requested_token_type") {
	case "", serverapi.TokenTypeAccessToken, serverapi.TokenTypeJWT:
		return nil
	}
	return invalidRequest("requested_token_type must be %s", serverapi.TokenTypeAccessToken)
}

// peekSubjectToken reads the subject token's exp and aud without verifying
// it, to refuse at once what the Kubernetes API would refuse (a malformed
// or expired token, one for another audience) and to bound how long its
// review is cached. Nothing here is trusted: the TokenReview decides.
func peekSubjectToken(raw, audience string, now time.Time) (exp time.Time, ref *exchangeRefusal) {
	tok, err := jwt.ParseSigned(raw, subjectTokenAlgorithms)
	var c jwt.Claims
	if err == nil {
		err = tok.UnsafeClaimsWithoutVerification(&c)
	}
	switch {
	case err != nil:
		return time.Time{}, invalidRequest("subject_token is not a signed JWT")
	case c.Expiry == nil:
		return time.Time{}, invalidRequest("subject_token has no exp: use a projected or `kubectl create token` token, not a legacy Secret-based one")
	case !now.Before(c.Expiry.Time()):
		return time.Time{}, invalidRequest("subject_token has expired")
	case !slices.Contains(c.Audience, audience):
		return time.Time{}, invalidRequest("subject_token's audience must include %q: request it with `kubectl create token <name> --audience=%s` or a projected volume's audience", audience, audience)
	case len(c.Audience) != 1:
		// A token for us and another audience (the API server) is a
		// credential for that audience too, which no pod should hand us.
		return time.Time{}, invalidRequest("subject_token must be for the audience %q alone, not also for others", audience)
	}
	return c.Expiry.Time(), nil
}

// kubeIdentity is the Kubernetes service account a TokenReview
// authenticated, and its pod for a pod-bound token.
type kubeIdentity struct {
	ServiceAccount types.NamespacedName
	UID            string
	PodName        string
	PodUID         string
}

// What kube-apiserver answers for service-account tokens
// (k8s.io/apiserver/pkg/authentication/serviceaccount): the user name
// "system:serviceaccount:<namespace>:<name>", and for a pod-bound token the
// pod in TokenReviewStatus.User.Extra.
const (
	serviceAccountUserPrefix = "system:serviceaccount:"
	extraPodName             = "authentication.kubernetes.io/pod-name"
	extraPodUID              = "authentication.kubernetes.io/pod-uid"
)

// serviceAccountOf splits a service account's user name.
func serviceAccountOf(username string) (types.NamespacedName, bool) {
	rest, ok := strings.CutPrefix(username, serviceAccountUserPrefix)
	if !ok {
		return types.NamespacedName{}, false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}

// kubeIdentityOf reads a TokenReview's verdict on a subject token sent with
// audience (authentication.k8s.io/v1: an authenticated review lists in
// status.audiences those of the requested audiences the token is for).
func kubeIdentityOf(st authnv1.TokenReviewStatus, audience string) (kubeIdentity, *exchangeRefusal) {
	if !st.Authenticated {
		ref := invalidRequest("the Kubernetes API did not authenticate the subject token: it is invalid or expired, or its service account or pod is gone")
		ref.detail = truncate(st.Error, 200)
		return kubeIdentity{}, ref
	}
	if !slices.Contains(st.Audiences, audience) {
		return kubeIdentity{}, invalidRequest("the Kubernetes API did not confirm the subject token is for audience %q", audience)
	}
	sa, ok := serviceAccountOf(st.User.Username)
	if !ok {
		return kubeIdentity{}, invalidRequest("the subject token is not a Kubernetes service-account token")
	}
	id := kubeIdentity{ServiceAccount: sa, UID: st.User.UID}
	if v := st.User.Extra[extraPodName]; len(v) == 1 {
		id.PodName = v[0]
	}
	if v := st.User.Extra[extraPodUID]; len(v) == 1 {
		id.PodUID = v[0]
	}
	return id, nil
}

// exchangeTarget picks the one account that lists the Kubernetes service
// account: none or several is a refusal (RFC 8693 §2.2.2: unacceptable by
// policy), as are a disabled account and a client_id naming another.
func exchangeTarget(id kubeIdentity, listings []Listing, clientID string) (Listing, *exchangeRefusal) {
	switch len(listings) {
	case 0:
		return Listing{}, invalidRequest("Kubernetes service account %s is not listed in any ServiceAccount's spec.kubernetesServiceAccounts", id.ServiceAccount)
	case 1:
	default:
		return Listing{}, invalidRequest("Kubernetes service account %s is listed by %d ServiceAccounts; exchange is refused until one lists it (their status names the others)",
			id.ServiceAccount, len(listings))
	}
	l := listings[0]
	a, p := l.Account, l.Policy
	switch {
	case a.Disabled:
		return Listing{}, invalidRequest("ServiceAccount %s is disabled", a.Key)
	case clientID != "" && clientID != a.ClientID:
		return Listing{}, invalidRequest("client_id names another client than the ServiceAccount listing %s", id.ServiceAccount)
	case a.ClientID == "" || p == nil || p.ActiveKey == "":
		return Listing{}, &exchangeRefusal{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", retryAfter: 5 * time.Second,
			msg: fmt.Sprintf("ServiceAccount %s is not ready to be issued tokens yet (no client id, policy or active signing key)", a.Key)}
	}
	return l, nil
}

// actorOf is the `act` claim of a token exchanged by id.
func actorOf(id kubeIdentity) *token.Actor {
	act := &token.Actor{
		Subject: serviceAccountUserPrefix + id.ServiceAccount.Namespace + ":" + id.ServiceAccount.Name,
		Kubernetes: token.KubernetesActor{Namespace: id.ServiceAccount.Namespace,
			ServiceAccount: token.ObjectRef{Name: id.ServiceAccount.Name, UID: id.UID}},
	}
	if id.PodName != "" {
		act.Kubernetes.Pod = &token.ObjectRef{Name: id.PodName, UID: id.PodUID}
	}
	return act
}

// handleTokenExchange is the RFC 8693 token exchange of a Kubernetes
// service-account token for the access token of the ServiceAccount that
// lists it: read, decide, act.
func (s *Server) handleTokenExchange(w http.ResponseWriter, r *http.Request) {
	refuse := func(ref *exchangeRefusal, why string) {
		s.opts.Audit.Info("token exchange refused", "event", "token_exchange_refused", "reason", why, "error", ref.code,
			"description", ref.msg, "detail", ref.detail, "breaker", s.reviews.breaker.State().String(), "remoteAddr", r.RemoteAddr, "requestID", requestID(r))
		if ref.retryAfter > 0 {
			w.Header().Set("Retry-After", seconds(ref.retryAfter))
		}
		s.writeOAuthError(w, r, ref.status, ref.code, ref.msg)
	}
	// Any Authorization header counts, a malformed one too.
	if ref := checkExchangeForm(r.PostForm, r.Header.Get("Authorization") != "" || r.PostForm.Get("client_secret") != ""); ref != nil {
		refuse(ref, "request")
		return
	}
	raw := r.PostForm.Get("subject_token")
	exp, ref := peekSubjectToken(raw, s.reviews.o.Audience, s.now())
	if ref != nil {
		refuse(ref, "subject_token")
		return
	}
	// A source whose subject tokens the Kubernetes API keeps refusing stops
	// reaching it: a flood of forged tokens costs its sender, not the API
	// server and not the other pods. As /validate's flood guard, it engages
	// only with trusted proxies (a known topology: without them the peer
	// may be a proxy every pod shares), and never for a token whose review
	// is cached.
	src, now := s.source(r), s.now()
	guarded := len(s.opts.TrustedProxies) > 0 && !s.reviews.cached(raw)
	if wait, throttled := s.auth.exchangeThrottled(src, now); guarded && throttled {
		refuse(&exchangeRefusal{status: http.StatusTooManyRequests, code: "invalid_request", retryAfter: max(wait, time.Second),
			msg: "too many refused token exchanges from this address; retry later"}, "throttled")
		return
	}
	st, fresh, err := s.reviews.review(raw, exp)
	if u, ok := asUnavailable(err); ok {
		refuse(&exchangeRefusal{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", msg: u.reason, retryAfter: u.retryAfter}, "tokenreview")
		return
	}
	id, ref := kubeIdentityOf(st, s.reviews.o.Audience)
	if ref != nil {
		if fresh {
			s.auth.exchangeRefused(src, now)
		}
		refuse(ref, "tokenreview")
		return
	}
	l, ref := exchangeTarget(id, s.store.Listers(authv1alpha1.KubernetesServiceAccountKey(id.ServiceAccount.Namespace, id.ServiceAccount.Name)),
		r.PostForm.Get("client_id"))
	if ref != nil {
		refuse(ref, "mapping")
		return
	}
	if ok, retry := s.limits.allow(l.Account.ClientID, l.Policy, s.now()); !ok {
		refuse(&exchangeRefusal{status: http.StatusTooManyRequests, code: "temporarily_unavailable", retryAfter: retry,
			msg: "too many requests for this client; retry later"}, "rate")
		return
	}
	s.grantAndIssue(w, r, l.Account, l.Policy, actorOf(id), "token_exchanged",
		"kubernetesServiceAccount", id.ServiceAccount.String(), "pod", id.PodName, "podUID", id.PodUID,
		"breaker", s.reviews.breaker.State().String())
}

// exchangeEnabled says whether the server exchanges Kubernetes tokens.
func (s *Server) exchangeEnabled() bool { return s.reviews != nil }
