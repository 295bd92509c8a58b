package boot

import (
	"encoding/binary"

	"github.com/novm/novm/hypervisor/kvm"
)

// GDT entries written at GDTAddr: null, code, data, TSS. The code entry is
// 32-bit for PVH and 64-bit for the 64-bit boot protocol.
const (
	gdtCode32 = 0x00cf9b000000ffff
	gdtCode64 = 0x00af9b000000ffff
	gdtData   = 0x00cf93000000ffff
	gdtTSS    = 0x00008b0000000067

	selCode = 0x08
	selData = 0x10
	selTSS  = 0x18
)

// Control register and EFER bits.
const (
	cr0PE   = 1 << 0
	cr0ET   = 1 << 4
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLME = 1 << 8
	eferLMA = 1 << 10
)

func writeGDT(mem Memory, code uint64) error {
	b, err := mem.Slice(GDTAddr, 32)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint64(b[0:], 0)
	le.PutUint64(b[8:], code)
	le.PutUint64(b[16:], gdtData)
	le.PutUint64(b[24:], gdtTSS)
	return nil
}

// segment decodes a GDT descriptor into KVM's form.
func segment(desc uint64, sel uint16) kvm.Segment {
	limit := uint32(desc&0xffff) | uint32((desc>>48)&0xf)<<16
	g := uint8(desc>>55) & 1
	if g == 1 {
		limit = limit<<12 | 0xfff
	}
	return kvm.Segment{
		Base:     (desc >> 16 & 0xffffff) | (desc>>56&0xff)<<24,
		Limit:    limit,
		Selector: sel,
		Type:     uint8(desc>>40) & 0xf,
		S:        uint8(desc>>44) & 1,
		DPL:      uint8(desc>>45) & 3,
		Present:  uint8(desc>>47) & 1,
		AVL:      uint8(desc>>52) & 1,
		L:        uint8(desc>>53) & 1,
		DB:       uint8(desc>>54) & 1,
		G:        g,
	}
}

// PVHEntryState sets up the boot vCPU for the PVH entry: 32-bit protected
// mode, paging off, flat segments, a busy 32-bit TSS, EBX = start info.
// sregs comes from KVM_GET_SREGS so that fields not set here keep KVM's
// reset values.
func PVHEntryState(mem Memory, entry uint64, sregs kvm.Sregs) (kvm.Regs, kvm.Sregs, error) {
	if err := writeGDT(mem, gdtCode32); err != nil {
		return kvm.Regs{}, sregs, err
	}
	setFlatSegments(&sregs, gdtCode32)
	sregs.CR0 = cr0PE | cr0ET
	sregs.CR4 = 0
	sregs.EFER = 0
	regs := kvm.Regs{RIP: entry, RBX: StartInfoAddr, RFLAGS: 2}
	return regs, sregs, nil
}

// Linux64EntryState sets up the boot vCPU for the Linux 64-bit boot
// protocol: long mode with the first 1 GiB identity-mapped by 2 MiB pages,
// RSI = zero page.
func Linux64EntryState(mem Memory, entry uint64, sregs kvm.Sregs) (kvm.Regs, kvm.Sregs, error) {
	if err := writeGDT(mem, gdtCode64); err != nil {
		return kvm.Regs{}, sregs, err
	}
	if err := writeIdentityPageTables(mem); err != nil {
		return kvm.Regs{}, sregs, err
	}
	setFlatSegments(&sregs, gdtCode64)
	sregs.CR3 = PML4Addr
	sregs.CR4 = cr4PAE
	sregs.CR0 = cr0PE | cr0ET | cr0PG
	sregs.EFER = eferLME | eferLMA
	regs := kvm.Regs{RIP: entry, RSI: ZeroPageAddr, RSP: StackTop, RBP: StackTop, RFLAGS: 2}
	return regs, sregs, nil
}

func setFlatSegments(s *kvm.Sregs, code uint64) {
	s.CS = segment(code, selCode)
	data := segment(gdtData, selData)
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = segment(gdtTSS, selTSS)
	s.GDT = kvm.DTable{Base: GDTAddr, Limit: 32 - 1}
	s.IDT = kvm.DTable{Base: 0, Limit: 0}
}

func writeIdentityPageTables(mem Memory) error {
	b, err := mem.Slice(PML4Addr, 3*4096)
	if err != nil {
		return err
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], PDPTAddr|0x03)  // present, writable
	le.PutUint64(b[4096:], PDAddr|0x03) // first 1 GiB
	for i := uint64(0); i < 512; i++ {
		le.PutUint64(b[8192+8*i:], i<<21|0x83) // 2 MiB page
	}
	return nil
}
