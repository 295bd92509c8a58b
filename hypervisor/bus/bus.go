// Package bus routes guest port I/O and MMIO exits to the device that
// decodes the address. It is the seam between the vCPU loop and device
// models: devices see offsets from their own base, never KVM.
package bus

import (
	"fmt"
	"sort"
	"sync"
)

// Device handles accesses at offsets from its base address. data is the
// access (1, 2, 4 or 8 bytes): filled on read, consumed on write.
type Device interface {
	Read(offset uint64, data []byte)
	Write(offset uint64, data []byte)
}

type mapping struct {
	base, size uint64
	dev        Device
}

// Bus is an address space (port I/O or MMIO) with non-overlapping ranges.
// Lookups take a read lock, so vCPUs do not serialise on each other.
type Bus struct {
	mu       sync.RWMutex
	mappings []mapping // sorted by base
}

// Register maps dev at [base, base+size).
func (b *Bus) Register(base, size uint64, dev Device) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("bus: bad range %#x+%#x", base, size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.mappings {
		if base < m.base+m.size && m.base < base+size {
			return fmt.Errorf("bus: range %#x+%#x overlaps %#x+%#x", base, size, m.base, m.size)
		}
	}
	b.mappings = append(b.mappings, mapping{base, size, dev})
	sort.Slice(b.mappings, func(i, j int) bool { return b.mappings[i].base < b.mappings[j].base })
	return nil
}

// Unregister removes the mapping at base.
func (b *Bus) Unregister(base uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, m := range b.mappings {
		if m.base == base {
			b.mappings = append(b.mappings[:i], b.mappings[i+1:]...)
			return
		}
	}
}

func (b *Bus) find(addr uint64) (Device, uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i := sort.Search(len(b.mappings), func(i int) bool { return b.mappings[i].base+b.mappings[i].size > addr })
	if i < len(b.mappings) && addr >= b.mappings[i].base {
		m := b.mappings[i]
		return m.dev, addr - m.base, true
	}
	return nil, 0, false
}

// Read dispatches a read; unclaimed addresses read as all ones, as on a
// PC with nothing decoding them. It reports whether a device answered.
func (b *Bus) Read(addr uint64, data []byte) bool {
	dev, off, ok := b.find(addr)
	if !ok {
		for i := range data {
			data[i] = 0xff
		}
		return false
	}
	dev.Read(off, data)
	return true
}

// Write dispatches a write; writes to unclaimed addresses are dropped.
func (b *Bus) Write(addr uint64, data []byte) bool {
	dev, off, ok := b.find(addr)
	if !ok {
		return false
	}
	dev.Write(off, data)
	return true
}
