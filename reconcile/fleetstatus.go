package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// StatusConfigMap is the ConfigMap in Atoll's namespace where the
// reconciler keeps the last outcome, for `atoll status` in another process.
const (
	StatusConfigMap = "atoll-status"
	statusKey       = "status.json"
)

// FleetStatus is the reconciler's last outcome.
type FleetStatus struct {
	// Revision is the revision last picked up; Applied the last one whose
	// nodes were all applied.
	Revision string `json:"revision,omitempty"`
	Applied  string `json:"applied,omitempty"`
	// State and Description are those of the revision's commit status.
	State       CommitState `json:"state,omitempty"`
	Description string      `json:"description,omitempty"`
	// Error is the revision's error (invalid, refused, fetch failed).
	Error    string          `json:"error,omitempty"`
	Updated  time.Time       `json:"updated"`
	Clusters []ClusterStatus `json:"clusters"`
}

// ClusterStatus is the last outcome for one declared (or draining) cluster.
type ClusterStatus struct {
	Name          string `json:"name"`
	Ready         bool   `json:"ready"`
	Reason        string `json:"reason,omitempty"`
	DelegatedPods int    `json:"delegatedPods"`
	// Revision is the revision whose declaration this node last had applied.
	Revision      string    `json:"revision,omitempty"`
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
	// Draining is set while the node is being drained for removal.
	Draining bool `json:"draining,omitempty"`
}

// ReadStatus reads the FleetStatus kept in namespace. A missing ConfigMap
// gives an empty status and no error.
func ReadStatus(ctx context.Context, client kubernetes.Interface, namespace string) (*FleetStatus, error) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(cctx, StatusConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &FleetStatus{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read status %s/%s: %w", namespace, StatusConfigMap, err)
	}
	var s FleetStatus
	if err := json.Unmarshal([]byte(cm.Data[statusKey]), &s); err != nil {
		return nil, fmt.Errorf("decode status %s/%s: %w", namespace, StatusConfigMap, err)
	}
	return &s, nil
}

// writeStatus stores s in the status ConfigMap, creating it if needed.
func writeStatus(ctx context.Context, client kubernetes.Interface, namespace string, s *FleetStatus, timeout time.Duration) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cms := client.CoreV1().ConfigMaps(namespace)
	cm, err := cms.Get(cctx, StatusConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: StatusConfigMap, Namespace: namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "atoll"}},
			Data: map[string]string{statusKey: string(data)},
		}
		_, err = cms.Create(cctx, cm, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create status configmap: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get status configmap: %w", err)
	}
	if cm.Data[statusKey] == string(data) {
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[statusKey] = string(data)
	if _, err := cms.Update(cctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status configmap: %w", err)
	}
	return nil
}
