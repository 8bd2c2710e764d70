package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// heapProfile saves Atoll's heap profile as name, with -profiles.
func (bn *bench) heapProfile(ctx context.Context, a *atollRun, name string) {
	if bn.profiles == "" {
		return
	}
	if err := fetchProfile(ctx, "http://"+a.metricsAddr+"/debug/pprof/heap?gc=1", filepath.Join(bn.profiles, name)); err != nil {
		bn.b.Logf("heap profile: %v", err)
	}
}

// cpuProfile starts a CPU profile of Atoll lasting d, saved as name; the
// returned func waits for it. With -profiles.
func (bn *bench) cpuProfile(ctx context.Context, a *atollRun, name string, d time.Duration) func() {
	if bn.profiles == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", a.metricsAddr, int(d.Seconds()))
		if err := fetchProfile(ctx, url, filepath.Join(bn.profiles, name)); err != nil {
			bn.b.Logf("cpu profile: %v", err)
		}
	}()
	return wg.Wait
}

// apiserverProfile starts a CPU profile of the first remote's kube-apiserver
// lasting d, saved as name (none if name is empty); the returned func waits
// for it. With -profiles:
// the remote's apiserver is what the delegation run is bound by.
func (bn *bench) apiserverProfile(ctx context.Context, name string, d time.Duration) func() {
	if bn.profiles == "" || name == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		raw, err := bn.remotes[0].CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", fmt.Sprint(int(d.Seconds()))).Timeout(d + time.Minute).DoRaw(ctx)
		if err == nil {
			err = os.WriteFile(filepath.Join(bn.profiles, name), raw, 0o644)
		}
		if err != nil {
			bn.b.Logf("apiserver cpu profile: %v", err)
		}
	}()
	return wg.Wait
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 6 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
