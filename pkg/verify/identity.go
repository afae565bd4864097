package verify

import (
	"context"
	"slices"
	"time"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/token"
)

// Identity is who a verified access token speaks for (RFC 9068 claims).
// An Identity is shared between the requests that present the same token:
// treat it as read-only.
type Identity struct {
	// Subject is the token's `sub`.
	Subject string
	// ClientID is the ServiceAccount's client id (`client_id`).
	ClientID string
	// Namespace is the ServiceAccount's namespace.
	Namespace string
	// AccountUID is the metadata.uid of the ServiceAccount object the token
	// is bound to; AccountName its metadata.name (empty in tokens issued
	// before the claim existed).
	AccountUID, AccountName string
	// Issuer is the token's `iss`; Audiences its `aud`.
	Issuer    string
	Audiences []string
	// Permissions are the fields of the token's `scope` (RFC 9068 §2.2.3),
	// such as `orders:read` or `orders:*`. In remote mode they are what the
	// server grants now, narrowed by the account's current Roles.
	Permissions []string
	// Roles are the names of the account's Roles when the token was issued.
	Roles []string
	// TokenID is the token's `jti`.
	TokenID string
	// IssuedAt and Expiry are the token's `iat` and `exp`.
	IssuedAt, Expiry time.Time
	// Actor is set on tokens issued by token exchange (RFC 8693 §4.1): the
	// Kubernetes service account, and pod, that presented the exchanged
	// token. Nil otherwise.
	Actor *Actor
	// KeyID is the `kid` of the key that signed the token.
	KeyID string

	// revocationKey is serverapi.RevocationKey of the token in
	// revocationPolicy, computed once when the Identity is made.
	revocationPolicy, revocationKey string
}

// Actor is the Kubernetes identity behind a token issued by token exchange.
type Actor struct {
	// Subject is "system:serviceaccount:<namespace>:<name>".
	Subject string
	// Namespace, ServiceAccount and ServiceAccountUID name the Kubernetes
	// service account.
	Namespace, ServiceAccount, ServiceAccountUID string
	// Pod and PodUID name the pod of a pod-bound service-account token;
	// empty otherwise.
	Pod, PodUID string
}

// HasPermission reports whether the identity's permissions cover p, with
// the Role API's wildcards: `*` covers everything and `orders:*` covers
// `orders:read` and `orders:items:read`.
func (id *Identity) HasPermission(p string) bool {
	return slices.ContainsFunc(id.Permissions, func(g string) bool { return authz.Covers(g, p) })
}

// HasAudience reports whether the token was issued for aud.
func (id *Identity) HasAudience(aud string) bool { return slices.Contains(id.Audiences, aud) }

func identityOf(c *token.Claims, kid string) *Identity {
	id := &Identity{
		Subject:     c.Subject,
		ClientID:    c.ClientID,
		Namespace:   c.Namespace,
		AccountUID:  c.AccountUID,
		AccountName: c.AccountName,
		Issuer:      c.Issuer,
		Audiences:   []string(c.Audience),
		Permissions: c.Permissions,
		Roles:       c.Roles,
		TokenID:     c.ID,
		IssuedAt:    c.IssuedAt.Time(),
		Expiry:      c.Expiry.Time(),
		KeyID:       kid,
	}
	if a := c.Actor; a != nil {
		id.Actor = &Actor{
			Subject:           a.Subject,
			Namespace:         a.Kubernetes.Namespace,
			ServiceAccount:    a.Kubernetes.ServiceAccount.Name,
			ServiceAccountUID: a.Kubernetes.ServiceAccount.UID,
		}
		if p := a.Kubernetes.Pod; p != nil {
			id.Actor.Pod, id.Actor.PodUID = p.Name, p.UID
		}
	}
	return id
}

type contextKey struct{}

// NewContext returns a copy of ctx that carries id; FromContext reads it.
// The middleware and the gRPC interceptors call it; tests of handlers can
// too.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the Identity of the verified token of the request
// whose context ctx is, and false when there is none (the handler is not
// behind the middleware).
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(*Identity)
	return id, ok && id != nil
}
