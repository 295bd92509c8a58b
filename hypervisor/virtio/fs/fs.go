// Package fs is the virtio-fs device (virtio 1.2 §5.11): queues that carry
// FUSE requests from the guest to a FUSE server in this process. The
// device only moves bytes: it copies each request out of guest memory
// before anyone parses it and hands the server the guest's reply buffers.
// What the requests mean is the server's business (package virtiofs).
package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/virtio"
)

const (
	hiprioQueue = 0 // FORGET and INTERRUPT, which must not wait behind requests
	// QueueSize is the size of every queue: deep enough for the guest to
	// keep many requests in flight.
	QueueSize = 1024
	// MaxRequest bounds a request copied out of the guest (header plus a
	// WRITE's data); longer ones are answered with nothing.
	MaxRequest = 1<<20 + 4096
	tagSize    = 36
)

// Server answers FUSE requests.
type Server interface {
	// Handle answers one request. in is the request (FUSE header and
	// body) copied out of guest memory, valid only during the call (the
	// queue reuses the buffer); out are the guest's writable buffers for
	// the reply, in order. It returns the bytes written to out: 0 for
	// requests that take no reply (FORGET).
	Handle(in []byte, out [][]byte) int
}

// Device is one virtio-fs device: one share tag, one request queue.
type Device struct {
	tag    string
	server Server
	log    *logrus.Entry

	mu     sync.Mutex
	queues []*queueState
	irq    virtio.Interrupt
	active bool
}

// queueState is one queue and the buffer its requests are copied into;
// each queue is served by whoever kicks it, under its own lock, so
// requests are handled without a goroutine per request.
type queueState struct {
	mu     sync.Mutex
	q      *virtio.Queue
	buf    []byte
	broken bool
}

// New returns a device exporting server under tag (what the guest mounts:
// `mount -t virtiofs TAG DIR`).
func New(tag string, server Server, log *logrus.Entry) (*Device, error) {
	if tag == "" || len(tag) > tagSize {
		return nil, fmt.Errorf("virtio-fs tag %q: want 1..%d bytes", tag, tagSize)
	}
	return &Device{tag: tag, server: server, log: log}, nil
}

// Type implements virtio.Device.
func (d *Device) Type() uint32 { return virtio.IDFS }

// Features implements virtio.Device: no notification queue, no DAX.
func (d *Device) Features() uint64 { return 0 }

// QueueMaxSizes implements virtio.Device: the hiprio queue and one
// request queue.
func (d *Device) QueueMaxSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// ReadConfig implements virtio.Device: tag[36] then num_request_queues.
func (d *Device) ReadConfig(offset uint64, data []byte) {
	var cfg [tagSize + 4]byte
	copy(cfg[:], d.tag)
	binary.LittleEndian.PutUint32(cfg[tagSize:], uint32(len(d.QueueMaxSizes())-1))
	clear(data)
	if offset < uint64(len(cfg)) {
		copy(data, cfg[offset:])
	}
}

// WriteConfig implements virtio.Device; the config space is read-only.
func (d *Device) WriteConfig(offset uint64, data []byte) {}

// Activate implements virtio.Device.
func (d *Device) Activate(mem virtio.Memory, features uint64, queues []*virtio.Queue, irq virtio.Interrupt) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queues = make([]*queueState, len(queues))
	for i, q := range queues {
		if q == nil {
			return errors.New("virtio-fs: driver left a queue unconfigured")
		}
		d.queues[i] = &queueState{q: q}
	}
	d.irq, d.active = irq, true
	return nil
}

// Reset implements virtio.Device.
func (d *Device) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queues, d.irq, d.active = nil, nil, false
}

// QueueNotify implements virtio.Device: serve every pending request.
func (d *Device) QueueNotify(index int) {
	d.mu.Lock()
	if !d.active || index >= len(d.queues) {
		d.mu.Unlock()
		return
	}
	qs, irq := d.queues[index], d.irq
	d.mu.Unlock()

	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.broken {
		return
	}
	used := false
	for {
		c, err := qs.q.Pop()
		if err != nil {
			d.log.WithError(err).Warn("virtio-fs: bad queue from guest, queue stopped")
			qs.broken = true
			break
		}
		if c == nil {
			break
		}
		n := 0
		if in, ok := qs.copyIn(c.Readable()); ok {
			var out [][]byte
			for _, w := range c.Writable() {
				out = append(out, w.Buf)
			}
			n = d.server.Handle(in, out)
		} else {
			d.log.Debug("virtio-fs: request larger than the device accepts, dropped")
		}
		if err := qs.q.Push(c.Head, uint32(n)); err != nil {
			qs.broken = true
			break
		}
		used = true
	}
	if used {
		irq.UsedBuffers()
	}
}

// copyIn gathers a request into the queue's private buffer.
func (qs *queueState) copyIn(bufs []virtio.Descriptor) ([]byte, bool) {
	total := 0
	for _, b := range bufs {
		total += len(b.Buf)
	}
	if total > MaxRequest {
		return nil, false
	}
	if cap(qs.buf) < total {
		qs.buf = make([]byte, total)
	}
	in := qs.buf[:0]
	for _, b := range bufs {
		in = append(in, b.Buf...)
	}
	return in, true
}
