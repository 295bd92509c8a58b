package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/novm/novm/hypervisor/kvm"
	"github.com/novm/novm/hypervisor/memory"
)

// translate maps a guest virtual address to a physical one with the vCPU's
// current paging mode (none, or 4-level long mode). It only serves error
// reports, so it supports what a Linux guest uses and gives up otherwise.
func translate(mem *memory.Memory, s kvm.Sregs, va uint64) (uint64, error) {
	if s.CR0&(1<<31) == 0 {
		return va, nil // paging off
	}
	if s.EFER&(1<<10) == 0 {
		return 0, fmt.Errorf("32-bit paging not supported by the walker")
	}
	table := s.CR3 &^ 0xfff
	for level := 3; level >= 0; level-- {
		idx := (va >> (12 + 9*uint(level))) & 0x1ff
		b, err := mem.Slice(table+idx*8, 8)
		if err != nil {
			return 0, err
		}
		pte := binary.LittleEndian.Uint64(b)
		if pte&1 == 0 {
			return 0, fmt.Errorf("not mapped")
		}
		addr := pte & 0x000f_ffff_ffff_f000
		if level == 0 || (level <= 2 && pte&0x80 != 0) {
			size := uint64(1) << (12 + 9*uint(level))
			return addr&^(size-1) | va&(size-1), nil
		}
		table = addr
	}
	return 0, fmt.Errorf("walk failed")
}

// instructionBytes reads up to 15 bytes at the vCPU's RIP for error
// reports ("" when they cannot be read).
func instructionBytes(mem *memory.Memory, c *kvm.VCPU) (rip uint64, insn string) {
	regs, err := c.GetRegs()
	if err != nil {
		return 0, ""
	}
	sregs, err := c.GetSregs()
	if err != nil {
		return regs.RIP, ""
	}
	va := sregs.CS.Base + regs.RIP
	pa, err := translate(mem, sregs, va)
	if err != nil {
		return regs.RIP, fmt.Sprintf("(unreadable: %v)", err)
	}
	n := min(15, 4096-pa%4096) // stay within the page
	b, err := mem.Slice(pa, n)
	if err != nil {
		return regs.RIP, fmt.Sprintf("(unreadable: %v)", err)
	}
	return regs.RIP, fmt.Sprintf("% x", b)
}
