package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImage builds the image as `make image` does, opens the archive and
// checks what a cluster will run: the entrypoint, the non-root user, the
// version (in the labels and as the binary prints it), the CA bundle; then
// pushes it to a registry and reads it back.
func TestImage(t *testing.T) {
	const version = "v9.8.7-test"
	out := filepath.Join(t.TempDir(), "atoll-image.tar")
	if err := build("../..", version, runtime.GOARCH, out); err != nil {
		t.Fatal(err)
	}
	img, cleanup, err := readArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s (%v), want %s", mt, err, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/atoll" {
		t.Errorf("entrypoint %q, want /atoll", got)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cf.Config.User)
	}
	if v := cf.Config.Labels["org.opencontainers.image.version"]; v != version {
		t.Errorf("version label %q, want %q", v, version)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}

	// The files: atoll executable, the CA bundle, the user in /etc/passwd.
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	bin := filepath.Join(t.TempDir(), "atoll")
	var passwd string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		switch h.Name {
		case "atoll":
			f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		case "etc/passwd":
			b, _ := io.ReadAll(tr)
			passwd = string(b)
		}
	}
	if h := files["atoll"]; h == nil || h.Mode&0o111 == 0 {
		t.Errorf("/atoll missing or not executable: %+v", h)
	}
	if h := files["etc/ssl/certs/ca-certificates.crt"]; h == nil || h.Size == 0 {
		t.Errorf("no CA bundle in the image")
	}
	if !strings.Contains(passwd, "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the user: %q", passwd)
	}
	// The binary is static and says its version.
	outb, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("atoll version from the image: %v", err)
	}
	var v struct{ Version string }
	if err := json.Unmarshal(outb, &v); err != nil || v.Version != version {
		t.Errorf("atoll version -o json = %s (%v), want version %q", outb, err, version)
	}

	// Push to a registry and read it back: the same digest.
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/atoll-dev/atoll:" + version
	if err := push(out, ref); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if got, err := pulled.Digest(); err != nil || got != want {
		t.Errorf("pulled digest %s (%v), want %s", got, err, want)
	}
}

// TestDeployPinsTheRelease: deploy/master runs the release VERSION names,
// never a moving tag.
func TestDeployPinsTheRelease(t *testing.T) {
	v, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	dep, err := os.ReadFile("../../deploy/master/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "image: " + Repository + ":" + strings.TrimSpace(string(v))
	if !strings.Contains(string(dep), want+" ") && !strings.Contains(string(dep), want+"\n") {
		t.Errorf("deploy/master/deployment.yaml does not say %q", want)
	}
	if strings.Contains(string(dep), ":latest") {
		t.Errorf("deploy/master/deployment.yaml names a :latest image")
	}
}
