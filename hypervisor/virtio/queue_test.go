package virtio

import (
	"encoding/binary"
	"errors"
	"github.com/novm/novm/hypervisor/virtio/virtiotest"
	"testing"
)

const (
	tDesc  = 0x1000
	tAvail = 0x2000
	tUsed  = 0x3000
	tData  = 0x4000
	tSize  = 8
)

// driver plays the guest side of a split ring.
type driver struct {
	mem   virtiotest.FlatMem
	avail uint16
}

func newDriver() (*driver, *Queue) {
	d := &driver{mem: make(virtiotest.FlatMem, 0x10000)}
	q, err := NewQueue(d.mem, QueueState{Size: tSize, DescAddr: tDesc, AvailAddr: tAvail, UsedAddr: tUsed})
	if err != nil {
		panic(err)
	}
	return d, q
}

func (d *driver) setDesc(i uint16, addr uint64, length uint32, flags, next uint16) {
	b := d.mem[tDesc+16*uint64(i):]
	binary.LittleEndian.PutUint64(b, addr)
	binary.LittleEndian.PutUint32(b[8:], length)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

func (d *driver) offer(head uint16) {
	binary.LittleEndian.PutUint16(d.mem[tAvail+4+2*uint64(d.avail%tSize):], head)
	d.avail++
	binary.LittleEndian.PutUint16(d.mem[tAvail+2:], d.avail)
}

func TestPopPushChain(t *testing.T) {
	d, q := newDriver()
	copy(d.mem[tData:], "hello")
	d.setDesc(0, tData, 5, descFNext, 3)
	d.setDesc(3, tData+0x100, 64, descFWrite, 0)
	if c, _ := q.Pop(); c != nil {
		t.Fatal("pop from empty ring returned a chain")
	}
	d.offer(0)
	if !q.Pending() {
		t.Fatal("Pending false with a buffer offered")
	}
	c, err := q.Pop()
	if err != nil || c == nil {
		t.Fatalf("Pop = %v, %v", c, err)
	}
	r, w := c.Readable(), c.Writable()
	if len(r) != 1 || string(r[0].Buf) != "hello" || len(w) != 1 || len(w[0].Buf) != 64 {
		t.Fatalf("chain = %+v", c)
	}
	if err := q.Push(c.Head, 7); err != nil {
		t.Fatal(err)
	}
	used := d.mem[tUsed:]
	if idx := binary.LittleEndian.Uint16(used[2:]); idx != 1 {
		t.Fatalf("used idx = %d", idx)
	}
	if id, n := binary.LittleEndian.Uint32(used[4:]), binary.LittleEndian.Uint32(used[8:]); id != 0 || n != 7 {
		t.Fatalf("used elem = %d,%d", id, n)
	}
}

func TestRingWrapsAround(t *testing.T) {
	d, q := newDriver()
	d.setDesc(1, tData, 1, 0, 0)
	for i := 0; i < 3*tSize; i++ {
		d.offer(1)
		c, err := q.Pop()
		if err != nil || c == nil || c.Head != 1 {
			t.Fatalf("round %d: %v %v", i, c, err)
		}
		q.Push(c.Head, 0)
	}
}

func TestHostileRings(t *testing.T) {
	for name, setup := range map[string]func(d *driver){
		"loop":               func(d *driver) { d.setDesc(0, tData, 1, descFNext, 1); d.setDesc(1, tData, 1, descFNext, 0) },
		"self loop":          func(d *driver) { d.setDesc(0, tData, 1, descFNext, 0) },
		"next out of range":  func(d *driver) { d.setDesc(0, tData, 1, descFNext, 200) },
		"buffer outside RAM": func(d *driver) { d.setDesc(0, 1<<40, 16, 0, 0) },
		"buffer overflow":    func(d *driver) { d.setDesc(0, ^uint64(0)-4, 16, 0, 0) },
		"length past end":    func(d *driver) { d.setDesc(0, 0xfff0, 0x100, 0, 0) },
		"indirect":           func(d *driver) { d.setDesc(0, tData, 16, descFIndirect, 0) },
	} {
		d, q := newDriver()
		setup(d)
		d.offer(0)
		if c, err := q.Pop(); err == nil {
			t.Errorf("%s: Pop = %+v, want error", name, c)
		}
	}
	// A driver claiming more available buffers than the ring holds.
	d, q := newDriver()
	binary.LittleEndian.PutUint16(d.mem[tAvail+2:], tSize+1)
	if _, err := q.Pop(); !errors.Is(err, ErrAvailOverrun) {
		t.Errorf("overrun: err = %v", err)
	}
}

func TestNewQueueChecksRings(t *testing.T) {
	mem := make(virtiotest.FlatMem, 0x4000)
	for _, s := range []QueueState{
		{Size: 0, DescAddr: 0, AvailAddr: 0x1000, UsedAddr: 0x2000},
		{Size: 3, DescAddr: 0, AvailAddr: 0x1000, UsedAddr: 0x2000},
		{Size: 256, DescAddr: 0x3f00, AvailAddr: 0x1000, UsedAddr: 0x2000},
		{Size: 8, DescAddr: 0, AvailAddr: 0x1000, UsedAddr: 0x3ffc},
	} {
		if _, err := NewQueue(mem, s); err == nil {
			t.Errorf("NewQueue(%+v) accepted", s)
		}
	}
}

// FuzzQueue feeds arbitrary guest memory to the ring walker: it must never
// panic or loop, whatever the rings say.
func FuzzQueue(f *testing.F) {
	seed := make([]byte, 0x200)
	binary.LittleEndian.PutUint16(seed[0x100+2:], 1) // avail idx
	binary.LittleEndian.PutUint64(seed[0:], 0x180)   // desc 0 addr
	binary.LittleEndian.PutUint32(seed[8:], 16)
	f.Add(seed, uint16(8))
	f.Add(make([]byte, 64), uint16(4))
	f.Fuzz(func(t *testing.T, mem []byte, size uint16) {
		size = 1 << (size % 6) // 1..32
		m := make(virtiotest.FlatMem, 0x1000)
		copy(m, mem)
		q, err := NewQueue(m, QueueState{Size: size, DescAddr: 0, AvailAddr: 0x100 * 2, UsedAddr: 0x100 * 4})
		if err != nil {
			return
		}
		for i := 0; i < 3*int(size); i++ {
			c, err := q.Pop()
			if err != nil || c == nil {
				return
			}
			for _, d := range c.Descs {
				_ = d.Buf[len(d.Buf)-1:] // buffers are inside m
			}
			q.Push(c.Head, 0)
		}
	})
}
