package commitstatus

import (
	"container/list"
	"context"
	"sync"
)

// DefaultDedupeSize is how many revision+context pairs Dedupe remembers.
const DefaultDedupeSize = 1024

// Dedupe passes a status on only if it differs from the last one delivered
// for the same revision and context, so a reconciler that reports on every
// pass does not post the same status again and again. It remembers the
// last size pairs (least recently reported forgotten first) and only
// statuses its Reporter accepted.
type Dedupe struct {
	next Reporter
	size int

	mu    sync.Mutex
	order *list.List               // of string keys, most recent at front
	last  map[string]*list.Element // key -> element; Value is dedupeEntry
}

type dedupeEntry struct {
	key string
	s   Status
}

var _ Reporter = (*Dedupe)(nil)

// NewDedupe wraps next. size <= 0 means DefaultDedupeSize.
func NewDedupe(next Reporter, size int) *Dedupe {
	if size <= 0 {
		size = DefaultDedupeSize
	}
	return &Dedupe{next: next, size: size, order: list.New(), last: map[string]*list.Element{}}
}

// Report forwards s unless it equals the last status delivered for its
// revision and context; then it returns nil at once.
func (d *Dedupe) Report(ctx context.Context, s Status) error {
	if d.seen(s) {
		return nil
	}
	if err := d.next.Report(ctx, s); err != nil {
		return err
	}
	d.remember(s)
	return nil
}

func (d *Dedupe) seen(s Status) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.last[s.key()]
	return ok && e.Value.(dedupeEntry).s == s
}

func (d *Dedupe) remember(s Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := s.key()
	if e, ok := d.last[k]; ok {
		e.Value = dedupeEntry{key: k, s: s}
		d.order.MoveToFront(e)
		return
	}
	d.last[k] = d.order.PushFront(dedupeEntry{key: k, s: s})
	for d.order.Len() > d.size {
		old := d.order.Back()
		d.order.Remove(old)
		delete(d.last, old.Value.(dedupeEntry).key)
	}
}
