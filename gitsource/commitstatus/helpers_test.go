package commitstatus

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const (
	sha1   = "0123456789abcdef0123456789abcdef01234567"
	sha2   = "89abcdef0123456789abcdef0123456789abcdef"
	secret = "tok-s3cr3t-value"
)

// testLogger writes to the test's output, shown only for failing tests.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// captured is one request the fake API received.
type captured struct {
	Method, Path, RawPath string
	Header                http.Header
	Body                  map[string]any
	at                    time.Time
}

// fakeAPI records requests and answers with the scripted responses in
// order (the last one repeats).
type fakeAPI struct {
	srv *httptest.Server

	mu        sync.Mutex
	requests  []captured
	responses []fakeResponse
}

type fakeResponse struct {
	code   int
	header map[string]string
	body   string
}

func newFakeAPI(t *testing.T, responses ...fakeResponse) *fakeAPI {
	t.Helper()
	f := &fakeAPI{responses: responses}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(data, &body)
		f.mu.Lock()
		f.requests = append(f.requests, captured{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body, at: time.Now()})
		resp := fakeResponse{code: http.StatusCreated, body: `{}`}
		if len(f.responses) > 0 {
			resp = f.responses[0]
			if len(f.responses) > 1 {
				f.responses = f.responses[1:]
			}
		}
		f.mu.Unlock()
		for k, v := range resp.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.code)
		_, _ = io.WriteString(w, resp.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) got() []captured {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]captured(nil), f.requests...)
}

func newBufLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
