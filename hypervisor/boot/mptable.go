package boot

import (
	"encoding/binary"
	"fmt"
)

// The Intel MultiProcessor Specification 1.4 table: how a kernel booted
// with acpi=off (or without ACPI) finds its CPUs and the IOAPIC.
const (
	mpfSize       = 16
	mpcHeaderSize = 44
	mpcCPUSize    = 20
	mpcEntrySize  = 8 // bus, IOAPIC, IO interrupt, local interrupt

	mpEntryCPU      = 0
	mpEntryBus      = 1
	mpEntryIOAPIC   = 2
	mpEntryIOIntr   = 3
	mpEntryLocalInt = 4

	mpIntTypeINT    = 0
	mpIntTypeNMI    = 1
	mpIntTypeExtINT = 3

	apicVersion   = 0x14
	ioapicVersion = 0x11
	// IOAPICPins is the number of inputs of KVM's in-kernel IOAPIC.
	IOAPICPins = 24
)

// MPTableSize is the size of the MP table for n CPUs.
func MPTableSize(cpus int) int {
	return mpfSize + mpcHeaderSize + cpus*mpcCPUSize + (1+1+IOAPICPins+2)*mpcEntrySize
}

// WriteMPTable writes the MP floating pointer and configuration table at
// MPTableAddr: one processor entry per vCPU (APIC ID = vCPU index), an ISA
// bus, the IOAPIC (ID = cpus) with its 24 pins routed 1:1 to ISA IRQs, and
// LINT0 as ExtINT / LINT1 as NMI on every local APIC.
func WriteMPTable(mem Memory, cpus int) error {
	if cpus < 1 || cpus > 254 {
		return fmt.Errorf("MP table: %d CPUs, want 1..254", cpus)
	}
	size := MPTableSize(cpus)
	if MPTableAddr+size > EBDAEnd {
		return fmt.Errorf("MP table for %d CPUs (%d bytes) does not fit below %#x", cpus, size, EBDAEnd)
	}
	b, err := mem.Slice(MPTableAddr, uint64(size))
	if err != nil {
		return fmt.Errorf("MP table: %w", err)
	}
	clear(b)
	le := binary.LittleEndian

	// Floating pointer structure.
	mpf := b[:mpfSize]
	copy(mpf, "_MP_")
	le.PutUint32(mpf[4:], MPTableAddr+mpfSize)
	mpf[8] = 1 // length in 16-byte units
	mpf[9] = 4 // spec revision 1.4
	mpf[10] = checksum(mpf)

	// Configuration table: header, then entries.
	mpc := b[mpfSize:]
	e := mpc[mpcHeaderSize:]
	n := 0
	for i := 0; i < cpus; i++ {
		e[0] = mpEntryCPU
		e[1] = byte(i)
		e[2] = apicVersion
		e[3] = 1 // enabled
		if i == 0 {
			e[3] |= 2 // boot processor
		}
		le.PutUint32(e[4:], 0x600) // signature: family 6
		le.PutUint32(e[8:], 0x201) // features: FPU, APIC
		e = e[mpcCPUSize:]
		n++
	}
	ioapicID := byte(cpus)
	entries := [][]byte{
		{mpEntryBus, 0, 'I', 'S', 'A', ' ', ' ', ' '},
		{mpEntryIOAPIC, ioapicID, ioapicVersion, 1, 0, 0, 0, 0},
	}
	le.PutUint32(entries[1][4:], IOAPICAddr)
	for irq := 0; irq < IOAPICPins; irq++ {
		entries = append(entries, []byte{mpEntryIOIntr, mpIntTypeINT, 0, 0, 0, byte(irq), ioapicID, byte(irq)})
	}
	entries = append(entries,
		[]byte{mpEntryLocalInt, mpIntTypeExtINT, 0, 0, 0, 0, 0xff, 0},
		[]byte{mpEntryLocalInt, mpIntTypeNMI, 0, 0, 0, 0, 0xff, 1})
	for _, en := range entries {
		copy(e, en)
		e = e[mpcEntrySize:]
		n++
	}
	hdr := mpc[:mpcHeaderSize]
	copy(hdr, "PCMP")
	le.PutUint16(hdr[4:], uint16(size-mpfSize))
	hdr[6] = 4
	copy(hdr[8:16], "NOVM    ")
	copy(hdr[16:28], "MICROVM     ")
	le.PutUint16(hdr[34:], uint16(n))
	le.PutUint32(hdr[36:], LAPICAddr)
	hdr[7] = checksum(mpc[:size-mpfSize])
	return nil
}

// checksum returns the byte that makes b sum to zero (b's own checksum
// byte must be zero when called).
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}
