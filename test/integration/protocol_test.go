package integration

import (
	"bytes"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/novm/novm/hypervisor/vmm"
)

// watchWriter records output and closes found once it contains want.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  []byte
	found chan struct{}
	once  sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), w.want) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

// The Linux 64-bit boot protocol (long mode, zero page, identity page
// tables) as used for kernels without a PVH note: the real guest kernel
// must get far enough to report the command line and memory it was given.
func TestLinux64BootProtocol(t *testing.T) {
	w := &watchWriter{want: []byte(" available ("), found: make(chan struct{})}
	m, err := vmm.New(vmm.Config{
		Kernel: asset(t, "vmlinux"), MemoryMiB: 128, Linux64: true,
		Cmdline: "loglevel=7", SerialOut: w,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Start()
	select {
	case <-w.found:
	case <-m.Done():
		t.Fatalf("VM ended (%+v) before the kernel printed its memory map:\n%s", m.Wait(), w.head(3000))
	case <-time.After(2 * time.Minute):
		t.Fatalf("kernel did not print its memory map:\n%s", m.ConsoleTail())
	}
	// The command line came through the zero page, and the memory the
	// kernel found is the 128 MiB of the E820 map less the legacy hole.
	out := w.head(1 << 20)
	if !bytes.Contains([]byte(out), []byte("Kernel command line: console=ttyS0")) {
		t.Errorf("kernel did not get the command line:\n%s", out)
	}
	if !regexp.MustCompile(`Memory: \d+K/13\d{4}K available`).MatchString(out) {
		t.Errorf("kernel did not see 128 MiB:\n%s", out)
	}
}

func (w *watchWriter) head(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf.Bytes()
	return string(b[:min(n, len(b))])
}
