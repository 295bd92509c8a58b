package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Memory is the guest RAM a queue reads; every address in a ring is the
// guest's to choose, so every access goes through this bounds check.
type Memory interface {
	Slice(addr, n uint64) ([]byte, error)
}

// Descriptor flags.
const (
	descFNext     = 1
	descFWrite    = 2
	descFIndirect = 4

	descSize = 16
)

// Errors from walking a guest's rings. A device that gets one should stop
// using the queue (the driver is broken or hostile), not the VMM.
var (
	ErrChainLoop     = errors.New("virtio: descriptor chain longer than the queue (loop?)")
	ErrBadDescriptor = errors.New("virtio: descriptor out of range")
	ErrIndirect      = errors.New("virtio: indirect descriptor not negotiated")
	ErrAvailOverrun  = errors.New("virtio: driver made more buffers available than the queue holds")
)

// Descriptor is one buffer of a chain, already bounds-checked: Buf aliases
// guest memory.
type Descriptor struct {
	Addr     uint64
	Buf      []byte
	Writable bool
}

// Chain is a descriptor chain popped from the available ring.
type Chain struct {
	Head  uint16
	Descs []Descriptor
}

// Readable returns the device-readable buffers (those before the first
// writable one, per the spec's ordering rule).
func (c *Chain) Readable() []Descriptor {
	for i, d := range c.Descs {
		if d.Writable {
			return c.Descs[:i]
		}
	}
	return c.Descs
}

// Writable returns the device-writable buffers.
func (c *Chain) Writable() []Descriptor {
	for i, d := range c.Descs {
		if d.Writable {
			return c.Descs[i:]
		}
	}
	return nil
}

// QueueState is a queue's configuration and progress, explicit so a queue
// can be saved and restored (snapshots) and fuzzed in isolation.
type QueueState struct {
	Size      uint16
	DescAddr  uint64
	AvailAddr uint64
	UsedAddr  uint64
	LastAvail uint16 // next available-ring entry to consume
	UsedIdx   uint16 // next used-ring index to publish
}

// Queue is a split virtqueue (virtio 1.2 §2.7) driven by the device side.
// It is not safe for concurrent use: one goroutine serves a queue.
type Queue struct {
	QueueState
	mem Memory
}

// NewQueue binds a configured queue to guest memory after checking that
// its rings lie inside RAM.
func NewQueue(mem Memory, s QueueState) (*Queue, error) {
	if s.Size == 0 || s.Size&(s.Size-1) != 0 || s.Size > 32768 {
		return nil, fmt.Errorf("virtio: queue size %d is not a power of two in 1..32768", s.Size)
	}
	n := uint64(s.Size)
	for _, r := range []struct {
		name       string
		addr, size uint64
	}{
		{"descriptor table", s.DescAddr, descSize * n},
		{"available ring", s.AvailAddr, 6 + 2*n},
		{"used ring", s.UsedAddr, 6 + 8*n},
	} {
		if _, err := mem.Slice(r.addr, r.size); err != nil {
			return nil, fmt.Errorf("virtio: %s: %w", r.name, err)
		}
	}
	return &Queue{QueueState: s, mem: mem}, nil
}

func (q *Queue) availIdx() (uint16, error) {
	b, err := q.mem.Slice(q.AvailAddr+2, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// Pending reports whether the driver has made buffers available that the
// device has not consumed.
func (q *Queue) Pending() bool {
	idx, err := q.availIdx()
	return err == nil && idx != q.LastAvail
}

// Pop takes the next available chain, or returns nil when there is none.
func (q *Queue) Pop() (*Chain, error) {
	idx, err := q.availIdx()
	if err != nil {
		return nil, err
	}
	if idx == q.LastAvail {
		return nil, nil
	}
	if idx-q.LastAvail > q.Size {
		return nil, ErrAvailOverrun
	}
	// The ring entry is read after idx: x86 keeps loads in order, and the
	// driver wrote the entry before publishing idx.
	slot := uint64(q.LastAvail % q.Size)
	b, err := q.mem.Slice(q.AvailAddr+4+2*slot, 2)
	if err != nil {
		return nil, err
	}
	head := binary.LittleEndian.Uint16(b)
	q.LastAvail++
	c, err := q.walk(head)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// walk follows a descriptor chain, bounding its length by the queue size so
// a looping chain cannot hang the device.
func (q *Queue) walk(head uint16) (*Chain, error) {
	c := &Chain{Head: head}
	i := head
	for n := 0; ; n++ {
		if n >= int(q.Size) {
			return nil, ErrChainLoop
		}
		if i >= q.Size {
			return nil, fmt.Errorf("%w: index %d, queue size %d", ErrBadDescriptor, i, q.Size)
		}
		raw, err := q.mem.Slice(q.DescAddr+descSize*uint64(i), descSize)
		if err != nil {
			return nil, err
		}
		addr := binary.LittleEndian.Uint64(raw[0:])
		length := binary.LittleEndian.Uint32(raw[8:])
		flags := binary.LittleEndian.Uint16(raw[12:])
		next := binary.LittleEndian.Uint16(raw[14:])
		if flags&descFIndirect != 0 {
			return nil, ErrIndirect
		}
		buf, err := q.mem.Slice(addr, uint64(length))
		if err != nil {
			return nil, fmt.Errorf("%w: buffer %#x+%#x: %v", ErrBadDescriptor, addr, length, err)
		}
		c.Descs = append(c.Descs, Descriptor{Addr: addr, Buf: buf, Writable: flags&descFWrite != 0})
		if flags&descFNext == 0 {
			return c, nil
		}
		i = next
	}
}

// Push returns a chain to the driver with the number of bytes the device
// wrote into its writable buffers.
func (q *Queue) Push(head uint16, written uint32) error {
	slot := uint64(q.UsedIdx % q.Size)
	e, err := q.mem.Slice(q.UsedAddr+4+8*slot, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(e[0:], uint32(head))
	binary.LittleEndian.PutUint32(e[4:], written)
	q.UsedIdx++
	// Publish idx after the entry. The used ring is 4-byte aligned, so the
	// flags+idx word can be stored atomically (flags stay 0: the device
	// never asks the driver to stop notifying).
	w, err := q.mem.Slice(q.UsedAddr, 4)
	if err != nil {
		return err
	}
	word := uint32(q.UsedIdx) << 16
	if q.UsedAddr%4 == 0 {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&w[0])), word)
	} else {
		binary.LittleEndian.PutUint32(w, word)
	}
	return nil
}

// InterruptSuppressed reports whether the driver asked not to be
// interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT).
func (q *Queue) InterruptSuppressed() bool {
	b, err := q.mem.Slice(q.AvailAddr, 2)
	return err == nil && binary.LittleEndian.Uint16(b)&1 != 0
}
