// Package memory owns guest RAM: anonymous host mappings outside the Go
// heap, laid out around the x86 MMIO hole below 4 GiB, with bounds-checked
// access by guest physical address for loaders and devices.
//
// Every device reads guest-controlled addresses through Slice, so it is the
// one place that decides what "inside guest RAM" means.
package memory

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The x86 layout novm gives a guest: RAM from 0 up to MMIOHoleStart, the
// hole (virtio-mmio devices, IOAPIC, LAPIC, the TSS pages) up to 4 GiB, and
// any further RAM from 4 GiB up.
const (
	MMIOHoleStart uint64 = 0xc000_0000
	MMIOHoleEnd   uint64 = 1 << 32
)

// ErrOutOfRange is returned for accesses outside guest RAM.
var ErrOutOfRange = errors.New("guest physical range outside RAM")

// Region is one contiguous piece of guest RAM.
type Region struct {
	GuestAddr uint64
	Host      []byte
}

// End is the first guest address after the region.
func (r Region) End() uint64 { return r.GuestAddr + uint64(len(r.Host)) }

// Memory is the guest's RAM.
type Memory struct {
	regions []Region
	size    uint64
}

// New maps size bytes of guest RAM (a multiple of 4 KiB). Pages are
// reserved lazily (MAP_NORESERVE): a guest that touches little costs little.
func New(size uint64) (*Memory, error) {
	if size == 0 || size%4096 != 0 {
		return nil, fmt.Errorf("guest memory size %d is not a positive multiple of 4 KiB", size)
	}
	m := &Memory{size: size}
	low := min(size, MMIOHoleStart)
	if err := m.add(0, low); err != nil {
		return nil, err
	}
	if size > low {
		if err := m.add(MMIOHoleEnd, size-low); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

func (m *Memory) add(guestAddr, size uint64) error {
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("mmap %d MiB of guest memory: %w", size>>20, err)
	}
	// The guest's memory is not the VMM's: keep it out of core dumps.
	_ = unix.Madvise(b, unix.MADV_DONTDUMP)
	m.regions = append(m.regions, Region{GuestAddr: guestAddr, Host: b})
	return nil
}

// Close unmaps all guest RAM. Slices obtained earlier become invalid.
func (m *Memory) Close() error {
	var first error
	for _, r := range m.regions {
		if err := unix.Munmap(r.Host); err != nil && first == nil {
			first = err
		}
	}
	m.regions = nil
	return first
}

// Size is the total RAM in bytes.
func (m *Memory) Size() uint64 { return m.size }

// Regions lists the RAM regions in ascending guest address order.
func (m *Memory) Regions() []Region { return m.regions }

// HostAddr is the host virtual address of a region, for KVM.
func (r Region) HostAddr() uintptr { return uintptr(unsafe.Pointer(&r.Host[0])) }

// Slice returns the host bytes backing [addr, addr+n). The range must lie
// inside one region; overflow and out-of-RAM ranges are errors, never
// panics, because addr and n usually come from the guest.
func (m *Memory) Slice(addr, n uint64) ([]byte, error) {
	end := addr + n
	if end < addr {
		return nil, fmt.Errorf("%w: %#x+%#x overflows", ErrOutOfRange, addr, n)
	}
	for _, r := range m.regions {
		if addr >= r.GuestAddr && end <= r.End() {
			off := addr - r.GuestAddr
			return r.Host[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("%w: [%#x, %#x)", ErrOutOfRange, addr, end)
}

// Write copies b into guest memory at addr.
func (m *Memory) Write(addr uint64, b []byte) error {
	dst, err := m.Slice(addr, uint64(len(b)))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

// Read copies guest memory at addr into b.
func (m *Memory) Read(addr uint64, b []byte) error {
	src, err := m.Slice(addr, uint64(len(b)))
	if err != nil {
		return err
	}
	copy(b, src)
	return nil
}

// LowEnd is the end of the RAM region that starts at 0 (below the hole):
// where 32-bit boot structures and the initrd must live.
func (m *Memory) LowEnd() uint64 { return m.regions[0].End() }
