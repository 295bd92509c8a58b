// Package mmio is the virtio-mmio transport (virtio 1.2 §4.2, version 2
// "modern" register layout): a register file that a bus.Bus maps into the
// MMIO hole, which negotiates features, configures queues and hands them to
// a virtio.Device. Kernels find it through `virtio_mmio.device=` on their
// command line (see CmdlineParam).
package mmio

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/novm/novm/hypervisor/virtio"
)

// Register offsets.
const (
	regMagic           = 0x000
	regVersion         = 0x004
	regDeviceID        = 0x008
	regVendorID        = 0x00c
	regDeviceFeatures  = 0x010
	regDeviceFeatSel   = 0x014
	regDriverFeatures  = 0x020
	regDriverFeatSel   = 0x024
	regQueueSel        = 0x030
	regQueueNumMax     = 0x034
	regQueueNum        = 0x038
	regQueueReady      = 0x044
	regQueueNotify     = 0x050
	regInterruptStatus = 0x060
	regInterruptACK    = 0x064
	regStatus          = 0x070
	regQueueDescLow    = 0x080
	regQueueDescHigh   = 0x084
	regQueueDriverLow  = 0x090
	regQueueDriverHigh = 0x094
	regQueueDeviceLow  = 0x0a0
	regQueueDeviceHigh = 0x0a4
	regSHMSel          = 0x0ac
	regSHMLenLow       = 0x0b0
	regSHMLenHigh      = 0x0b4
	regSHMBaseLow      = 0x0b8
	regSHMBaseHigh     = 0x0bc
	regConfigGen       = 0x0fc
	regConfig          = 0x100

	// Size is the MMIO window of one device.
	Size = 0x1000

	magic    = 0x74726976 // "virt"
	vendorID = 0x4d564f4e // "NOVM"
)

// Device status bits.
const (
	statusAcknowledge = 1
	statusDriver      = 2
	statusDriverOK    = 4
	statusFeaturesOK  = 8
	statusNeedsReset  = 64
	statusFailed      = 128
)

// Interrupt is the device's interrupt line (edge-triggered IOAPIC pin).
type Interrupt interface {
	Trigger() error
}

// IOEventFDs lets the transport ask the hypervisor to turn a guest's queue
// notify write into an eventfd signal, skipping the exit to user space.
type IOEventFDs interface {
	RegisterIOEventFD(fd int, addr uint64, size uint32, value uint64) error
	UnregisterIOEventFD(fd int, addr uint64, size uint32, value uint64) error
}

type queueConfig struct {
	num                 uint16
	ready               bool
	desc, driver, devic uint64
}

// Transport is one virtio-mmio device window.
type Transport struct {
	base uint64
	irq  int
	dev  virtio.Device
	mem  virtio.Memory
	line Interrupt
	log  *logrus.Entry

	mu          sync.Mutex
	status      uint32
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	queueSel    uint32
	queues      []queueConfig

	isr atomic.Uint32
	// active is set under mu but read without it on the notify paths.
	active atomic.Bool

	ioevents   IOEventFDs
	notifyFDs  []*os.File
	notifyWait sync.WaitGroup
}

// New creates the transport for dev at MMIO address base, interrupting on
// IOAPIC pin irq. With ioevents non-nil it tries to register one eventfd
// per queue for notifications and falls back to MMIO exits if KVM refuses.
func New(base uint64, irq int, dev virtio.Device, mem virtio.Memory, line Interrupt, ioevents IOEventFDs, log *logrus.Entry) *Transport {
	t := &Transport{base: base, irq: irq, dev: dev, mem: mem, line: line, log: log,
		queues: make([]queueConfig, len(dev.QueueMaxSizes()))}
	if ioevents != nil {
		t.setupIOEventFDs(ioevents)
	}
	return t
}

// CmdlineParam is the kernel parameter declaring this device.
func (t *Transport) CmdlineParam() string {
	return fmt.Sprintf("virtio_mmio.device=4K@%#x:%d", t.base, t.irq)
}

// UsesIOEventFD reports whether queue notifications bypass MMIO exits.
func (t *Transport) UsesIOEventFD() bool { return t.notifyFDs != nil }

func (t *Transport) setupIOEventFDs(ioevents IOEventFDs) {
	var files []*os.File
	for i := range t.queues {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err == nil {
			err = ioevents.RegisterIOEventFD(fd, t.base+regQueueNotify, 4, uint64(i))
			if err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			t.log.WithError(err).Debug("ioeventfd unavailable, queue notifications use MMIO exits")
			for j, f := range files {
				ioevents.UnregisterIOEventFD(int(f.Fd()), t.base+regQueueNotify, 4, uint64(j))
				f.Close()
			}
			return
		}
		files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("virtio-notify-%d", i)))
	}
	t.ioevents, t.notifyFDs = ioevents, files
	for i, f := range files {
		t.notifyWait.Add(1)
		go t.serveNotify(i, f)
	}
}

// serveNotify waits on a queue's eventfd through the Go netpoller (no
// thread per queue) and forwards kicks to the device.
func (t *Transport) serveNotify(index int, f *os.File) {
	defer t.notifyWait.Done()
	var buf [8]byte
	for {
		if _, err := f.Read(buf[:]); err != nil {
			return // closed
		}
		if t.active.Load() {
			t.dev.QueueNotify(index)
		}
	}
}

// Close stops notification goroutines and releases eventfds.
func (t *Transport) Close() {
	for i, f := range t.notifyFDs {
		t.ioevents.UnregisterIOEventFD(int(f.Fd()), t.base+regQueueNotify, 4, uint64(i))
		f.Close()
	}
	t.notifyWait.Wait()
	t.notifyFDs = nil
	t.mu.Lock()
	if t.active.Swap(false) {
		t.dev.Reset()
	}
	t.mu.Unlock()
}

// UsedBuffers implements virtio.Interrupt.
func (t *Transport) UsedBuffers() {
	t.isr.Or(1)
	t.line.Trigger()
}

// ConfigChanged tells the driver the device config space changed.
func (t *Transport) ConfigChanged() {
	t.isr.Or(2)
	t.line.Trigger()
}

// Read handles a guest load from the window.
func (t *Transport) Read(offset uint64, data []byte) {
	if offset >= regConfig {
		t.dev.ReadConfig(offset-regConfig, data)
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		clear(data) // registers are 32-bit; anything else reads as zero
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var v uint32
	switch offset {
	case regMagic:
		v = magic
	case regVersion:
		v = 2
	case regDeviceID:
		v = t.dev.Type()
	case regVendorID:
		v = vendorID
	case regDeviceFeatures:
		f := t.dev.Features() | virtio.FeatureVersion1
		if t.devFeatSel < 2 {
			v = uint32(f >> (32 * t.devFeatSel))
		}
	case regQueueNumMax:
		if q := t.selected(); q != nil {
			v = uint32(t.dev.QueueMaxSizes()[t.queueSel])
		}
	case regQueueReady:
		if q := t.selected(); q != nil && q.ready {
			v = 1
		}
	case regInterruptStatus:
		v = t.isr.Load()
	case regStatus:
		v = t.status
	case regSHMLenLow, regSHMLenHigh, regSHMBaseLow, regSHMBaseHigh:
		v = 0xffffffff // no shared memory regions
	case regConfigGen:
		v = 0
	}
	binary.LittleEndian.PutUint32(data, v)
}

func (t *Transport) selected() *queueConfig {
	if int(t.queueSel) < len(t.queues) {
		return &t.queues[t.queueSel]
	}
	return nil
}

// Write handles a guest store to the window.
func (t *Transport) Write(offset uint64, data []byte) {
	if offset >= regConfig {
		t.dev.WriteConfig(offset-regConfig, data)
		return
	}
	if len(data) != 4 || offset%4 != 0 {
		return
	}
	v := binary.LittleEndian.Uint32(data)
	if offset == regQueueNotify {
		// Only reached when ioeventfd is not in use.
		if t.active.Load() && int(v) < len(t.queues) {
			t.dev.QueueNotify(int(v))
		}
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.selected()
	// Queue registers may only change while the queue is not ready.
	settable := q != nil && !q.ready && t.status&statusDriverOK == 0
	switch offset {
	case regDeviceFeatSel:
		t.devFeatSel = v
	case regDriverFeatSel:
		t.drvFeatSel = v
	case regDriverFeatures:
		if t.drvFeatSel < 2 && t.status&statusFeaturesOK == 0 {
			shift := 32 * t.drvFeatSel
			t.drvFeatures = t.drvFeatures&^(0xffffffff<<shift) | uint64(v)<<shift
		}
	case regQueueSel:
		t.queueSel = v
	case regQueueNum:
		if settable {
			q.num = uint16(v)
		}
	case regQueueReady:
		if q != nil && t.status&statusDriverOK == 0 {
			q.ready = v == 1
		}
	case regInterruptACK:
		t.isr.And(^v)
	case regStatus:
		t.setStatus(v)
	case regQueueDescLow, regQueueDescHigh, regQueueDriverLow, regQueueDriverHigh, regQueueDeviceLow, regQueueDeviceHigh:
		if settable {
			setHalf(q.ringAddr(offset), v, offset%8 == 4)
		}
	case regSHMSel:
	}
}

// ringAddr is the ring address a Queue{Desc,Driver,Device}{Low,High}
// register writes half of.
func (q *queueConfig) ringAddr(reg uint64) *uint64 {
	switch reg &^ 4 {
	case regQueueDescLow:
		return &q.desc
	case regQueueDriverLow:
		return &q.driver
	}
	return &q.devic
}

// setHalf sets the low or high 32 bits of *p.
func setHalf(p *uint64, v uint32, high bool) {
	if high {
		*p = *p&0xffffffff | uint64(v)<<32
	} else {
		*p = *p&^0xffffffff | uint64(v)
	}
}

// setStatus applies the driver's status write (mu held): 0 resets, the
// FEATURES_OK step validates features, DRIVER_OK activates the device.
func (t *Transport) setStatus(v uint32) {
	if v == 0 {
		t.reset()
		return
	}
	added := v &^ t.status
	if added&statusFeaturesOK != 0 {
		offered := t.dev.Features() | virtio.FeatureVersion1
		if t.drvFeatures&^offered != 0 || t.drvFeatures&virtio.FeatureVersion1 == 0 {
			t.log.Warnf("virtio-mmio %#x: driver accepted features %#x outside %#x or without VERSION_1", t.base, t.drvFeatures, offered)
			v &^= statusFeaturesOK // the driver reads it back and gives up
		}
	}
	t.status = v
	if added&statusDriverOK != 0 && v&statusFeaturesOK != 0 && !t.active.Load() {
		if err := t.activate(); err != nil {
			t.log.WithError(err).Warnf("virtio-mmio %#x: activation failed", t.base)
			t.status |= statusNeedsReset
			t.ConfigChanged()
		}
	}
}

func (t *Transport) activate() error {
	queues := make([]*virtio.Queue, len(t.queues))
	max := t.dev.QueueMaxSizes()
	for i, qc := range t.queues {
		if !qc.ready {
			continue
		}
		if qc.num > max[i] {
			return fmt.Errorf("queue %d: size %d exceeds maximum %d", i, qc.num, max[i])
		}
		q, err := virtio.NewQueue(t.mem, virtio.QueueState{Size: qc.num, DescAddr: qc.desc, AvailAddr: qc.driver, UsedAddr: qc.devic})
		if err != nil {
			return fmt.Errorf("queue %d: %w", i, err)
		}
		queues[i] = q
	}
	if err := t.dev.Activate(t.mem, t.drvFeatures, queues, t); err != nil {
		return err
	}
	t.active.Store(true)
	return nil
}

func (t *Transport) reset() {
	if t.active.Swap(false) {
		t.dev.Reset()
	}
	t.status, t.drvFeatures, t.devFeatSel, t.drvFeatSel, t.queueSel = 0, 0, 0, 0, 0
	for i := range t.queues {
		t.queues[i] = queueConfig{}
	}
	t.isr.Store(0)
}
