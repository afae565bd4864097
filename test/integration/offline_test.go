package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// TestValidationSurvivesTheAPIServer: once its informers have synced, the
// auth server keeps validating from the last known state, and stays ready,
// when the API server goes away. It runs against a control plane of its own,
// which it stops.
func TestValidationSurvivesTheAPIServer(t *testing.T) {
	env := &envtest.Environment{CRDDirectoryPaths: []string{testenv.Path("config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.K8sBinDir(), Scheme: scheme}
	c, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clocktesting.NewFakeClock(time.Now())
	testenv.RunManager(t, ctx, c, controllers.ManagerOptions{Scheme: scheme, Controllers: controllers.Options{Clock: clk}})

	// The informers keep running (and retrying) after the API server is gone.
	feedCtx, stopFeed := context.WithCancel(context.Background())
	defer stopFeed()
	srv := testenv.StartAuthServer(t, feedCtx, c, scheme, auth.ProcessOptions{RevocationNamespace: "default",
		Server: auth.Options{Clock: clk, CacheSize: 100}})

	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/p", Audiences: []string{"api"}}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "c"},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "p"}}}); err != nil {
		t.Fatal(err)
	}
	var id, secret string
	testenv.Eventually(t, "credentials", func() error {
		var sa authv1alpha1.ServiceAccount
		if err := cl.Get(ctx, types.NamespacedName{Namespace: "default", Name: "c"}, &sa); err != nil {
			return err
		}
		if err := ready(&sa); err != nil {
			return err
		}
		id = sa.Status.ClientID
		return nil
	})
	var creds corev1.Secret
	if err := cl.Get(ctx, types.NamespacedName{Namespace: "default", Name: "c" + authv1alpha1.CredentialsSecretSuffix}, &creds); err != nil {
		t.Fatal(err)
	}
	secret = string(creds.Data[authv1alpha1.ClientSecretKey])
	var tok string
	testenv.Eventually(t, "a token", func() error {
		form := url.Values{"grant_type": {"client_credentials"}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("token endpoint: %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		tok = body.AccessToken
		return nil
	})

	// The API server goes away (the manager first, so it does not log
	// leader-election failures for the rest of the suite).
	cancel()
	killAPIServer(t, c.Host)
	if resp, err := http.Get(c.Host + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatal("the API server still answers")
	}
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/validate?aud=api", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("validation without the API server: %v %v", resp, err)
		}
		resp.Body.Close()
		resp, err = http.Get(srv.URL + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/readyz without the API server: %v %v", resp, err)
		}
		resp.Body.Close()
	}
}

// killAPIServer kills the kube-apiserver serving host, as a crash would.
func killAPIServer(t *testing.T, host string) {
	t.Helper()
	u, err := url.Parse(host)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], "kube-apiserver") && slices.Contains(args, "--secure-port="+u.Port()) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, "kube-apiserver gone", func() error {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
					return fmt.Errorf("still running")
				}
				return nil
			})
			return
		}
	}
	t.Fatalf("no kube-apiserver with --secure-port=%s", u.Port())
}
