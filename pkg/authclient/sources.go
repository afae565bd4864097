package authclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authframework/authframework/pkg/serverapi"
)

// Names of the files in a mounted Secret of the operator (the Secrets'
// data keys).
const (
	// ClientIDFile and ClientSecretFile are in the credentials Secret
	// (<account>-credentials).
	ClientIDFile     = "client_id"
	ClientSecretFile = "client_secret"
	// TokenFileName is in the token Secret (spec.tokenSecret).
	TokenFileName = "token"
)

// ClientCredentials is a Source for the client credentials grant (RFC 6749
// §4.4) at tokenURL (the auth server's serverapi.PathToken), authenticating
// with client_secret_basic. dir is where the account's credentials Secret
// is mounted; its ClientIDFile and ClientSecretFile are read for every
// token request, both from one snapshot when dir is kubelet's atomic
// writer layout (`..data` symlink), so a rotation is picked up without a
// restart. When the server answers `invalid_client` and the files have
// changed since they were read, the request is sent again at once with the
// new secret. The operator keeps the previous secret working for the
// rotation's grace period, which must exceed kubelet's sync delay (about a
// minute).
func ClientCredentials(tokenURL, dir string, o Options) *Source {
	o.defaults()
	cc := clientcredentials.Config{TokenURL: tokenURL, Scopes: o.Scopes, AuthStyle: oauth2.AuthStyleInHeader}
	if o.Audience != "" {
		cc.EndpointParams = url.Values{"audience": {o.Audience}}
	}
	send := func(ctx context.Context, c credentials) (*oauth2.Token, error) {
		cfg := cc
		cfg.ClientID, cfg.ClientSecret = c.id, c.secret
		return o.request(ctx, &cfg)
	}
	return newSource(o, func(ctx context.Context) (*oauth2.Token, error) {
		c, err := readCredentials(dir)
		if err != nil {
			return nil, err
		}
		tok, err := send(ctx, c)
		if errorCode(err) == "invalid_client" && statusOf(err) != http.StatusTooManyRequests {
			if again, rerr := readCredentials(dir); rerr == nil && again != c {
				return send(ctx, again)
			}
		}
		return tok, err
	})
}

// TokenExchange is a Source that exchanges the Kubernetes service-account
// token in subjectTokenFile (a projected volume's path, whose token carries
// the audience the auth server's --token-exchange-audience names) at
// tokenURL for an access token of the ServiceAccount that lists the pod's
// service account (RFC 8693 §2.1: grant_type token-exchange,
// subject_token_type serverapi.TokenTypeJWT, no client authentication).
// The file is read for every request, so kubelet's refreshes are picked up;
// a refusal (400 `invalid_request`, RFC 8693 §2.2.2: the subject token
// expired or was refused) re-reads it and, when it has changed, asks again
// at once.
func TokenExchange(tokenURL, subjectTokenFile string, o Options) *Source {
	o.defaults()
	send := func(ctx context.Context, subject string) (*oauth2.Token, error) {
		params := url.Values{
			"grant_type":         {serverapi.GrantTypeTokenExchange},
			"subject_token":      {subject},
			"subject_token_type": {serverapi.TokenTypeJWT},
		}
		if o.Audience != "" {
			params.Set("audience", o.Audience)
		}
		// clientcredentials allows grant_type to be overridden; without a
		// client id and secret, AuthStyleInParams sends no client
		// authentication, as RFC 8693 allows.
		return o.request(ctx, &clientcredentials.Config{TokenURL: tokenURL, Scopes: o.Scopes, EndpointParams: params, AuthStyle: oauth2.AuthStyleInParams})
	}
	return newSource(o, func(ctx context.Context) (*oauth2.Token, error) {
		subject, err := readTrimmed(subjectTokenFile)
		if err != nil {
			return nil, err
		}
		tok, err := send(ctx, subject)
		if status := statusOf(err); status == http.StatusBadRequest || status == http.StatusUnauthorized {
			if again, rerr := readTrimmed(subjectTokenFile); rerr == nil && again != subject {
				return send(ctx, again)
			}
		}
		return tok, err
	})
}

// TokenFile is a Source of the access token in path: the TokenFileName
// file of the account's mounted token Secret, which the operator re-mints
// before the token expires. The file is read again a minute after it was
// last read, or sooner at 80% of the token's lifetime (read from its
// unverified exp claim), so a re-minted token is picked up once kubelet
// has written it; a failed read keeps the cached token while it is valid.
// Refresh (after a 401) reads the file at once. Only Options.Clock and
// Options.Log apply.
func TokenFile(path string, o Options) *Source {
	o.defaults()
	s := newSource(o, func(context.Context) (*oauth2.Token, error) {
		raw, err := readTrimmed(path)
		if err != nil {
			return nil, err
		}
		return &oauth2.Token{AccessToken: raw, TokenType: "Bearer", Expiry: unverifiedExpiry(raw)}, nil
	})
	s.schedule = func(got time.Time, tok *oauth2.Token) (time.Time, time.Time) {
		refreshAt, until := refreshSchedule(got, tok)
		return minTime(refreshAt, got.Add(recheckUnknown)), until
	}
	return s
}

func newSource(o Options, attempt func(context.Context) (*oauth2.Token, error)) *Source {
	return &Source{
		opts: o,
		fetch: func(ctx context.Context, attempts int) (*oauth2.Token, error) {
			return o.withRetries(ctx, attempts, attempt)
		},
		schedule: refreshSchedule,
	}
}

// request sends one token request and stamps the token's Expiry from
// expires_in on the Source's clock (x/oauth2 uses the wall clock).
func (o *Options) request(ctx context.Context, cfg *clientcredentials.Config) (*oauth2.Token, error) {
	sent := o.Clock.Now()
	tok, err := cfg.Token(ctx)
	if err != nil {
		return nil, err
	}
	tok.Expiry = time.Time{}
	if secs := expiresIn(tok.Extra("expires_in")); secs > 0 {
		tok.Expiry = sent.Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}

// expiresIn reads expires_in as JSON (a number) or a form (a string) gives it.
func expiresIn(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// errorCode is the RFC 6749 §5.2 error of a token endpoint answer.
func errorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func statusOf(err error) int {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// credentials are a client id and secret read together.
type credentials struct{ id, secret string }

// readCredentials reads the client id and secret from one snapshot of dir.
// Kubelet writes a Secret volume as timestamped directories and swaps the
// `..data` symlink to the new one atomically, then removes the old one;
// the visible files are symlinks through `..data`. Reading both files
// through the resolved directory never mixes two versions; when that
// directory is removed between the resolution and the read (a swap just
// happened), the read starts over.
func readCredentials(dir string) (credentials, error) {
	for range 3 {
		base := dir
		if target, err := os.Readlink(filepath.Join(dir, "..data")); err == nil {
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			base = target
		}
		id, err1 := readTrimmed(filepath.Join(base, ClientIDFile))
		secret, err2 := readTrimmed(filepath.Join(base, ClientSecretFile))
		if err := errors.Join(err1, err2); err != nil {
			if base != dir && errors.Is(err, os.ErrNotExist) {
				continue // swapped under us; resolve again
			}
			return credentials{}, fmt.Errorf("authclient: reading the client credentials: %w", err)
		}
		return credentials{id: id, secret: secret}, nil
	}
	return credentials{}, fmt.Errorf("authclient: reading the client credentials in %s: the directory kept changing", dir)
}

// readTrimmed reads a small file without surrounding white space (a file
// written by hand often ends in a newline). An empty file is an error. The
// content is never part of an error.
func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("authclient: %s is empty", path)
	}
	return s, nil
}

// unverifiedExpiry is a JWT's exp, read without verifying anything: the
// client only needs to know when to read the file again. Zero when raw is
// not a JWT with exp.
func unverifiedExpiry(raw string) time.Time {
	t, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256})
	if err != nil {
		return time.Time{}
	}
	var c jwt.Claims
	if err := t.UnsafeClaimsWithoutVerification(&c); err != nil || c.Expiry == nil {
		return time.Time{}
	}
	return c.Expiry.Time()
}
