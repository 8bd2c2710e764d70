package gitsource

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is a real OpenSSH sshd on a loopback port. Every session's
// command goes through a wrapper that appends it to a log before running
// it, so tests can tell whether git-upload-pack ever ran.
type sshServer struct {
	Addr       string // 127.0.0.1:port
	User       string
	HostKey    ssh.PublicKey
	KnownHosts []byte // correct known_hosts line
	ClientKey  []byte // OpenSSH private key accepted by the server
	cmdLog     string
}

// Commands returns the commands sessions have run so far.
func (s *sshServer) Commands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(s.cmdLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

func (s *sshServer) URL(path string) string {
	return fmt.Sprintf("ssh://%s@%s%s", s.User, s.Addr, path)
}

func newED25519(t *testing.T) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, pem.EncodeToMemory(block)
}

func knownHostsLine(addr string, key ssh.PublicKey) []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n")
}

func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
		if _, err := os.Stat(sshd); err != nil {
			t.Fatal("sshd not installed: apt-get install -y openssh-server")
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root insists on its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	hostPub, hostPriv := newED25519(t)
	clientPub, clientPriv := newED25519(t)
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKeyPath := write("host_ed25519", hostPriv, 0o600)
	authKeys := write("authorized_keys", ssh.MarshalAuthorizedKey(clientPub), 0o600)
	cmdLog := filepath.Join(dir, "commands.log")
	wrapper := write("wrapper.sh", []byte("#!/bin/sh\necho \"$SSH_ORIGINAL_COMMAND\" >> "+cmdLog+"\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n"), 0o755)

	// Take a free port; sshd binds it right after.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()

	conf := write("sshd_config", []byte(strings.Join([]string{
		"Port " + port,
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + u.Username,
		"ForceCommand " + wrapper,
		"LogLevel VERBOSE",
		"",
	}, "\n")), 0o600)

	stderr := &syncWriter{buf: new(bytes.Buffer)}
	cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", stderr.String())
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("sshd exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &sshServer{
		Addr:       addr,
		User:       u.Username,
		HostKey:    hostPub,
		KnownHosts: knownHostsLine(addr, hostPub),
		ClientKey:  clientPriv,
		cmdLog:     cmdLog,
	}
}
