package vnode

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestPodDependencies(t *testing.T) {
	tests := []struct {
		name string
		spec corev1.PodSpec
		want []Dependency
	}{
		{name: "none", spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}, want: []Dependency{}},
		{
			name: "service account token volume and kube-root-ca.crt are not dependencies",
			spec: corev1.PodSpec{Volumes: []corev1.Volume{
				{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				}}}},
				{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}}},
			}},
			want: []Dependency{},
		},
		{
			name: "volumes projected env envFrom pull secrets",
			spec: corev1.PodSpec{
				Volumes: []corev1.Volume{
					{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}}}},
					{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec-vol", Optional: ptr.To(true)}}},
					{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
						{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-proj"}}},
						{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-proj"}}},
					}}}},
				},
				InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{
					{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-envfrom"}, Optional: ptr.To(true)}},
				}}},
				Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{
					{Name: "A", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-env"}, Key: "k"}}},
					{Name: "B", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}, Key: "k", Optional: ptr.To(true)}}},
					{Name: "C", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				}}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			},
			want: []Dependency{
				{Kind: KindConfigMap, Name: "cm-envfrom", Optional: true},
				{Kind: KindConfigMap, Name: "cm-proj"},
				// required through the volume, optional through env: required
				{Kind: KindConfigMap, Name: "cm-vol"},
				{Kind: KindSecret, Name: "pull", Optional: true},
				{Kind: KindSecret, Name: "sec-env"},
				{Kind: KindSecret, Name: "sec-proj"},
				{Kind: KindSecret, Name: "sec-vol", Optional: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PodDependencies(&corev1.Pod{Spec: tt.spec})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PodDependencies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMissingDependencyError(t *testing.T) {
	err := error(&MissingDependencyError{Kind: KindSecret, Namespace: "ns", Name: "s"})
	if !errors.Is(err, ErrMissingDependency) {
		t.Fatal("errors.Is(err, ErrMissingDependency) = false")
	}
	if got, want := err.Error(), `secret "ns/s" not found`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestRemoteCopies(t *testing.T) {
	ns := NamespaceMapping{Mode: NamespacePrefix, Prefix: "hub-"}
	cm := &corev1.ConfigMap{Data: map[string]string{"k": "v"}}
	cm.Name, cm.Namespace, cm.UID, cm.ResourceVersion = "cfg", "shop", "cm-uid", "42"
	cm.Labels = map[string]string{"app": "web"}
	got := remoteConfigMap(cm, ns, "master", "node")
	if got.Namespace != "hub-shop" || got.Name != "cfg" || got.ResourceVersion != "" || got.UID != "" {
		t.Fatalf("remote ConfigMap meta = %+v", got.ObjectMeta)
	}
	wantLabels := map[string]string{"app": "web", LabelOriginUID: "cm-uid", LabelMaster: "master", LabelNode: "node"}
	if diff := cmp.Diff(wantLabels, got.Labels); diff != "" {
		t.Fatalf("labels (-want +got):\n%s", diff)
	}
	if !ownedBy(got, "master", "node") || ownedBy(got, "other", "node") || ownedBy(got, "master", "other") {
		t.Fatal("ownedBy disagrees with the labels")
	}
	cm.Data["k"] = "changed"
	if got.Data["k"] != "v" {
		t.Fatal("the copy shares its data map with the master object")
	}
	s := &corev1.Secret{Data: map[string][]byte{"p": []byte("x")}, Type: corev1.SecretTypeOpaque}
	s.Name, s.Namespace, s.UID = "sec", "shop", "s-uid"
	gs := remoteSecret(s, ns, "master", "node")
	if gs.Namespace != "hub-shop" || string(gs.Data["p"]) != "x" || gs.Type != corev1.SecretTypeOpaque || gs.Labels[LabelOriginUID] != "s-uid" {
		t.Fatalf("remote Secret = %+v", gs)
	}
}
