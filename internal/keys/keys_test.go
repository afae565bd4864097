package keys

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func generateAll(t *testing.T) []Key {
	t.Helper()
	var out []Key
	for _, alg := range Algorithms {
		k, err := Generate(alg, 0, rand.Reader)
		if err != nil {
			t.Fatalf("Generate(%s): %v", alg, err)
		}
		out = append(out, k)
	}
	return out
}

func TestGenerateBindsTypeAndThumbprint(t *testing.T) {
	for _, k := range generateAll(t) {
		if err := CheckType(k.Algorithm, k.Public()); err != nil {
			t.Errorf("%s: generated key fails its own type check: %v", k.Algorithm, err)
		}
		again, err := Thumbprint(k.Public())
		if err != nil || again != k.ID {
			t.Errorf("%s: thumbprint not stable: %q vs %q (%v)", k.Algorithm, again, k.ID, err)
		}
		if len(k.ID) != 43 {
			t.Errorf("%s: kid %q is not a 43-character base64url SHA-256", k.Algorithm, k.ID)
		}
	}
}

func TestGenerateRefusesWeakOrUnknown(t *testing.T) {
	if _, err := Generate(jose.RS256, 1024, rand.Reader); err == nil {
		t.Error("generated a 1024-bit RSA key")
	}
	for _, alg := range []jose.SignatureAlgorithm{jose.HS256, "none", ""} {
		if _, err := Generate(alg, 0, rand.Reader); err == nil {
			t.Errorf("generated a key for %q", alg)
		}
	}
}

func TestCheckTypeRefusesMismatches(t *testing.T) {
	ks := generateAll(t)
	byAlg := map[jose.SignatureAlgorithm]Key{}
	for _, k := range ks {
		byAlg[k.Algorithm] = k
	}
	mismatches := []struct {
		alg jose.SignatureAlgorithm
		key Key
	}{
		{jose.ES256, byAlg[jose.ES384]}, // wrong curve
		{jose.ES384, byAlg[jose.ES256]},
		{jose.EdDSA, byAlg[jose.ES256]},
		{jose.RS256, byAlg[jose.EdDSA]},
		{jose.ES256, byAlg[jose.RS256]},
		{jose.HS256, byAlg[jose.RS256]},
	}
	for _, m := range mismatches {
		if err := CheckType(m.alg, m.key.Public()); err == nil {
			t.Errorf("%s accepted a %s key", m.alg, m.key.Algorithm)
		}
	}
}

func TestPrivateSetRoundTrip(t *testing.T) {
	ks := generateAll(t)
	data, err := MarshalPrivate(ks)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivate(data)
	if err != nil {
		t.Fatalf("ParsePrivate: %v", err)
	}
	if len(back) != len(ks) {
		t.Fatalf("got %d keys back, want %d", len(back), len(ks))
	}
	for i := range ks {
		if back[i].ID != ks[i].ID || back[i].Algorithm != ks[i].Algorithm {
			t.Errorf("key %d: got %s/%s, want %s/%s", i, back[i].ID, back[i].Algorithm, ks[i].ID, ks[i].Algorithm)
		}
	}
}

func TestParsePrivateRefusesDamage(t *testing.T) {
	ks := generateAll(t)
	good, _ := MarshalPrivate(ks[:1])
	public, _ := json.Marshal(PublicSet(ks[:1]))
	cases := map[string]string{
		"not json":     "{",
		"public only":  string(public),
		"kid changed":  strings.Replace(string(good), ks[0].ID, strings.Repeat("A", 43), 1),
		"alg changed":  strings.Replace(string(good), `"alg":"ES256"`, `"alg":"ES384"`, 1),
		"alg removed":  strings.Replace(string(good), `"alg":"ES256",`, ``, 1),
		"duplicate":    `{"keys":[` + string(good[9:len(good)-2]) + `,` + string(good[9:len(good)-2]) + `]}`,
		"truncated":    string(good[:len(good)/2]),
		"wrong member": `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x","alg":"HS256"}]}`,
	}
	for name, data := range cases {
		if _, err := ParsePrivate([]byte(data)); err == nil {
			t.Errorf("%s: damaged key set accepted", name)
		}
	}
}

// TestPublicSetHasNoPrivateMembers checks the JWKS verifiers see: no private
// member of any key type may appear.
func TestPublicSetHasNoPrivateMembers(t *testing.T) {
	data, err := json.Marshal(PublicSet(generateAll(t)))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Keys) != len(Algorithms) {
		t.Fatalf("public set has %d keys, want %d", len(raw.Keys), len(Algorithms))
	}
	private := []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
	for _, k := range raw.Keys {
		for _, m := range private {
			if _, ok := k[m]; ok {
				t.Errorf("public key %v has private member %q", k["kid"], m)
			}
		}
		for _, m := range []string{"kid", "alg", "use", "kty"} {
			if _, ok := k[m]; !ok {
				t.Errorf("public key %v lacks %q", k["kid"], m)
			}
		}
	}
}

// TestParsePrivateRefusesMismatchedPairs: a key whose private half is not
// the one its published half belongs to is refused, for every algorithm.
func TestParsePrivateRefusesMismatchedPairs(t *testing.T) {
	for _, alg := range Algorithms {
		real, err := Generate(alg, 0, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := Generate(alg, 0, rand.Reader)
		good, _ := MarshalPrivate([]Key{real})
		if _, err := ParsePrivate(good); err != nil {
			t.Fatalf("%s: a real key is refused: %v", alg, err)
		}
		var realJWK, otherJWK map[string]any
		b, _ := MarshalPrivate([]Key{other})
		_ = json.Unmarshal(good, &realJWK)
		_ = json.Unmarshal(b, &otherJWK)
		rk := realJWK["keys"].([]any)[0].(map[string]any)
		ok := otherJWK["keys"].([]any)[0].(map[string]any)
		rk["d"] = ok["d"] // the published half stays the real one
		if alg == "RS256" || alg == "PS256" {
			for _, m := range []string{"p", "q", "dp", "dq", "qi"} {
				rk[m] = ok[m]
			}
		}
		forged, _ := json.Marshal(realJWK)
		if _, err := ParsePrivate(forged); err == nil {
			t.Errorf("%s: a private key with another key's private half was accepted under the real kid", alg)
		}
	}
}
