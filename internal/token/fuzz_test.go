package token

import (
	"errors"
	"strings"
	"testing"
)

var sentinels = []error{
	ErrMalformed, ErrTooLarge, ErrAlgorithm, ErrForbiddenHeader, ErrType, ErrMissingKeyID, ErrUnknownKey,
	ErrKeyAlgorithm, ErrSignature, ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid, ErrIssuedInFuture,
	ErrLifetime, ErrMissingClaim,
}

// FuzzVerify feeds arbitrary strings to Verify. It must never panic, must
// return claims exactly when it returns no error, must classify every error
// as one of the typed errors, and must only accept tokens signed by our key.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	valid := fx.token(fx.header(fx.key), fx.claims())
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid, "", ".", "..", "...", parts[0] + "." + parts[1] + ".",
		"eyJhbGciOiJub25lIn0.e30.", parts[0] + ".e30." + parts[2],
		valid + "x", strings.ToUpper(valid), "a.b.c", "\x00.\x00.\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := fx.verifier.Verify(raw)
		if (c == nil) == (err == nil) {
			t.Fatalf("claims %v with error %v", c, err)
		}
		if err == nil {
			// Only the untouched signed token can pass; any other string that
			// verifies would be a forgery.
			if raw != valid {
				t.Fatalf("accepted a token that is not the one we signed: %q", raw)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("untyped error: %v", err)
	})
}
