package fs

import (
	"encoding/binary"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/virtio"
	"github.com/novm/novm/hypervisor/virtio/virtiotest"
)

// echoServer answers every request with its own bytes, reversed, spread
// over the reply buffers.
type echoServer struct{ seen [][]byte }

func (e *echoServer) Handle(in []byte, out [][]byte) int {
	e.seen = append(e.seen, append([]byte(nil), in...))
	n := 0
	for i := len(in) - 1; i >= 0; i-- {
		for len(out) > 0 && len(out[0]) == 0 {
			out = out[1:]
		}
		if len(out) == 0 {
			break
		}
		out[0][0] = in[i]
		out[0] = out[0][1:]
		n++
	}
	return n
}

type nopIRQ struct{}

func (nopIRQ) UsedBuffers() {}

func TestConfigSpace(t *testing.T) {
	d, err := New("rootfs", &echoServer{}, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := make([]byte, 40)
	d.ReadConfig(0, cfg)
	if string(cfg[:6]) != "rootfs" || cfg[6] != 0 || binary.LittleEndian.Uint32(cfg[36:]) != 1 {
		t.Fatalf("config % x", cfg)
	}
	if _, err := New(string(make([]byte, 37)), &echoServer{}, nil); err == nil {
		t.Fatal("over-long tag accepted")
	}
}

// A request split over two readable descriptors reaches the server as one
// private copy; the reply is scattered over two writable ones.
func TestRequestCopiedAndReplyScattered(t *testing.T) {
	mem := make(virtiotest.FlatMem, 1<<20)
	srv := &echoServer{}
	d, _ := New("tag", srv, logrus.NewEntry(logrus.New()))
	var qs []*virtio.Queue
	for i := 0; i < 2; i++ {
		base := uint64(0x10000 * (i + 1))
		q, err := virtio.NewQueue(mem, virtio.QueueState{Size: 8, DescAddr: base, AvailAddr: base + 0x1000, UsedAddr: base + 0x2000})
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	d.Activate(mem, 0, qs, nopIRQ{})
	base := uint64(0x20000)
	desc := func(i int, addr uint64, n uint32, flags, next uint16) {
		b := mem[base+16*uint64(i):]
		binary.LittleEndian.PutUint64(b, addr)
		binary.LittleEndian.PutUint32(b[8:], n)
		binary.LittleEndian.PutUint16(b[12:], flags)
		binary.LittleEndian.PutUint16(b[14:], next)
	}
	copy(mem[0x40000:], "abc")
	copy(mem[0x41000:], "def")
	desc(0, 0x40000, 3, 1, 1)
	desc(1, 0x41000, 3, 1, 2)
	desc(2, 0x42000, 2, 1|2, 3)
	desc(3, 0x43000, 16, 2, 0)
	binary.LittleEndian.PutUint16(mem[base+0x1000+4:], 0)
	binary.LittleEndian.PutUint16(mem[base+0x1000+2:], 1)
	d.QueueNotify(1)
	if len(srv.seen) != 1 || string(srv.seen[0]) != "abcdef" {
		t.Fatalf("server saw %q", srv.seen)
	}
	if string(mem[0x42000:0x42002]) != "fe" || string(mem[0x43000:0x43004]) != "dcba" {
		t.Fatalf("reply % x % x", mem[0x42000:0x42002], mem[0x43000:0x43004])
	}
	if n := binary.LittleEndian.Uint32(mem[base+0x2000+8:]); n != 6 {
		t.Fatalf("used length %d", n)
	}
	// The request is the server's own copy: the guest changing its
	// buffers afterwards does not change what the server holds.
	copy(mem[0x40000:], "XYZ")
	if string(srv.seen[0]) != "abcdef" {
		t.Fatal("server's request aliases guest memory")
	}
}
