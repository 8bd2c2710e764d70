package admission

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ServingCert is the webhook's TLS certificate and the CA that signed it.
type ServingCert struct {
	Certificate tls.Certificate
	// CABundle is the CA certificate (PEM) for the webhook configuration.
	CABundle []byte
}

// The keys of the serving certificate's Secret (a kubernetes.io/tls
// Secret with the CA beside).
const (
	keyCA   = "ca.crt"
	keyCert = corev1.TLSCertKey
	keyKey  = corev1.TLSPrivateKeyKey
)

// certLifetime is how long a generated CA and certificate are valid; one
// is made again when less than certRenewBefore is left.
const (
	certLifetime    = 5 * 365 * 24 * time.Hour
	certRenewBefore = 30 * 24 * time.Hour
)

// EnsureServingCert returns the serving certificate kept in Secret
// namespace/name, valid for hosts (DNS names or IP addresses). A missing
// Secret is created with a new CA and certificate; one whose certificate
// does not cover hosts or expires soon is replaced. Replicas share it: the
// first to create it wins, the others read it.
func EnsureServingCert(ctx context.Context, client kubernetes.Interface, namespace, name string, hosts []string, timeout time.Duration) (*ServingCert, error) {
	secrets := client.CoreV1().Secrets(namespace)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cur, err := secrets.Get(cctx, name, metav1.GetOptions{})
	exists := err == nil
	switch {
	case exists:
		if sc, err := parseServingCert(cur.Data, hosts, time.Now()); err == nil {
			return sc, nil
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read secret %s/%s: %w", namespace, name, err)
	}
	data, err := newServingCert(hosts, time.Now())
	if err != nil {
		return nil, err
	}
	if !exists {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Type: corev1.SecretTypeTLS, Data: data}
		_, err = secrets.Create(cctx, s, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Another replica was first: use its certificate.
			if cur, err = secrets.Get(cctx, name, metav1.GetOptions{}); err != nil {
				return nil, fmt.Errorf("read secret %s/%s: %w", namespace, name, err)
			}
			return parseServingCert(cur.Data, hosts, time.Now())
		}
	} else {
		cur.Data = data
		_, err = secrets.Update(cctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("write secret %s/%s: %w", namespace, name, err)
	}
	return parseServingCert(data, hosts, time.Now())
}

// parseServingCert reads a Secret's data, refusing a certificate that
// does not cover hosts or expires within certRenewBefore of now.
func parseServingCert(data map[string][]byte, hosts []string, now time.Time) (*ServingCert, error) {
	pair, err := tls.X509KeyPair(data[keyCert], data[keyKey])
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	if now.Add(certRenewBefore).After(leaf.NotAfter) {
		return nil, errors.New("serving certificate expires soon")
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return nil, fmt.Errorf("serving certificate: %w", err)
		}
	}
	if len(data[keyCA]) == 0 {
		return nil, errors.New("serving certificate: no CA")
	}
	return &ServingCert{Certificate: pair, CABundle: data[keyCA]}, nil
}

// newServingCert makes a CA and a certificate it signs for hosts, as a
// Secret's data.
func newServingCert(hosts []string, now time.Time) (map[string][]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "atoll-admission-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "atoll-admission"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else if !slices.Contains(leaf.DNSNames, h) {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		keyCA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		keyCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
