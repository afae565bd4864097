package serverapi

// The JSON documents the auth server answers with, for the clients and test
// servers that read or write the same shapes.

// Discovery is the OpenID Connect discovery document of one issuer
// (DiscoveryPath; OpenID Connect Discovery 1.0 §3, RFC 8414 §2): enough for
// standard validators to find the keys and the endpoints.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
}

// TokenResponse is PathToken's answer (RFC 6749 §5.1). No refresh token: the
// client credentials grant must not issue one (RFC 6749 §4.4.3).
// IssuedTokenType is set by a token exchange (RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	// ExpiresIn is the token's lifetime in seconds.
	ExpiresIn       int    `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// Introspection is PathIntrospect's answer (RFC 7662 §2.2); an inactive
// token has Active false and nothing else. Times are Unix seconds.
type Introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
}
