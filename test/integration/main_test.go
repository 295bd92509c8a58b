package integration

import (
	"os"
	"testing"
)

// TestMain stops the shared containerd (if a test started one) after all
// tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if ctrdShared != nil {
		ctrdShared.stop()
	}
	os.Exit(code)
}
