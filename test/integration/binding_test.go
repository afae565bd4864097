package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// TestRecreatedAccountDoesNotInheritTokens: deleting ServiceAccount billing
// and creating a new billing (other roles) does not make the old object's
// tokens or client secret valid again, on a real API server with the real
// feed and garbage collector.
func TestRecreatedAccountDoesNotInheritTokens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, policy := accountFixture(t)
	r := startReplica(t, ctx, ns)
	createRole(t, ns, "orders-reader", "orders:read")
	createRole(t, ns, "admin", "admin:*")
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	create := func(role string) *authv1alpha1.ServiceAccount {
		sa := &authv1alpha1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
			Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{role}},
		}
		if err := k8sClient.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		return waitAccount(t, key, "account ready", ready)
	}
	tokenOf := func(cc clientcredentials.Config) (string, error) {
		tk, err := cc.Token(ctx)
		if err != nil {
			return "", err
		}
		return tk.AccessToken, nil
	}
	first := create("orders-reader")
	oldCreds := clientcredentials.Config{
		ClientID:     secretData(t, ns, "billing"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientIDKey),
		ClientSecret: secretData(t, ns, "billing"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientSecretKey),
		TokenURL:     r.url + "/token",
	}
	var old string
	testenv.Eventually(t, "a token for the first billing", func() (err error) {
		old, err = tokenOf(oldCreds)
		return err
	})
	if code, _ := r.validate(t, old, ""); code != 200 {
		t.Fatalf("first billing's token: %d", code)
	}

	if err := k8sClient.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "first billing gone", func() error {
		if err := k8sClient.Get(ctx, key, &authv1alpha1.ServiceAccount{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	// Created at once, before the garbage collector has removed the first
	// object's Secrets.
	second := create("admin")
	if second.UID == first.UID {
		t.Fatal("the API server reused a UID")
	}
	testenv.Eventually(t, "the first billing's token refused by the server", func() error {
		code, hdr := r.validate(t, old, "")
		if code != 401 || hdr.Get(auth.HeaderAuthError) != "unknown_client" || hdr.Get("X-User-Roles") != "" {
			return fmt.Errorf("%d %q roles %q", code, hdr.Get(auth.HeaderAuthError), hdr.Get("X-User-Roles"))
		}
		return nil
	})
	var fresh clientcredentials.Config
	testenv.Eventually(t, "the second billing's own credentials work", func() (err error) {
		fresh = clientcredentials.Config{
			ClientID:     secretData(t, ns, "billing"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientIDKey),
			ClientSecret: secretData(t, ns, "billing"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientSecretKey),
			TokenURL:     r.url + "/token",
		}
		if fresh.ClientSecret == oldCreds.ClientSecret {
			return fmt.Errorf("the credentials Secret still holds the first billing's secret")
		}
		tok, err := tokenOf(fresh)
		if err != nil {
			return err
		}
		if code, hdr := r.validate(t, tok, ""); code != 200 || hdr.Get("X-User-Roles") != "admin" {
			return fmt.Errorf("%d %v", code, hdr)
		}
		return nil
	})
	// The first object's client secret authenticates nobody now.
	if _, err := tokenOf(oldCreds); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("the first billing's client secret still gets tokens: %v", err)
	}
}

// TestTokenSizeBoundIsAnnounced: an account whose full token would exceed
// the bound says so in a condition before anyone calls /token, and /token
// answers invalid_scope until the client narrows the scope.
func TestTokenSizeBoundIsAnnounced(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, policy := accountFixture(t)
	r := startReplica(t, ctx, ns)
	var perms []string
	for i := range 120 {
		perms = append(perms, fmt.Sprintf("inventory-service.warehouse-%03d:stock-level-and-reservations:read", i))
	}
	createRole(t, ns, "wide", perms...)
	key := types.NamespacedName{Namespace: ns, Name: "wide"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"wide"}},
	}); err != nil {
		t.Fatal(err)
	}
	sa := waitAccount(t, key, "TokenIssuable=False", func(sa *authv1alpha1.ServiceAccount) error {
		c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionTokenIssuable)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != authv1alpha1.ReasonTokenTooLarge {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	if err := ready(sa); err != nil {
		t.Errorf("narrowed tokens work, so the account stays Ready: %v", err)
	}
	t.Logf("TokenIssuable: %s", meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionTokenIssuable).Message)
	cc := clientcredentials.Config{
		ClientID:     secretData(t, ns, "wide"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientIDKey),
		ClientSecret: secretData(t, ns, "wide"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientSecretKey),
		TokenURL:     r.url + "/token",
	}
	testenv.Eventually(t, "/token without scope refused as invalid_scope", func() error {
		_, err := cc.Token(ctx)
		if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
			return fmt.Errorf("%v", err)
		}
		return nil
	})
	cc.Scopes = perms[:40]
	tk, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("a narrowed scope: %v", err)
	}
	if code, hdr := r.validate(t, tk.AccessToken, "?permission="+url.QueryEscape(perms[0])); code != http.StatusOK {
		t.Errorf("the narrowed token: %d %s", code, hdr.Get(auth.HeaderAuthError))
	}

	// Narrowing the Role turns the condition True.
	var role authv1alpha1.Role
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "wide"}, &role); err != nil {
		t.Fatal(err)
	}
	testenv.Update(t, k8sClient, &role, func() { role.Spec.Permissions = perms[:20] })
	waitAccount(t, key, "TokenIssuable=True", func(sa *authv1alpha1.ServiceAccount) error {
		c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionTokenIssuable)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
}
