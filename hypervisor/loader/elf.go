// Package loader puts a Linux kernel into guest memory: an ELF vmlinux
// (preferably entered through its PVH note) or a bzImage, whose compressed
// payload is unpacked on the host once and cached, because the in-guest
// decompressor runs slowly on nested KVMs.
package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Memory is where the loader writes; *memory.Memory implements it. It
// must be fresh (zero) guest memory: segments' BSS is not cleared again.
type Memory interface {
	Slice(addr, n uint64) ([]byte, error)
}

// FileLoader is implemented by memories that can map file contents in
// rather than copy them (see memory.Memory.LoadFile).
type FileLoader interface {
	LoadFile(addr uint64, f *os.File, off int64, length uint64) error
}

// Kernel says where a loaded kernel lives and how to enter it.
type Kernel struct {
	// PVHEntry is the 32-bit physical entry point from the Xen
	// PHYS32_ENTRY note; zero when the kernel has no PVH entry.
	PVHEntry uint64
	// Entry64 is the physical address of the 64-bit entry (startup_64)
	// for the Linux 64-bit boot protocol.
	Entry64 uint64
	// Start and End bound the loaded image in guest physical memory.
	Start, End uint64
	// Setup is the bzImage setup header (boot_params bytes 0x1f1..), if
	// the kernel came from a bzImage; nil for a plain vmlinux.
	Setup []byte
}

// ErrNotKernel is returned for files that are neither an x86-64 ELF kernel
// nor a bzImage.
var ErrNotKernel = errors.New("not an x86-64 Linux kernel (want an ELF vmlinux or a bzImage)")

const (
	xenNoteName          = "Xen"
	xenElfnotePhys32Entr = 18
)

// LoadELF loads the PT_LOAD segments of an x86-64 ELF kernel at their
// physical addresses and finds its entry points.
func LoadELF(mem Memory, r io.ReaderAt) (Kernel, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return Kernel{}, fmt.Errorf("%w: %v", ErrNotKernel, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return Kernel{}, fmt.Errorf("%w: ELF is %v %v %v", ErrNotKernel, f.Class, f.Machine, f.Type)
	}
	k := Kernel{Start: ^uint64(0)}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if p.Filesz > p.Memsz {
				return Kernel{}, fmt.Errorf("%w: segment file size %#x > memory size %#x", ErrNotKernel, p.Filesz, p.Memsz)
			}
			dst, err := mem.Slice(p.Paddr, p.Memsz)
			if err != nil {
				return Kernel{}, fmt.Errorf("kernel segment at %#x (%d MiB) does not fit in guest memory: %w", p.Paddr, p.Memsz>>20, err)
			}
			fl, canMap := mem.(FileLoader)
			if file, isFile := r.(*os.File); canMap && isFile {
				err = fl.LoadFile(p.Paddr, file, int64(p.Off), p.Filesz)
			} else {
				_, err = io.ReadFull(p.Open(), dst[:p.Filesz])
			}
			if err != nil {
				return Kernel{}, fmt.Errorf("read kernel segment at %#x: %w", p.Paddr, err)
			}
			k.Start = min(k.Start, p.Paddr)
			k.End = max(k.End, p.Paddr+p.Memsz)
			// vmlinux's e_entry is physical on x86-64; accept a
			// virtual one too.
			switch {
			case f.Entry >= p.Paddr && f.Entry < p.Paddr+p.Memsz:
				k.Entry64 = f.Entry
			case f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz:
				k.Entry64 = f.Entry - p.Vaddr + p.Paddr
			}
		case elf.PT_NOTE:
			data := make([]byte, p.Filesz)
			if _, err := io.ReadFull(p.Open(), data); err != nil {
				return Kernel{}, fmt.Errorf("read ELF notes: %w", err)
			}
			if e, ok := findPVHEntry(data); ok {
				k.PVHEntry = e
			}
		}
	}
	if k.End == 0 {
		return Kernel{}, fmt.Errorf("%w: no loadable segments", ErrNotKernel)
	}
	if k.PVHEntry == 0 && k.Entry64 == 0 {
		return Kernel{}, fmt.Errorf("%w: entry point %#x is in no segment and there is no PVH note", ErrNotKernel, f.Entry)
	}
	return k, nil
}

// findPVHEntry scans an ELF note section for Xen's PHYS32_ENTRY note.
func findPVHEntry(notes []byte) (uint64, bool) {
	for len(notes) >= 12 {
		namesz := binary.LittleEndian.Uint32(notes[0:])
		descsz := binary.LittleEndian.Uint32(notes[4:])
		typ := binary.LittleEndian.Uint32(notes[8:])
		nameEnd := 12 + align4(uint64(namesz))
		descEnd := nameEnd + align4(uint64(descsz))
		if descEnd > uint64(len(notes)) {
			return 0, false
		}
		name := bytes.TrimRight(notes[12:12+namesz], "\x00")
		desc := notes[nameEnd : nameEnd+uint64(descsz)]
		if string(name) == xenNoteName && typ == xenElfnotePhys32Entr {
			switch len(desc) {
			case 4:
				return uint64(binary.LittleEndian.Uint32(desc)), true
			case 8:
				return binary.LittleEndian.Uint64(desc), true
			}
		}
		notes = notes[descEnd:]
	}
	return 0, false
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }
