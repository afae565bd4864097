package auth

import (
	"crypto/sha256"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/authframework/authframework/internal/token"
)

// resultCache remembers verified token claims by SHA-256 of the token, never
// the token itself. An entry lives no longer than its token and stands only
// while what it depends on is unchanged (Store.current): its policy and keys,
// and its account's spec. Other accounts' changes leave it alone. Revocation,
// routes and the account's state are checked on every request, hit or miss.
type resultCache struct {
	lru *lru.Cache[[32]byte, cached]
}

type cached struct {
	claims  *token.Claims
	policy  *Policy
	expires time.Time
	// generation of the token's account when the entry was made.
	generation uint64
}

func newResultCache(size int) *resultCache {
	if size <= 0 {
		return &resultCache{}
	}
	c, _ := lru.New[[32]byte, cached](size)
	return &resultCache{lru: c}
}

func (c *resultCache) get(raw string, now time.Time) (cached, [32]byte, bool) {
	// Hashed in place: a token is hundreds of bytes, and a []byte copy of it
	// would be an allocation on every request. Sum256 only reads.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	if c.lru == nil {
		return cached{}, key, false
	}
	e, ok := c.lru.Get(key)
	if !ok || !now.Before(e.expires) {
		if ok {
			c.lru.Remove(key)
		}
		return cached{}, key, false
	}
	return e, key, true
}

func (c *resultCache) put(key [32]byte, e cached) {
	if c.lru != nil {
		c.lru.Add(key, e)
	}
}
