package gitsource

// notifier is a coalescing, non-blocking signal: any number of notify calls
// before the receiver reads collapse into one receive.
type notifier struct {
	ch chan struct{}
}

func newNotifier() notifier { return notifier{ch: make(chan struct{}, 1)} }

func (n notifier) notify() {
	select {
	case n.ch <- struct{}{}:
	default:
	}
}

func (n notifier) C() <-chan struct{} { return n.ch }
