package reconcile

import (
	"os"
	"testing"
)

// TestMain lets this test binary be the render process of its own renders.
func TestMain(m *testing.M) {
	ServeRender()
	os.Exit(m.Run())
}
