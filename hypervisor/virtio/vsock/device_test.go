package vsock

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/virtio"
	"github.com/novm/novm/hypervisor/virtio/virtiotest"
)

type nopIRQ struct{}

func (nopIRQ) UsedBuffers() {}

// fakeGuest plays the guest driver: it owns the rings in flat memory.
type fakeGuest struct {
	t      *testing.T
	mem    virtiotest.FlatMem
	dev    *Device
	rings  [3]ring
	cid    uint64
	rxSeen uint16
}

type ring struct {
	base     uint64 // desc table; avail at +0x1000, used at +0x2000
	avail    uint16
	nextDesc uint16
	bufBase  uint64
}

const qsz = 16

func newFakeGuest(t *testing.T) *fakeGuest {
	g := &fakeGuest{t: t, mem: make(virtiotest.FlatMem, 1<<20), cid: DefaultGuestCID}
	g.dev = New(DefaultGuestCID, logrus.NewEntry(logrus.New()))
	var qs []*virtio.Queue
	for i := range g.rings {
		g.rings[i] = ring{base: uint64(0x10000 * (i + 1)), bufBase: uint64(0x40000 + 0x40000*i)}
		q, err := virtio.NewQueue(g.mem, virtio.QueueState{Size: qsz, DescAddr: g.rings[i].base, AvailAddr: g.rings[i].base + 0x1000, UsedAddr: g.rings[i].base + 0x2000})
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	if err := g.dev.Activate(g.mem, 0, qs, nopIRQ{}); err != nil {
		t.Fatal(err)
	}
	return g
}

// offer puts one buffer (guest address, length) on queue q's avail ring.
func (g *fakeGuest) offer(q int, data []byte, size uint32, writable bool) {
	r := &g.rings[q]
	i := r.nextDesc % qsz
	r.nextDesc++
	addr := r.bufBase + uint64(i)*0x2000
	copy(g.mem[addr:], data)
	d := g.mem[r.base+16*uint64(i):]
	binary.LittleEndian.PutUint64(d, addr)
	binary.LittleEndian.PutUint32(d[8:], size)
	flags := uint16(0)
	if writable {
		flags = 2
	}
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(g.mem[r.base+0x1000+4+2*uint64(r.avail%qsz):], i)
	r.avail++
	binary.LittleEndian.PutUint16(g.mem[r.base+0x1000+2:], r.avail)
}

func (g *fakeGuest) send(h header, payload []byte) {
	h.SrcCID, h.DstCID, h.Type, h.Len = g.cid, HostCID, typeStream, uint32(len(payload))
	if h.BufAlloc == 0 {
		h.BufAlloc = 1 << 20
	}
	b := make([]byte, hdrSize+len(payload))
	h.encode(b)
	copy(b[hdrSize:], payload)
	g.offer(txQueue, b, uint32(len(b)), false)
	g.dev.QueueNotify(txQueue)
}

func (g *fakeGuest) postRx(n int) {
	for i := 0; i < n; i++ {
		g.offer(rxQueue, nil, 4096+hdrSize, true)
	}
	g.dev.QueueNotify(rxQueue)
}

// received returns the packets the device put in the rx ring since last time.
func (g *fakeGuest) received() []packet {
	r := g.rings[rxQueue]
	used := g.mem[r.base+0x2000:]
	idx := binary.LittleEndian.Uint16(used[2:])
	var out []packet
	for ; g.rxSeen != idx; g.rxSeen++ {
		e := used[4+8*uint64(g.rxSeen%qsz):]
		id := binary.LittleEndian.Uint32(e)
		n := binary.LittleEndian.Uint32(e[4:])
		addr := r.bufBase + uint64(id)*0x2000
		h, err := decodeHeader(g.mem[addr : addr+hdrSize])
		if err != nil || n < hdrSize {
			g.t.Fatalf("bad rx packet: %v, %d bytes", err, n)
		}
		out = append(out, packet{h, append([]byte(nil), g.mem[addr+hdrSize:addr+uint64(n)]...)})
	}
	return out
}

type packet struct {
	h    header
	data []byte
}

// connected sets up a guest that connected from port 7 to a host listener
// on 1024, with rx buffers posted and the RESPONSE consumed.
func connected(t *testing.T, rxBufs int) (*fakeGuest, *Listener, net.Conn) {
	g := newFakeGuest(t)
	l, err := g.dev.Listen(1024)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	g.postRx(rxBufs)
	g.send(header{SrcPort: 7, DstPort: 1024, Op: opRequest}, nil)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	g.received()
	return g, l, c
}

func ops(ps []packet) []uint16 {
	var o []uint16
	for _, p := range ps {
		o = append(o, p.h.Op)
	}
	return o
}

func TestGuestConnectsToListener(t *testing.T) {
	g := newFakeGuest(t)
	l, err := g.dev.Listen(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g.postRx(8)
	g.send(header{SrcPort: 5000, DstPort: 1024, Op: opRequest}, nil)
	ps := g.received()
	if len(ps) != 1 || ps[0].h.Op != opResponse || ps[0].h.DstPort != 5000 || ps[0].h.SrcPort != 1024 || ps[0].h.BufAlloc != bufAlloc {
		t.Fatalf("got %+v", ps)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*Conn)
	g.send(header{SrcPort: 5000, DstPort: 1024, Op: opRW}, []byte("hello host"))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if string(buf[:n]) != "hello host" {
		t.Fatalf("read %q", buf[:n])
	}
	c.Write([]byte("hello guest"))
	ps = g.received()
	if len(ps) != 1 || ps[0].h.Op != opRW || string(ps[0].data) != "hello guest" {
		t.Fatalf("got %+v", ps)
	}
	// Guest half-closes: data first, then EOF.
	g.send(header{SrcPort: 5000, DstPort: 1024, Op: opRW}, []byte("last"))
	g.send(header{SrcPort: 5000, DstPort: 1024, Op: opShutdown, Flags: shutdownSend}, nil)
	all, err := io.ReadAll(c)
	if err != nil || string(all) != "last" {
		t.Fatalf("ReadAll = %q, %v", all, err)
	}
	// Host half-closes after queued data: RW then SHUTDOWN(SEND).
	c.Write([]byte("bye"))
	c.CloseWrite()
	ps = g.received()
	if len(ps) != 2 || ps[0].h.Op != opRW || string(ps[0].data) != "bye" || ps[1].h.Op != opShutdown || ps[1].h.Flags != shutdownSend {
		t.Fatalf("got %+v", ps)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write after CloseWrite succeeded")
	}
}

func TestRSTForUnknownPortAndType(t *testing.T) {
	g := newFakeGuest(t)
	g.postRx(8)
	g.send(header{SrcPort: 5000, DstPort: 999, Op: opRequest}, nil)
	g.send(header{SrcPort: 5001, DstPort: 999, Op: opRW}, []byte("x"))
	h := header{SrcPort: 5002, DstPort: 999, Op: opRequest}
	b := make([]byte, hdrSize)
	h.SrcCID, h.DstCID, h.Type = g.cid, HostCID, 2 // SEQPACKET: not offered
	h.encode(b)
	g.offer(txQueue, b, hdrSize, false)
	g.dev.QueueNotify(txQueue)
	if got := ops(g.received()); len(got) != 3 || got[0] != opRST || got[1] != opRST || got[2] != opRST {
		t.Fatalf("ops %v", got)
	}
}

func TestSpoofedSourceDropped(t *testing.T) {
	g := newFakeGuest(t)
	l, _ := g.dev.Listen(1024)
	defer l.Close()
	g.postRx(4)
	g.cid = 42 // not the guest's CID
	g.send(header{SrcPort: 5000, DstPort: 1024, Op: opRequest}, nil)
	if ps := g.received(); len(ps) != 0 {
		t.Fatalf("answered a spoofed packet: %+v", ps)
	}
}

func dial(t *testing.T, g *fakeGuest, port uint32, answer uint16) (*Conn, error) {
	g.postRx(1)
	c, err := g.dev.startDial(port)
	if err != nil {
		t.Fatal(err)
	}
	ps := g.received()
	if len(ps) != 1 || ps[0].h.Op != opRequest || ps[0].h.DstPort != port {
		t.Fatalf("guest got %+v, want a REQUEST", ps)
	}
	g.send(header{SrcPort: port, DstPort: ps[0].h.SrcPort, Op: answer, BufAlloc: 100}, nil)
	return g.dev.finishDial(context.Background(), c)
}

func TestHostDial(t *testing.T) {
	g := newFakeGuest(t)
	if _, err := dial(t, g, 1024, opRST); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refused dial: err = %v", err)
	}
	c, err := dial(t, g, 1024, opResponse)
	if err != nil {
		t.Fatal(err)
	}
	// The guest advertised 100 bytes of buffer: only that much goes out
	// until it returns credit.
	g.postRx(8)
	c.Write(bytes.Repeat([]byte("a"), 250)) // queued: fits the send buffer
	var got int
	for _, p := range g.received() {
		got += len(p.data)
	}
	if got != 100 {
		t.Fatalf("sent %d bytes on 100 bytes of credit", got)
	}
	g.send(header{SrcPort: 1024, DstPort: c.key.local, Op: opCreditUpdate, BufAlloc: 100, FwdCnt: 100}, nil)
	for _, p := range g.received() {
		got += len(p.data)
	}
	if got != 200 {
		t.Fatalf("after credit update: %d bytes, want 200", got)
	}
}

// A connection whose guest reader stopped (no credit) must not hold up the
// rx queue for another.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	g := newFakeGuest(t)
	l, _ := g.dev.Listen(1024)
	defer l.Close()
	g.postRx(16)
	g.send(header{SrcPort: 1, DstPort: 1024, Op: opRequest, BufAlloc: 10}, nil)
	g.send(header{SrcPort: 2, DstPort: 1024, Op: opRequest, BufAlloc: 1 << 20}, nil)
	slow, _ := l.Accept()
	fast, _ := l.Accept()
	g.received()
	slow.Write(bytes.Repeat([]byte("s"), 1000)) // queued; 10 bytes of credit
	fast.Write([]byte("fast data"))
	seen := false
	for _, p := range g.received() {
		if p.h.DstPort == 2 && string(p.data) == "fast data" {
			seen = true
		}
	}
	if !seen {
		t.Fatal("fast connection's data did not get through")
	}
}

func TestCreditOverrunResets(t *testing.T) {
	g, _, c := connected(t, 8)
	chunk := bytes.Repeat([]byte("x"), maxPayload)
	for i := 0; i < bufAlloc/maxPayload+1; i++ {
		g.send(header{SrcPort: 7, DstPort: 1024, Op: opRW}, chunk)
	}
	if _, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after overrun: %v", err)
	}
	if got := ops(g.received()); len(got) == 0 || got[len(got)-1] != opRST {
		t.Fatalf("no RST after overrun: %v", got)
	}
}

func TestCreditReturnedAsHostReads(t *testing.T) {
	g, _, c := connected(t, 8)
	chunk := bytes.Repeat([]byte("x"), maxPayload)
	g.send(header{SrcPort: 7, DstPort: 1024, Op: opRW}, chunk)
	io.ReadFull(c, make([]byte, maxPayload))
	ps := g.received()
	if len(ps) != 1 || ps[0].h.Op != opCreditUpdate || ps[0].h.FwdCnt != maxPayload {
		t.Fatalf("got %+v", ps)
	}
	g.send(header{SrcPort: 7, DstPort: 1024, Op: opCreditRequest}, nil)
	if ps := g.received(); len(ps) != 1 || ps[0].h.Op != opCreditUpdate {
		t.Fatalf("credit request answered with %+v", ps)
	}
}

func TestCloseShutsBothWaysAndPeerRST(t *testing.T) {
	g, l, c := connected(t, 8)
	c.Close()
	ps := g.received()
	if len(ps) != 1 || ps[0].h.Op != opShutdown || ps[0].h.Flags != shutdownSend|shutdownRcv {
		t.Fatalf("got %+v", ps)
	}
	g.send(header{SrcPort: 7, DstPort: 1024, Op: opRST}, nil)
	g.dev.mu.Lock()
	n := len(g.dev.conns)
	g.dev.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d connections left", n)
	}
	// Peer-initiated close: guest shuts both ways, device answers RST.
	g.send(header{SrcPort: 8, DstPort: 1024, Op: opRequest}, nil)
	c2, _ := l.Accept()
	g.received()
	g.send(header{SrcPort: 8, DstPort: 1024, Op: opShutdown, Flags: shutdownSend | shutdownRcv}, nil)
	if got := ops(g.received()); len(got) != 1 || got[0] != opRST {
		t.Fatalf("got %v", got)
	}
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after peer close: %v", err)
	}
}

func TestDeviceResetResetsConnections(t *testing.T) {
	g, _, c := connected(t, 8)
	g.dev.Reset()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) && err == nil {
		t.Fatalf("read after reset: %v", err)
	}
}

// FuzzTxPacket feeds arbitrary bytes as guest transmissions: the device
// must never panic, whatever the header says.
func FuzzTxPacket(f *testing.F) {
	seed := make([]byte, hdrSize+4)
	header{SrcCID: DefaultGuestCID, DstCID: HostCID, SrcPort: 1, DstPort: 1024, Type: typeStream, Op: opRequest, Len: 4}.encode(seed)
	f.Add(seed, uint32(len(seed)))
	f.Add(seed[:10], uint32(100))
	f.Fuzz(func(t *testing.T, pkt []byte, claimed uint32) {
		g := newFakeGuest(t)
		l, _ := g.dev.Listen(1024)
		defer l.Close()
		g.postRx(4)
		g.offer(txQueue, pkt, min(claimed, 0x2000), false)
		g.dev.QueueNotify(txQueue)
		g.received()
	})
}

// The event queue carries TRANSPORT_RESET; host connections are reset too.
func TestTransportReset(t *testing.T) {
	g, _, c := connected(t, 4)
	g.offer(evQueue, nil, 8, true)
	g.dev.TransportReset()
	ev := g.rings[evQueue]
	used := g.mem[ev.base+0x2000:]
	if idx := binary.LittleEndian.Uint16(used[2:]); idx != 1 {
		t.Fatalf("event queue used idx %d", idx)
	}
	if n := binary.LittleEndian.Uint32(used[8:]); n != 4 || binary.LittleEndian.Uint32(g.mem[ev.bufBase:]) != eventTransportReset {
		t.Fatalf("event = %d bytes", n)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection survived the transport reset")
	}
}
