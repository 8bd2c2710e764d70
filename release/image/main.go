// Command image builds Atoll's container image without a container
// engine, and pushes it.
//
//	go run ./release/image build -version v0.1.0 -o bin/atoll-image.tar
//	go run ./release/image push -i bin/atoll-image.tar ghcr.io/atoll-dev/atoll:v0.1.0
//
// The image is one layer on nothing: the static atoll binary (built with
// the kustomize_disable_go_plugin_support tag and main.version set), the
// build machine's CA bundle, and /etc/passwd and /etc/group naming the
// non-root user it runs as. It is written as an OCI image layout in a tar
// file (an "OCI archive": `podman load`, `docker load` (25 and later) and
// `skopeo copy oci-archive:` read it).
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Repository is where Atoll's images are published.
const Repository = "ghcr.io/atoll-dev/atoll"

// The user the image runs as (distroless's "nonroot").
const (
	uid  = 65532
	user = "65532:65532"
)

// caBundle is where Debian keeps the CA bundle, and where the image has it.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: image build|push [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		fs := flag.NewFlagSet("build", flag.ExitOnError)
		version := fs.String("version", "", "release version, e.g. v0.1.0 (required)")
		out := fs.String("o", "bin/atoll-image.tar", "image tarball to write")
		arch := fs.String("arch", runtime.GOARCH, "GOARCH of the binary")
		_ = fs.Parse(os.Args[2:])
		err = build(".", *version, *arch, *out)
	case "push":
		fs := flag.NewFlagSet("push", flag.ExitOnError)
		in := fs.String("i", "bin/atoll-image.tar", "image tarball to push")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			err = errors.New("push needs the image reference, e.g. " + Repository + ":v0.1.0")
			break
		}
		err = push(*in, fs.Arg(0))
	default:
		err = fmt.Errorf("unknown command %q: want build or push", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// build compiles atoll (of the module at root) for linux/arch and writes
// the image tarball, tagged Repository:version.
func build(root, version, arch, out string) error {
	if version == "" {
		return errors.New("-version is required")
	}
	tmp, err := os.MkdirTemp("", "atoll-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "atoll")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "kustomize_disable_go_plugin_support",
		"-ldflags", "-s -w -X main.version="+version, "-o", bin, "./cmd/atoll")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build atoll: %w", err)
	}
	img, err := assemble(bin, caBundle, version, arch)
	if err != nil {
		return err
	}
	tag := Repository + ":" + version
	if err := writeArchive(out, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s@%s\n", out, tag, d)
	return nil
}

// writeArchive writes img, named tag, as an OCI image layout packed in the
// tar file out.
func writeArchive(out, tag string, img v1.Image) error {
	dir, err := os.MkdirTemp("", "atoll-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag, // podman and skopeo name the image by it
		"io.containerd.image.name":          tag, // docker and containerd by this one
	})); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = tw.AddFS(os.DirFS(dir))
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readArchive reads the one image of an OCI archive writeArchive wrote;
// cleanup removes what it unpacked, once the image is no longer read.
func readArchive(in string) (img v1.Image, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "atoll-layout-")
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	if img, err = unpack(in, dir); err != nil {
		cleanup()
		return nil, nil, err
	}
	return img, cleanup, nil
}

func unpack(in, dir string) (v1.Image, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if !filepath.IsLocal(h.Name) {
			return nil, fmt.Errorf("%s: entry %q leaves the archive", in, h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		w, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s holds %d images, want 1", in, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// assemble makes the image from the binary at bin and the CA bundle at ca.
func assemble(bin, ca, version, arch string) (v1.Image, error) {
	layer, err := rootLayer(bin, ca)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{"/atoll"}
	cf.Config.Cmd = []string{"--help"}
	cf.Config.User = user
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"SSL_CERT_FILE=" + caBundle}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "atoll",
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.source":  "https://github.com/atoll-dev/atoll",
	}
	return mutate.ConfigFile(img, cf)
}

// rootLayer is the image's file system, with fixed times and owners so
// that the same inputs give the same digest.
func rootLayer(bin, ca string) (v1.Layer, error) {
	binData, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	caData, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w (apt-get install ca-certificates)", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(p string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, ModTime: epoch})
	}
	file := func(p string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid)
	steps := []func() error{
		func() error { return dir("etc", 0o755) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/ssl", 0o755) },
		func() error { return dir("etc/ssl/certs", 0o755) },
		func() error { return file(caBundle[1:], 0o644, caData) },
		func() error { return dir("tmp", 0o1777) },
		func() error { return file("atoll", 0o755, binData) },
		tw.Close,
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// push uploads the image tarball to ref, with the credentials of the
// docker config (~/.docker/config.json, $DOCKER_CONFIG).
func push(in, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	img, cleanup, err := readArchive(in)
	if err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	defer cleanup()
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", r, d)
	return nil
}
