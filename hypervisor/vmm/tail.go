package vmm

import (
	"io"
	"sync"
)

// tailBuffer keeps the last bytes written to it, so that an error about a
// guest that died or never became ready can say what it printed last.
type tailBuffer struct {
	mu   sync.Mutex
	buf  []byte
	size int
}

func newTailBuffer(size int) *tailBuffer { return &tailBuffer{size: size} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.size; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// writer returns a writer feeding both the tail and out (if any).
func (t *tailBuffer) writer(out io.Writer) io.Writer {
	if out == nil {
		return t
	}
	return io.MultiWriter(t, out)
}
