package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	admissionlisters "k8s.io/client-go/listers/admissionregistration/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// PathPrefix is where a policy's webhook is served: PathPrefix + policy.
const PathPrefix = "/tolerate/"

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// request limit is 3 MiB).
const maxReviewBytes = 4 << 20

// Handler serves the tolerateIn webhooks. It reads which tolerations each
// policy adds from the webhook configuration it watches, so every replica
// answers alike.
type Handler struct {
	name     string
	informer cache.SharedIndexInformer
	lister   admissionlisters.MutatingWebhookConfigurationLister
	log      *slog.Logger
}

// NewHandler returns a Handler for the webhook configuration named name.
// Run must run for it to answer with tolerations.
func NewHandler(client kubernetes.Interface, name string, log *slog.Logger) *Handler {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}))
	i := f.Admissionregistration().V1().MutatingWebhookConfigurations()
	return &Handler{name: name, informer: i.Informer(), lister: i.Lister(), log: log}
}

// Run watches the webhook configuration until ctx ends.
func (h *Handler) Run(ctx context.Context) error {
	h.informer.Run(ctx.Done())
	return nil
}

// tolerations returns what policy's webhook adds.
func (h *Handler) tolerations(policy string) ([]corev1.Toleration, error) {
	if !h.informer.HasSynced() {
		return nil, errors.New("webhook configuration not read yet")
	}
	c, err := h.lister.Get(h.name)
	if err != nil {
		return nil, fmt.Errorf("webhook configuration %s: %w", h.name, err)
	}
	m, err := decodeTolerations(c.Annotations[AnnotationTolerations])
	if err != nil {
		return nil, fmt.Errorf("webhook configuration %s: %w", h.name, err)
	}
	t, ok := m[policy]
	if !ok {
		return nil, fmt.Errorf("webhook configuration %s has no tolerations for policy %q", h.name, policy)
	}
	return t, nil
}

// ServeHTTP answers an AdmissionReview for a pod CREATE on
// PathPrefix+policy with a JSON patch adding the policy's tolerations the
// pod lacks. It never denies: a pod it cannot mutate is admitted as is
// (and the webhook's failurePolicy is Ignore).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	policy, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok || policy == "" || strings.Contains(policy, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil || len(body) > maxReviewBytes {
		http.Error(w, "unreadable or too large AdmissionReview", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	if patch, err := h.patch(policy, review.Request); err != nil {
		h.log.Warn("pod admitted without tolerations", "policy", policy, "namespace", review.Request.Namespace, "err", err)
		resp.Warnings = []string{"atoll: no tolerations added: " + err.Error()}
	} else if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	review.Response, review.Request = resp, nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

// patch returns the JSON patch for one request, nil if nothing is missing.
func (h *Handler) patch(policy string, req *admissionv1.AdmissionRequest) ([]byte, error) {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" || req.Operation != admissionv1.Create {
		return nil, nil
	}
	want, err := h.tolerations(policy)
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	return tolerationPatch(pod.Spec.Tolerations, want)
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// tolerationPatch is the JSON patch adding to have what it lacks of want
// (tolerations of exactly one taint each, as TolerationFor makes them): a
// taint have tolerates already, by an Exists or a wider toleration, is
// not tolerated twice.
func tolerationPatch(have, want []corev1.Toleration) ([]byte, error) {
	var missing []corev1.Toleration
	for _, t := range want {
		taint := corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect}
		if !tolerates(have, &taint) && !tolerates(missing, &taint) {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	var ops []jsonPatchOp
	if have == nil {
		ops = []jsonPatchOp{{Op: "add", Path: "/spec/tolerations", Value: missing}}
	} else {
		for _, t := range missing {
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/spec/tolerations/-", Value: t})
		}
	}
	return json.Marshal(ops)
}

func tolerates(list []corev1.Toleration, t *corev1.Taint) bool {
	for i := range list {
		if list[i].ToleratesTaint(klog.Background(), t, false) {
			return true
		}
	}
	return false
}
