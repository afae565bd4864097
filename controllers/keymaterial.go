package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/keys"
)

// KeyMaterial is the controller's own copy of every policy's private keys.
// When a key Secret is deleted or damaged, the controller restores the same
// keys from here instead of generating new ones, which would make every token
// signed so far invalid. It lives as long as the process; a new leader starts
// from the Secrets.
type KeyMaterial struct {
	mu     sync.Mutex
	byName map[types.NamespacedName]heldKeys
}

type heldKeys struct {
	// uid tells a policy from a later one of the same name, which must not
	// inherit its keys.
	uid  types.UID
	keys map[string]keys.Key
}

// NewKeyMaterial returns an empty store.
func NewKeyMaterial() *KeyMaterial {
	return &KeyMaterial{byName: map[types.NamespacedName]heldKeys{}}
}

// Get returns a copy of the keys held for the policy with this name and UID.
func (m *KeyMaterial) Get(name types.NamespacedName, uid types.UID) map[string]keys.Key {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.byName[name]
	out := map[string]keys.Key{}
	if !ok || h.uid != uid {
		return out
	}
	for id, k := range h.keys {
		out[id] = k
	}
	return out
}

// Set replaces the keys held for a policy.
func (m *KeyMaterial) Set(name types.NamespacedName, uid types.UID, ks []keys.Key) {
	held := make(map[string]keys.Key, len(ks))
	for _, k := range ks {
		held[k.ID] = k
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byName[name] = heldKeys{uid: uid, keys: held}
}

// Forget drops a deleted policy's keys.
func (m *KeyMaterial) Forget(name types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byName, name)
}
