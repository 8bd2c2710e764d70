package commitstatus

import (
	"container/list"
	"context"
	"log/slog"
	"sync"
	"time"
)

// Queue defaults.
const (
	DefaultQueueSize  = 256
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// QueueConfig configures a Queue. Reporter is required.
type QueueConfig struct {
	// Reporter delivers; usually a writer wrapped in Dedupe.
	Reporter Reporter
	// Size bounds the revision+context pairs waiting; when full, the pair
	// queued longest ago is dropped. Default DefaultQueueSize.
	Size int
	// MinBackoff and MaxBackoff bound the wait after a failed delivery,
	// doubling per consecutive failure. A provider's Retry-After or
	// rate-limit reset takes precedence.
	MinBackoff, MaxBackoff time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Queue decouples reporting from delivery so that an unreachable git host
// never blocks the reconciler: Report only enqueues, Run delivers in order
// of first report. Only the newest status per revision and context is
// kept — a success reported while the pending before it still waits
// replaces it. Retryable failures are retried with exponential backoff (or
// the provider's requested wait) for as long as Run runs; terminal ones
// are logged and dropped. Statuses still queued when Run returns are lost;
// the reconciler's next pass reports them again.
type Queue struct {
	cfg   QueueConfig
	log   *slog.Logger
	ready chan struct{}
	once  sync.Once
	wake  chan struct{}

	mu      sync.Mutex
	order   *list.List               // of *queued, oldest first
	pending map[string]*list.Element // key -> element
	dropped int
}

type queued struct {
	s Status
}

var _ Reporter = (*Queue)(nil)

// NewQueue checks cfg and returns a Queue; start Run to deliver.
func NewQueue(cfg QueueConfig) (*Queue, error) {
	if cfg.Reporter == nil {
		return nil, invalidConfig("queue: Reporter is required")
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultQueueSize
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Queue{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "commitstatus-queue"),
		ready:   make(chan struct{}),
		wake:    make(chan struct{}, 1),
		order:   list.New(),
		pending: map[string]*list.Element{},
	}, nil
}

// Report enqueues s and returns at once. It fails only for a status no
// provider would accept (terminal).
func (q *Queue) Report(_ context.Context, s Status) error {
	if err := s.validate(); err != nil {
		return err
	}
	q.mu.Lock()
	if e, ok := q.pending[s.key()]; ok {
		e.Value.(*queued).s = s
	} else {
		if q.order.Len() >= q.cfg.Size {
			old := q.order.Front()
			q.order.Remove(old)
			gone := old.Value.(*queued).s
			delete(q.pending, gone.key())
			q.dropped++
			q.log.Warn("status queue full; dropping the oldest status", "revision", gone.Revision, "context", gone.Context, "state", gone.State)
		}
		q.pending[s.key()] = q.order.PushBack(&queued{s: s})
	}
	q.mu.Unlock()
	q.notify()
	return nil
}

func (q *Queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len is the number of statuses waiting (not counting one in delivery).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.order.Len()
}

// Dropped is how many statuses were dropped because the queue was full.
func (q *Queue) Dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// Ready is closed once Run is delivering.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Run delivers queued statuses until ctx is cancelled, then returns nil.
func (q *Queue) Run(ctx context.Context) error {
	q.once.Do(func() { close(q.ready) })
	failures := 0
	for {
		s, ok := q.front()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-q.wake:
				continue
			}
		}
		err := q.cfg.Reporter.Report(ctx, s)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			failures = 0
			q.done(s)
			q.log.Debug("status delivered", "revision", s.Revision, "context", s.Context, "state", s.State)
			continue
		case !IsRetryable(err):
			failures = 0
			q.done(s)
			q.log.Error("status refused; dropping it", "revision", s.Revision, "context", s.Context, "state", s.State, "err", err)
			continue
		}
		failures++
		wait, asked := RetryAfter(err)
		if !asked {
			wait = q.backoff(failures)
		}
		q.log.Warn("status delivery failed; will retry", "revision", s.Revision, "context", s.Context, "state", s.State, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// front returns the oldest queued status without removing it.
func (q *Queue) front() (Status, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.order.Front()
	if e == nil {
		return Status{}, false
	}
	return e.Value.(*queued).s, true
}

// done removes s from the queue unless a newer status replaced it meanwhile.
func (q *Queue) done(s Status) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.pending[s.key()]
	if !ok || e.Value.(*queued).s != s {
		return
	}
	q.order.Remove(e)
	delete(q.pending, s.key())
}

func (q *Queue) backoff(failures int) time.Duration {
	d := q.cfg.MinBackoff
	for i := 1; i < failures && d < q.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.cfg.MaxBackoff)
}
