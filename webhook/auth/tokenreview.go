package auth

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/authframework/authframework/internal/kubeuser"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// TokenReviewOptions configure /tokenreview, the Kubernetes webhook token
// authenticator.
type TokenReviewOptions struct {
	// Names are the user name and groups prefixes; kubeuser.DefaultNames
	// when zero.
	Names kubeuser.Names
	// ImplicitAudiences are what a review without spec.audiences means: the
	// audiences of the API server itself (its --api-audiences, by default
	// its --service-account-issuer), as the TokenReview API defines. Empty:
	// such a review is answered unauthenticated, since the server cannot
	// know which audience the caller means.
	ImplicitAudiences []string
	// AllowedNames, when set, are the only common names of client
	// certificates that may call (as kube-apiserver's
	// --requestheader-allowed-names): a CA that also signs other clients'
	// certificates (kubelets, say) then admits the API server alone. Empty:
	// any certificate the client CA verifies.
	AllowedNames []string
}

// MaxTokenReviewBytes bounds a TokenReview request body: a token of at most
// token.DefaultMaxSize and its audiences.
const MaxTokenReviewBytes = 64 << 10

// tokenReviewVersions are the versions /tokenreview speaks: v1, and
// v1beta1, whose TokenReview has the same fields and which is still
// kube-apiserver's default --authentication-token-webhook-version. The
// answer is in the version of the request.
var tokenReviewVersions = []string{authenticationv1.SchemeGroupVersion.String(), "authentication.k8s.io/v1beta1"}

// Results of MetricTokenReviewWebhook.
const (
	reviewAuthenticated   = "authenticated"
	reviewUnauthenticated = "unauthenticated"
	reviewMalformed       = "malformed"
)

func newTokenReviewMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: serverapi.MetricTokenReviewWebhook,
		Help: "TokenReview webhook answers by result (authenticated, unauthenticated, malformed)."}, []string{"result"})
	reg.MustRegister(c)
	return c
}

// TokenReviewHandler serves PathTokenReview and nothing else. It belongs on
// the mutual-TLS listener that only kube-apiserver's client certificate can
// reach (TokenReviewTLSConfig), never on the main listener, which ingress
// controllers reach over plain HTTP. Errors are in the Kubernetes API's
// metav1.Status shape, which kube-apiserver's webhook client decodes.
func (s *Server) TokenReviewHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+serverapi.PathTokenReview, s.instrument("tokenreview", s.handleTokenReview))
	mux.HandleFunc(serverapi.PathTokenReview, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "this endpoint takes POST")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "this listener serves "+serverapi.PathTokenReview+" only")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assignRequestID(w, r)
		if names := s.opts.TokenReview.AllowedNames; len(names) > 0 && !slices.Contains(names, peerName(r)) {
			s.opts.Audit.Info("token review refused", "event", "token_review_forbidden", "caller", peerName(r),
				"requestID", requestID(r), "remoteAddr", r.RemoteAddr)
			writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden, "this client certificate's name is not allowed to review tokens")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// handleTokenReview answers an authentication.k8s.io/v1 TokenReview: 200
// with status.authenticated true and the user, or false with status.error
// saying why (the API server logs it), for every token; 400 (415 for a body
// that is not JSON) only for a request that is not a TokenReview.
func (s *Server) handleTokenReview(w http.ResponseWriter, r *http.Request) {
	review, code, msg := readTokenReview(w, r)
	if code != 0 {
		s.tokenReviews.WithLabelValues(reviewMalformed).Inc()
		s.opts.Audit.Info("token review refused", "event", "token_review_malformed", "reason", msg,
			"caller", peerName(r), "requestID", requestID(r), "remoteAddr", r.RemoteAddr)
		reason := metav1.StatusReasonBadRequest
		if code == http.StatusUnsupportedMediaType {
			reason = metav1.StatusReasonUnsupportedMediaType
		}
		writeStatus(w, code, reason, msg)
		return
	}
	var (
		claims *token.Claims
		p      *Policy
		g      grant
		ref    *refusal
	)
	if review.Spec.Token == "" {
		ref = newRefusal("missing_token", "the review has no token")
	} else {
		// The one decision every endpoint that accepts tokens makes.
		claims, p, ref = s.verify(review.Spec.Token)
		if ref == nil {
			g, ref = s.authorize(claims, p, requirements{})
		}
	}
	status, ref := reviewStatus(claims, g.account, ref, review.Spec.Audiences, s.opts.TokenReview)
	s.auditReview(r, status, ref, claims, review.Spec.Audiences)
	w.Header().Set("Cache-Control", "no-store")
	out := authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Audiences: review.Spec.Audiences}, Status: status}
	out.APIVersion, out.Kind = review.APIVersion, "TokenReview"
	writeJSON(w, http.StatusOK, out)
}

// readTokenReview decodes the request body; a non-zero code and a message
// say why it is not a TokenReview of tokenReviewVersions.
func readTokenReview(w http.ResponseWriter, r *http.Request) (authenticationv1.TokenReview, int, string) {
	var review authenticationv1.TokenReview
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return review, http.StatusUnsupportedMediaType, "the body must be application/json"
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxTokenReviewBytes)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&review); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return review, http.StatusBadRequest, "the body is too large"
		}
		return review, http.StatusBadRequest, "the body is not a JSON TokenReview"
	}
	if dec.More() {
		return review, http.StatusBadRequest, "the body holds more than one JSON value"
	}
	if !slices.Contains(tokenReviewVersions, review.APIVersion) || review.Kind != "TokenReview" {
		return review, http.StatusBadRequest, "want kind TokenReview of apiVersion " + strings.Join(tokenReviewVersions, " or ")
	}
	return review, 0, ""
}

// reviewStatus is /tokenreview's decision about a token that verify and
// authorize have judged: ref is their refusal, or nil and a is the token's
// account. The token must also carry an audience the caller accepts: one of
// spec.audiences, which status.audiences then lists (the intersection, as
// the TokenReview API defines it); without spec.audiences, one of the API
// server's own, o.ImplicitAudiences, and status.audiences stays empty,
// which the API defines as "valid for the API server's audience". Groups
// are the roles the token was issued with that the account still has, so
// a role taken away counts at once and one added later needs a new token.
// The returned refusal is the reason status.error gives, nil when
// authenticated.
func reviewStatus(c *token.Claims, a *Account, ref *refusal, specAudiences []string, o TokenReviewOptions) (authenticationv1.TokenReviewStatus, *refusal) {
	if ref == nil {
		var auds []string
		auds, ref = reviewAudiences(c.Audience, specAudiences, o.ImplicitAudiences)
		if ref == nil {
			return authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: auds, User: o.names().User(kubeuser.Identity{
				Namespace: a.Key.Namespace, Account: a.Key.Name, UID: string(a.UID), ClientID: a.ClientID, TokenID: c.ID,
				Roles: slices.DeleteFunc(slices.Clone(a.Roles), func(r string) bool { return !slices.Contains(c.Roles, r) }),
			})}, nil
		}
	}
	return authenticationv1.TokenReviewStatus{Authenticated: false, Error: ref.code + ": " + ref.msg}, ref
}

// reviewAudiences returns status.audiences for a token carrying tokenAud,
// or a refusal when it carries none of the audiences the caller means.
func reviewAudiences(tokenAud, spec, implicit []string) ([]string, *refusal) {
	want := spec
	if len(want) == 0 {
		if len(implicit) == 0 {
			return nil, newRefusal("wrong_audience", "the review names no audience and this server knows no implicit API server audience ("+
				serverapi.FlagTokenReviewAudiences+")")
		}
		want = implicit
	}
	var got []string
	for _, aud := range want {
		if slices.Contains(tokenAud, aud) && !slices.Contains(got, aud) {
			got = append(got, aud)
		}
	}
	if len(got) == 0 {
		return nil, newRefusal("wrong_audience", "the token carries none of the audiences the API server accepts ("+strings.Join(want, ", ")+
			"); request one of them from the token endpoint")
	}
	if len(spec) == 0 {
		return nil, nil
	}
	return got, nil
}

func (o TokenReviewOptions) names() kubeuser.Names {
	if o.Names == (kubeuser.Names{}) {
		return kubeuser.DefaultNames
	}
	return o.Names
}

// auditReview writes one audit line per review, never the token.
func (s *Server) auditReview(r *http.Request, st authenticationv1.TokenReviewStatus, ref *refusal, c *token.Claims, audiences []string) {
	result := reviewAuthenticated
	kv := []any{"event", "token_reviewed", "authenticated", st.Authenticated, "audiences", audiences,
		"caller", peerName(r), "requestID", requestID(r), "remoteAddr", r.RemoteAddr}
	if ref != nil {
		result = reviewUnauthenticated
		kv = append(kv, "code", ref.code)
	} else {
		kv = append(kv, "username", st.User.Username)
	}
	if c != nil {
		kv = append(kv, "clientID", c.ClientID, "namespace", c.Namespace, "tokenID", c.ID)
	}
	s.tokenReviews.WithLabelValues(result).Inc()
	s.opts.Audit.Info("token reviewed", kv...)
}

// peerName is the common name of the verified client certificate: which
// API server asked.
func peerName(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	return truncate(r.TLS.VerifiedChains[0][0].Subject.CommonName, 128)
}

// writeStatus answers in the Kubernetes API's error shape.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code)}
	st.APIVersion, st.Kind = "v1", "Status"
	writeJSON(w, code, st)
}
