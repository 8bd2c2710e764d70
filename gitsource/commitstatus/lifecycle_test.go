package commitstatus

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// recorder is a Reporter that records deliveries and fails while failing
// is set.
type recorder struct {
	mu        sync.Mutex
	delivered []Status
	calls     int
	fail      error
}

func (r *recorder) Report(_ context.Context, s Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		return r.fail
	}
	r.delivered = append(r.delivered, s)
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *recorder) snapshot() ([]Status, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Status(nil), r.delivered...), r.calls
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDedupe(t *testing.T) {
	pending := Status{Revision: sha1, Context: "atoll/sync", State: StatePending, Description: "applying"}
	success := Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess, Description: "3 nodes ready"}
	plan := Status{Revision: sha1, Context: "atoll/plan", State: StateSuccess, Description: "3 nodes ready"}
	other := Status{Revision: sha2, Context: "atoll/sync", State: StateSuccess, Description: "3 nodes ready"}
	tests := []struct {
		name string
		in   []Status
		want []Status
	}{
		{"identical status posted once", []Status{pending, pending, pending}, []Status{pending}},
		{"a change is posted", []Status{pending, success, success}, []Status{pending, success}},
		{"back to an earlier status is posted", []Status{pending, success, pending}, []Status{pending, success, pending}},
		{"contexts are separate", []Status{success, plan, success, plan}, []Status{success, plan}},
		{"revisions are separate", []Status{success, other, success}, []Status{success, other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			d := NewDedupe(rec, 0)
			for _, s := range tt.in {
				if err := d.Report(context.Background(), s); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := rec.snapshot(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("delivered %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDedupeForgetsFailuresAndOldest(t *testing.T) {
	rec := &recorder{}
	d := NewDedupe(rec, 1)
	s := Status{Revision: sha1, Context: "c", State: StateSuccess}
	rec.setFail(retryable(errors.New("down"), 0))
	if err := d.Report(context.Background(), s); err == nil {
		t.Fatal("want the writer's error")
	}
	rec.setFail(nil)
	if err := d.Report(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got, _ := rec.snapshot(); len(got) != 1 {
		t.Fatalf("a failed delivery must not count as delivered: %v", got)
	}
	// Size 1: remembering sha2 forgets sha1, which is then posted again.
	_ = d.Report(context.Background(), Status{Revision: sha2, Context: "c", State: StateSuccess})
	_ = d.Report(context.Background(), s)
	if got, _ := rec.snapshot(); len(got) != 3 {
		t.Errorf("delivered %d statuses, want 3 (bounded memory)", len(got))
	}
}

func TestQueueNeverBlocksAndDeliversNewest(t *testing.T) {
	rec := &recorder{}
	rec.setFail(retryable(errors.New("git host unreachable"), 0))
	q, err := NewQueue(QueueConfig{Reporter: rec, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-q.Ready()

	pending := Status{Revision: sha1, Context: "atoll/sync", State: StatePending}
	success := Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess, Description: "ok"}
	plan := Status{Revision: sha2, Context: "atoll/plan", State: StateSuccess}
	for _, s := range []Status{pending, plan} {
		start := time.Now()
		if err := q.Report(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Report blocked for %s while the host is down", d)
		}
	}
	// Retried while failing.
	eventually(t, "retries", func() bool { _, calls := rec.snapshot(); return calls >= 3 })
	// A newer status for the same revision+context replaces the queued one.
	if err := q.Report(context.Background(), success); err != nil {
		t.Fatal(err)
	}
	if n := q.Len(); n != 2 {
		t.Errorf("Len = %d, want 2 (one per revision+context)", n)
	}
	rec.setFail(nil)
	eventually(t, "delivery", func() bool { got, _ := rec.snapshot(); return len(got) == 2 })
	got, _ := rec.snapshot()
	if want := []Status{success, plan}; !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	eventually(t, "empty queue", func() bool { return q.Len() == 0 })
}

func TestQueueBoundDropsOldest(t *testing.T) {
	rec := &recorder{}
	q, err := NewQueue(QueueConfig{Reporter: rec, Size: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := Status{Revision: sha1, Context: "a", State: StateSuccess}
	b := Status{Revision: sha1, Context: "b", State: StateSuccess}
	c := Status{Revision: sha2, Context: "a", State: StateSuccess}
	for _, s := range []Status{a, b, c} {
		if err := q.Report(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != 2 || q.Dropped() != 1 {
		t.Fatalf("Len = %d, Dropped = %d; want 2, 1", q.Len(), q.Dropped())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	eventually(t, "delivery", func() bool { got, _ := rec.snapshot(); return len(got) == 2 })
	cancel()
	<-done
	if got, _ := rec.snapshot(); !reflect.DeepEqual(got, []Status{b, c}) {
		t.Errorf("delivered %v, want %v", got, []Status{b, c})
	}
}

func TestQueueDropsTerminalAndHonoursRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	calls := 0
	r := ReporterFunc(func(_ context.Context, s Status) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		times = append(times, time.Now())
		switch {
		case s.Context == "bad":
			return terminal(errors.New("403 forbidden"))
		case calls == 2: // the first delivery of "good"
			return retryable(errors.New("rate limited"), 150*time.Millisecond)
		}
		return nil
	})
	// MinBackoff is an hour: only the provider's wait can explain a retry.
	q, err := NewQueue(QueueConfig{Reporter: r, MinBackoff: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_ = q.Report(context.Background(), Status{Revision: sha1, Context: "bad", State: StateSuccess})
	_ = q.Report(context.Background(), Status{Revision: sha1, Context: "good", State: StateSuccess})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	eventually(t, "queue drained", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 3 && q.Len() == 0 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if gap := times[2].Sub(times[1]); gap < 150*time.Millisecond {
		t.Errorf("retried after %s, before the requested 150ms", gap)
	}
}

func TestSuperseded(t *testing.T) {
	applied := "fedcba9876543210fedcba9876543210fedcba98"
	rec := &recorder{}
	err := Superseded(context.Background(), rec, "", []string{sha1, sha2, sha1, applied}, applied, "https://atoll.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{
		{Revision: sha1, Context: DefaultContext, State: StateSuccess, Description: "superseded by fedcba9", TargetURL: "https://atoll.example"},
		{Revision: sha2, Context: DefaultContext, State: StateSuccess, Description: "superseded by fedcba9", TargetURL: "https://atoll.example"},
	}
	if got, _ := rec.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
	rec.setFail(retryable(errors.New("down"), 0))
	err = Superseded(context.Background(), rec, "atoll/sync", []string{sha1, sha2}, applied, "")
	if err == nil || !IsRetryable(err) {
		t.Errorf("err = %v, want the joined retryable errors", err)
	}
}

// The queue, the dedupe and a real writer together: GitHub answers 429
// with Retry-After, the queue waits that long, then delivers once.
func TestQueueWithGitHubRateLimit(t *testing.T) {
	api := newFakeAPI(t,
		fakeResponse{code: 429, body: `{"message":"secondary rate limit"}`, header: map[string]string{"Retry-After": "1"}},
		fakeResponse{code: 201, body: `{}`})
	w, err := NewGitHub(APIConfig{BaseURL: api.srv.URL, Repository: "o/r", Token: secret, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(QueueConfig{Reporter: NewDedupe(w, 0), MinBackoff: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s := Status{Revision: sha1, Context: "atoll/sync", State: StateSuccess, Description: "ok"}
	if err := q.Report(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after Retry-After", func() bool { return len(api.got()) == 2 && q.Len() == 0 })
	if err := q.Report(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "empty queue", func() bool { return q.Len() == 0 })
	if n := len(api.got()); n != 2 {
		t.Errorf("requests = %d, want 2 (the identical status must not be re-posted)", n)
	}
	reqs := api.got()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, before Retry-After: 1", gap)
	}
}
