// Package testkernel makes tiny x86 "kernels" for tests: an ELF64 with one
// loadable segment of hand-written 32-bit code and a PVH entry note, so a
// test can boot a guest that prints, spins or crashes in milliseconds.
package testkernel

import (
	"bytes"
	"encoding/binary"
)

// LoadAddr is where the code is loaded and entered.
const LoadAddr = 0x100000

// Code snippets (32-bit protected mode, as the PVH entry runs).
var (
	// SpinForever loops at the entry point.
	SpinForever = []byte{0xeb, 0xfe}
	// UD2 raises #UD with no IDT: a triple fault.
	UD2 = []byte{0x0f, 0x0b}
)

// PrintSerial returns code writing s to the COM1 data port.
func PrintSerial(s string) []byte {
	code := []byte{0x66, 0xba, 0xf8, 0x03} // mov dx, 0x3f8
	for _, c := range []byte(s) {
		code = append(code, 0xb0, c, 0xee) // mov al, c; out dx, al
	}
	return code
}

// ELF builds the kernel image. With pvh false the PVH note is left out
// and the ELF entry point is the only way in.
func ELF(code []byte, pvh bool) []byte {
	const ehSize, phSize = 64, 56
	note := pvhNote(LoadAddr)
	nph := 1
	if pvh {
		nph = 2
	}
	codeOff := uint64(ehSize + phSize*nph)
	noteOff := codeOff + uint64(len(code))
	var b bytes.Buffer
	le := binary.LittleEndian
	// ELF header.
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(2))        // ET_EXEC
	binary.Write(&b, le, uint16(62))       // EM_X86_64
	binary.Write(&b, le, uint32(1))        // version
	binary.Write(&b, le, uint64(LoadAddr)) // entry
	binary.Write(&b, le, uint64(ehSize))   // phoff
	binary.Write(&b, le, uint64(0))        // shoff
	binary.Write(&b, le, uint32(0))        // flags
	binary.Write(&b, le, uint16(ehSize))
	binary.Write(&b, le, uint16(phSize))
	binary.Write(&b, le, uint16(nph))
	binary.Write(&b, le, uint16(64)) // shentsize
	binary.Write(&b, le, uint16(0))  // shnum
	binary.Write(&b, le, uint16(0))  // shstrndx
	// PT_LOAD.
	ph := func(typ, flags uint32, off, addr, size uint64) {
		binary.Write(&b, le, typ)
		binary.Write(&b, le, flags)
		binary.Write(&b, le, off)
		binary.Write(&b, le, addr) // vaddr
		binary.Write(&b, le, addr) // paddr
		binary.Write(&b, le, size) // filesz
		binary.Write(&b, le, size) // memsz
		binary.Write(&b, le, uint64(4))
	}
	ph(1, 5, codeOff, LoadAddr, uint64(len(code)))
	if pvh {
		ph(4, 4, noteOff, 0, uint64(len(note)))
	}
	b.Write(code)
	if pvh {
		b.Write(note)
	}
	return b.Bytes()
}

func pvhNote(entry uint32) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&b, le, uint32(4))  // namesz "Xen\0"
	binary.Write(&b, le, uint32(4))  // descsz
	binary.Write(&b, le, uint32(18)) // XEN_ELFNOTE_PHYS32_ENTRY
	b.WriteString("Xen\x00")
	binary.Write(&b, le, entry)
	return b.Bytes()
}
