// Package boot writes the structures a Linux kernel reads at boot (E820 map,
// PVH start info, the zero page, the MP table, a GDT and page tables) and
// computes the register state it is entered with. It knows byte layouts and
// nothing about KVM file descriptors or devices.
package boot

// Fixed guest-physical addresses of the boot structures, all below 1 MiB
// and clear of the kernel (which loads at 16 MiB).
const (
	GDTAddr         = 0x500
	StartInfoAddr   = 0x6000 // hvm_start_info, its memmap and modlist
	ZeroPageAddr    = 0x7000 // struct boot_params, 64-bit boot protocol
	StackTop        = 0x8ff0
	PML4Addr        = 0x9000
	PDPTAddr        = 0xa000
	PDAddr          = 0xb000
	CmdlineAddr     = 0x20000
	CmdlineMax      = 0x10000
	MPTableAddr     = 0x9fc00 // start of the EBDA, scanned by Linux
	EBDAEnd         = 0xa0000
	HighMemStart    = 0x100000
	IOAPICAddr      = 0xfec00000
	LAPICAddr       = 0xfee00000
	KVMTSSAddr      = 0xfffbd000 // three pages for VMX, in the MMIO hole
	KVMIdentityAddr = 0xfffbc000 // one page for VMX
)

// E820 entry types.
const (
	E820RAM      = 1
	E820Reserved = 2
)

// E820Entry is one memory map entry.
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// RAMRange is guest RAM as the memory package lays it out.
type RAMRange struct{ Start, End uint64 }

// E820 builds the memory map for the given RAM ranges: low RAM below the
// EBDA, the EBDA (holding the MP table) reserved, the legacy hole left out,
// and the rest RAM.
func E820(ram []RAMRange) []E820Entry {
	var m []E820Entry
	for _, r := range ram {
		if r.Start == 0 {
			m = append(m,
				E820Entry{0, MPTableAddr, E820RAM},
				E820Entry{MPTableAddr, EBDAEnd - MPTableAddr, E820Reserved})
			if r.End > HighMemStart {
				m = append(m, E820Entry{HighMemStart, r.End - HighMemStart, E820RAM})
			}
			continue
		}
		m = append(m, E820Entry{r.Start, r.End - r.Start, E820RAM})
	}
	return m
}
