package mmio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/virtio"
	"github.com/novm/novm/hypervisor/virtio/console"
	"github.com/novm/novm/hypervisor/virtio/virtiotest"
)

type countIRQ struct{ n int }

func (c *countIRQ) Trigger() error { c.n++; return nil }

type guest struct {
	t   *testing.T
	tr  *Transport
	mem virtiotest.FlatMem
}

func (g *guest) read(off uint64) uint32 {
	b := make([]byte, 4)
	g.tr.Read(off, b)
	return binary.LittleEndian.Uint32(b)
}

func (g *guest) write(off uint64, v uint32) {
	g.tr.Write(off, binary.LittleEndian.AppendUint32(nil, v))
}

// Queue layout in the fake guest: queue q at 0x1000*(1+3q).
func ringBase(q int) uint64 { return 0x1000 * uint64(1+3*q) }

// probe does what Linux's virtio_mmio driver does up to DRIVER_OK.
func (g *guest) probe(features uint64) uint32 {
	g.write(regStatus, 0)
	g.write(regStatus, statusAcknowledge)
	g.write(regStatus, statusAcknowledge|statusDriver)
	g.write(regDriverFeatSel, 0)
	g.write(regDriverFeatures, uint32(features))
	g.write(regDriverFeatSel, 1)
	g.write(regDriverFeatures, uint32(features>>32))
	g.write(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK)
	if g.read(regStatus)&statusFeaturesOK == 0 {
		return g.read(regStatus)
	}
	for q := 0; q < 2; q++ {
		g.write(regQueueSel, uint32(q))
		g.write(regQueueNum, 8)
		b := ringBase(q)
		g.write(regQueueDescLow, uint32(b))
		g.write(regQueueDriverLow, uint32(b+0x1000))
		g.write(regQueueDeviceLow, uint32(b+0x2000))
		g.write(regQueueReady, 1)
	}
	g.write(regStatus, statusAcknowledge|statusDriver|statusFeaturesOK|statusDriverOK)
	return g.read(regStatus)
}

func newGuest(t *testing.T, dev virtio.Device, irq Interrupt) *guest {
	mem := make(virtiotest.FlatMem, 0x20000)
	tr := New(0xd0000000, 5, dev, mem, irq, nil, logrus.NewEntry(logrus.New()))
	return &guest{t: t, tr: tr, mem: mem}
}

func TestIdentity(t *testing.T) {
	g := newGuest(t, console.New(nil, logrus.NewEntry(logrus.New())), &countIRQ{})
	if g.read(regMagic) != 0x74726976 || g.read(regVersion) != 2 || g.read(regDeviceID) != virtio.IDConsole {
		t.Fatal("identity registers wrong")
	}
	g.write(regDeviceFeatSel, 1)
	if g.read(regDeviceFeatures)&1 == 0 {
		t.Fatal("VERSION_1 not offered")
	}
	g.write(regQueueSel, 0)
	if g.read(regQueueNumMax) != 256 {
		t.Fatal("queue max size")
	}
	g.write(regQueueSel, 7)
	if g.read(regQueueNumMax) != 0 {
		t.Fatal("nonexistent queue reports a size")
	}
	if g.tr.CmdlineParam() != "virtio_mmio.device=4K@0xd0000000:5" {
		t.Fatalf("cmdline param %q", g.tr.CmdlineParam())
	}
}

func TestFeatureNegotiationRejectsUnofferedOrLegacy(t *testing.T) {
	g := newGuest(t, console.New(nil, logrus.NewEntry(logrus.New())), &countIRQ{})
	if s := g.probe(0); s&statusFeaturesOK != 0 {
		t.Fatal("driver without VERSION_1 accepted")
	}
	if s := g.probe(virtio.FeatureVersion1 | 1<<5); s&statusFeaturesOK != 0 {
		t.Fatal("unoffered feature accepted")
	}
	if s := g.probe(virtio.FeatureVersion1); s&statusDriverOK == 0 || s&statusNeedsReset != 0 {
		t.Fatalf("status after good probe = %#x", s)
	}
}

// End to end through the transport: guest transmits on the console's tx
// queue, host input arrives in the rx queue, interrupts are raised and
// acknowledged.
func TestConsoleThroughTransport(t *testing.T) {
	var out bytes.Buffer
	irq := &countIRQ{}
	dev := console.New(&out, logrus.NewEntry(logrus.New()))
	g := newGuest(t, dev, irq)
	if s := g.probe(virtio.FeatureVersion1); s&statusDriverOK == 0 {
		t.Fatalf("probe status %#x", s)
	}
	le := binary.LittleEndian
	// tx (queue 1): one readable buffer "ready\n".
	tx := ringBase(1)
	copy(g.mem[0x10000:], "ready\n")
	le.PutUint64(g.mem[tx:], 0x10000)
	le.PutUint32(g.mem[tx+8:], 6)
	le.PutUint16(g.mem[tx+0x1000+4:], 0) // ring[0] = desc 0
	le.PutUint16(g.mem[tx+0x1000+2:], 1) // avail idx
	g.write(regQueueNotify, 1)
	if out.String() != "ready\n" {
		t.Fatalf("host got %q", out.String())
	}
	if g.read(regInterruptStatus)&1 == 0 || irq.n != 1 {
		t.Fatal("no used-buffer interrupt")
	}
	g.write(regInterruptACK, 1)
	if g.read(regInterruptStatus) != 0 {
		t.Fatal("interrupt not acknowledged")
	}
	// rx (queue 0): host input waits for a guest buffer.
	dev.Write([]byte("poweroff\n"))
	rx := ringBase(0)
	le.PutUint64(g.mem[rx:], 0x11000)
	le.PutUint32(g.mem[rx+8:], 64)
	le.PutUint16(g.mem[rx+12:], 2) // VIRTQ_DESC_F_WRITE
	le.PutUint16(g.mem[rx+0x1000+4:], 0)
	le.PutUint16(g.mem[rx+0x1000+2:], 1)
	g.write(regQueueNotify, 0)
	if n := le.Uint32(g.mem[rx+0x2000+8:]); n != 9 || string(g.mem[0x11000:0x11009]) != "poweroff\n" {
		t.Fatalf("guest got %d bytes %q", n, g.mem[0x11000:0x11009])
	}
	// Reset drops the device's queues; notifications are then ignored.
	g.write(regStatus, 0)
	g.write(regQueueNotify, 1)
	if g.read(regStatus) != 0 {
		t.Fatal("reset did not clear status")
	}
}
