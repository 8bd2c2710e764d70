package bench

import (
	"os"
	"testing"

	"github.com/atoll-dev/atoll/reconcile"
)

// TestMain lets this test binary be the render process of its own renders.
func TestMain(m *testing.M) {
	reconcile.ServeRender()
	os.Exit(m.Run())
}
