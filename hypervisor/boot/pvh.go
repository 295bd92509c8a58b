package boot

import (
	"encoding/binary"
	"fmt"
)

// Memory is what the boot writers need of guest RAM.
type Memory interface {
	Slice(addr, n uint64) ([]byte, error)
}

// struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
const (
	pvhMagic         = 0x336ec578
	startInfoSize    = 56
	memmapEntrySize  = 24
	modlistEntrySize = 32
	maxMemmapEntries = 32
)

// Initrd says where the initial ramdisk was placed.
type Initrd struct{ Addr, Size uint64 }

// WritePVHStartInfo writes hvm_start_info (version 1, with a memory map)
// at StartInfoAddr, followed by its memmap and, when there is an initrd,
// a one-entry module list. The kernel's PVH entry reads it through EBX.
func WritePVHStartInfo(mem Memory, e820 []E820Entry, initrd Initrd) error {
	if len(e820) > maxMemmapEntries {
		return fmt.Errorf("memory map has %d entries, at most %d fit", len(e820), maxMemmapEntries)
	}
	memmapAddr := uint64(StartInfoAddr + startInfoSize + 8) // keep 8-byte alignment
	modAddr := memmapAddr + uint64(len(e820))*memmapEntrySize
	total := modAddr + modlistEntrySize - StartInfoAddr
	b, err := mem.Slice(StartInfoAddr, total)
	if err != nil {
		return fmt.Errorf("PVH start info: %w", err)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint32(b[0:], pvhMagic)
	le.PutUint32(b[4:], 1) // version
	if initrd.Size > 0 {
		le.PutUint32(b[12:], 1) // nr_modules
		le.PutUint64(b[16:], modAddr)
		m := b[modAddr-StartInfoAddr:]
		le.PutUint64(m[0:], initrd.Addr)
		le.PutUint64(m[8:], initrd.Size)
	}
	le.PutUint64(b[24:], CmdlineAddr)
	le.PutUint64(b[32:], 0) // rsdp_paddr: no ACPI
	le.PutUint64(b[40:], memmapAddr)
	le.PutUint32(b[48:], uint32(len(e820)))
	for i, e := range e820 {
		m := b[memmapAddr-StartInfoAddr+uint64(i)*memmapEntrySize:]
		le.PutUint64(m[0:], e.Addr)
		le.PutUint64(m[8:], e.Size)
		le.PutUint32(m[16:], e.Type)
	}
	return nil
}

// WriteCmdline writes the NUL-terminated kernel command line.
func WriteCmdline(mem Memory, cmdline string) error {
	if len(cmdline)+1 > CmdlineMax {
		return fmt.Errorf("kernel command line is %d bytes, at most %d fit", len(cmdline), CmdlineMax-1)
	}
	b, err := mem.Slice(CmdlineAddr, uint64(len(cmdline))+1)
	if err != nil {
		return err
	}
	copy(b, cmdline)
	b[len(cmdline)] = 0
	return nil
}
