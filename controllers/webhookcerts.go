package controllers

import (
	"context"
	"k8s.io/utils/ptr"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/certs"
)

// Keys of the webhook certificate Secret.
const (
	CACertKey     = "ca.crt"
	CAKeyKey      = "ca.key"
	PreviousCAKey = "previous-ca.crt"
	// SecretRoleWebhookCerts marks the webhook certificate Secret.
	SecretRoleWebhookCerts = "webhook-certs"
)

// WebhookCertReconciler keeps the webhook serving certificate: it creates a
// CA and a serving certificate in a Secret, renews them at two thirds of
// their lifetime, injects the CA bundle into the named webhook
// configurations, and loads the current certificate into the Provider the
// webhook server reads on every handshake. It runs on every replica (not
// only the leader) because every replica serves webhooks; concurrent writes
// resolve through optimistic concurrency.
type WebhookCertReconciler struct {
	client.Client
	Clock    clock.PassiveClock
	Secret   types.NamespacedName
	Hosts    certs.Hosts
	Provider *certs.Provider
	// ValidatingConfig and MutatingConfig name the webhook configurations
	// whose caBundle is kept current.
	ValidatingConfig, MutatingConfig string
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=get;list;watch;update;patch

// Reconcile renews what is due, injects the bundle and loads the certificate.
func (r *WebhookCertReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	now := r.Clock.Now()
	var secret corev1.Secret
	err := r.Get(ctx, r.Secret, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	exists := err == nil
	b := certs.Bundle{CACert: secret.Data[CACertKey], CAKey: secret.Data[CAKeyKey], Cert: secret.Data[corev1.TLSCertKey],
		Key: secret.Data[corev1.TLSPrivateKeyKey], PreviousCA: secret.Data[PreviousCAKey]}
	d := certs.Plan(b, r.Hosts, now)
	if d.NewCA || d.NewServing {
		if b, err = certs.Apply(b, d, r.Hosts, now); err != nil {
			return ctrl.Result{}, err
		}
		log.FromContext(ctx).Info("issued webhook certificates", "newCA", d.NewCA, "renewAt", d.Next)
		secret.ObjectMeta = metav1.ObjectMeta{Namespace: r.Secret.Namespace, Name: r.Secret.Name, ResourceVersion: secret.ResourceVersion,
			Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, authv1alpha1.LabelSecretRole: SecretRoleWebhookCerts}}
		secret.Type = corev1.SecretTypeTLS
		secret.Data = map[string][]byte{CACertKey: b.CACert, CAKeyKey: b.CAKey, corev1.TLSCertKey: b.Cert, corev1.TLSPrivateKeyKey: b.Key}
		if len(b.PreviousCA) > 0 {
			secret.Data[PreviousCAKey] = b.PreviousCA
		}
		if exists {
			err = r.Update(ctx, &secret)
		} else {
			err = r.Create(ctx, &secret)
		}
		if err != nil {
			return ctrl.Result{}, err // a conflict means another replica renewed: start over
		}
	}
	// Clients must trust the new CA before the new certificate is served.
	if err := r.inject(ctx, b.CABundle()); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Provider.Set(b.Cert, b.Key); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeueAfter(d.Next, now)}, nil
}

func (r *WebhookCertReconciler) inject(ctx context.Context, bundle []byte) error {
	if r.ValidatingConfig != "" {
		var vwc admissionregistrationv1.ValidatingWebhookConfiguration
		if err := r.Get(ctx, types.NamespacedName{Name: r.ValidatingConfig}, &vwc); client.IgnoreNotFound(err) != nil {
			return err
		} else if err == nil {
			before := vwc.DeepCopy()
			for i := range vwc.Webhooks {
				vwc.Webhooks[i].ClientConfig.CABundle = bundle
			}
			if !semanticEqual(before.Webhooks, vwc.Webhooks) {
				if err := r.Patch(ctx, &vwc, client.MergeFrom(before)); err != nil {
					return err
				}
			}
		}
	}
	if r.MutatingConfig != "" {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := r.Get(ctx, types.NamespacedName{Name: r.MutatingConfig}, &mwc); client.IgnoreNotFound(err) != nil {
			return err
		} else if err == nil {
			before := mwc.DeepCopy()
			for i := range mwc.Webhooks {
				mwc.Webhooks[i].ClientConfig.CABundle = bundle
			}
			if !semanticEqual(before.Webhooks, mwc.Webhooks) {
				return r.Patch(ctx, &mwc, client.MergeFrom(before))
			}
		}
	}
	return nil
}

// SetupWithManager watches the Secret and both configurations; every event
// maps to the one request.
func (r *WebhookCertReconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: r.Secret}}
	})
	named := func(names ...string) builder.Predicates {
		return builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			for _, n := range names {
				if o.GetName() == n {
					return true
				}
			}
			return false
		}))
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("webhook-certs").
		// Look once at start: the Secret and configurations may not exist yet.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(reconcile.Request{NamespacedName: r.Secret})
			return nil
		})).
		Watches(&corev1.Secret{}, one, named(r.Secret.Name)).
		Watches(&admissionregistrationv1.ValidatingWebhookConfiguration{}, one, named(r.ValidatingConfig)).
		Watches(&admissionregistrationv1.MutatingWebhookConfiguration{}, one, named(r.MutatingConfig)).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}
