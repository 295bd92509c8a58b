// Package console is a virtio-console device with a single port (no
// MULTIPORT): the guest sees /dev/hvc0. novm uses it as the agent's boot
// control channel, apart from the kernel's serial console, so agent
// messages never interleave with kernel printk.
package console

import (
	"errors"
	"io"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/virtio"
)

const (
	rxQueue   = 0 // host → guest
	txQueue   = 1 // guest → host
	queueSize = 256

	// maxPending bounds host input the guest has not picked up yet.
	maxPending = 1 << 20
)

// ErrInputFull is returned by Write when the guest is not reading.
var ErrInputFull = errors.New("virtio-console: guest is not reading input")

// Device is the virtio-console device. Guest output goes to the writer
// given to New; host input is sent with Write.
type Device struct {
	out io.Writer
	log *logrus.Entry

	mu      sync.Mutex
	rx, tx  *virtio.Queue
	irq     virtio.Interrupt
	pending []byte
	broken  bool
}

// New returns a console whose guest output is written to out.
func New(out io.Writer, log *logrus.Entry) *Device {
	if out == nil {
		out = io.Discard
	}
	return &Device{out: out, log: log}
}

// Type implements virtio.Device.
func (d *Device) Type() uint32 { return virtio.IDConsole }

// Features implements virtio.Device: none beyond VERSION_1.
func (d *Device) Features() uint64 { return 0 }

// QueueMaxSizes implements virtio.Device.
func (d *Device) QueueMaxSizes() []uint16 { return []uint16{queueSize, queueSize} }

// ReadConfig implements virtio.Device; without SIZE or MULTIPORT the
// config space carries nothing.
func (d *Device) ReadConfig(offset uint64, data []byte) { clear(data) }

// WriteConfig implements virtio.Device.
func (d *Device) WriteConfig(offset uint64, data []byte) {}

// Activate implements virtio.Device.
func (d *Device) Activate(mem virtio.Memory, features uint64, queues []*virtio.Queue, irq virtio.Interrupt) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rx, d.tx, d.irq, d.broken = queues[rxQueue], queues[txQueue], irq, false
	d.fillRx()
	return nil
}

// Reset implements virtio.Device. Undelivered input is kept for the next
// driver instance.
func (d *Device) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rx, d.tx, d.irq = nil, nil, nil
}

// QueueNotify implements virtio.Device.
func (d *Device) QueueNotify(index int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch index {
	case txQueue:
		d.drainTx()
	case rxQueue:
		d.fillRx()
	}
}

// drainTx copies every transmitted buffer to the output (mu held).
func (d *Device) drainTx() {
	if d.tx == nil || d.broken {
		return
	}
	used := false
	for {
		c, err := d.tx.Pop()
		if err != nil {
			d.fail(err)
			return
		}
		if c == nil {
			break
		}
		for _, desc := range c.Readable() {
			d.out.Write(desc.Buf)
		}
		if err := d.tx.Push(c.Head, 0); err != nil {
			d.fail(err)
			return
		}
		used = true
	}
	if used {
		d.irq.UsedBuffers()
	}
}

// fillRx moves pending input into the guest's receive buffers (mu held).
func (d *Device) fillRx() {
	if d.rx == nil || d.broken || len(d.pending) == 0 {
		return
	}
	used := false
	for len(d.pending) > 0 {
		c, err := d.rx.Pop()
		if err != nil {
			d.fail(err)
			return
		}
		if c == nil {
			break
		}
		n := 0
		for _, desc := range c.Writable() {
			k := copy(desc.Buf, d.pending)
			d.pending = d.pending[k:]
			n += k
		}
		if err := d.rx.Push(c.Head, uint32(n)); err != nil {
			d.fail(err)
			return
		}
		used = true
	}
	if used {
		d.irq.UsedBuffers()
	}
}

// fail stops using the queues after the driver handed over garbage.
func (d *Device) fail(err error) {
	d.log.WithError(err).Warn("virtio-console: bad queue from guest, device stopped")
	d.broken = true
}

// Write queues input for the guest.
func (d *Device) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending)+len(p) > maxPending {
		return 0, ErrInputFull
	}
	d.pending = append(d.pending, p...)
	d.fillRx()
	return len(p), nil
}
