package vmm

import (
	"github.com/novm/novm/hypervisor/kvm"
)

// MSRs set on every vCPU before boot (the values a PC firmware leaves).
const (
	msrIA32TSC          = 0x10
	msrIA32SysenterCS   = 0x174
	msrIA32SysenterESP  = 0x175
	msrIA32SysenterEIP  = 0x176
	msrIA32MiscEnable   = 0x1a0
	msrMTRRDefType      = 0x2ff
	msrSTAR             = 0xc0000081
	msrLSTAR            = 0xc0000082
	msrCSTAR            = 0xc0000083
	msrSyscallMask      = 0xc0000084
	msrKernelGSBase     = 0xc0000102
	miscEnableFastStr   = 1 << 0
	mtrrEnableWriteback = 1<<11 | 6
)

func bootMSRs() []kvm.MSR {
	return []kvm.MSR{
		{Index: msrIA32SysenterCS}, {Index: msrIA32SysenterESP}, {Index: msrIA32SysenterEIP},
		{Index: msrSTAR}, {Index: msrCSTAR}, {Index: msrKernelGSBase}, {Index: msrSyscallMask}, {Index: msrLSTAR},
		{Index: msrIA32TSC},
		{Index: msrIA32MiscEnable, Data: miscEnableFastStr},
		{Index: msrMTRRDefType, Data: mtrrEnableWriteback},
	}
}

// CPUID bits adjusted per vCPU.
const (
	cpuid1ECXTSCDeadline = 1 << 24
	cpuid1ECXHypervisor  = 1 << 31
	cpuid1EDXHTT         = 1 << 28
)

// vcpuCPUID derives vCPU id's CPUID table from what KVM supports: APIC IDs
// and topology that match the MP table (one core per vCPU, one package),
// the hypervisor bit, and no architectural PMU (novm exposes none).
func vcpuCPUID(supported []kvm.CPUIDEntry, id, cpus int, tscDeadline bool) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, 0, len(supported))
	coreBits := uint32(0)
	for 1<<coreBits < cpus {
		coreBits++
	}
	for _, e := range supported {
		switch e.Function {
		case 1:
			e.EBX = e.EBX&0x0000ffff | uint32(cpus)<<16 | uint32(id)<<24
			e.EBX = e.EBX&^0xff00 | 8<<8 // CLFLUSH line size 64 bytes
			e.ECX |= cpuid1ECXHypervisor
			if tscDeadline {
				e.ECX |= cpuid1ECXTSCDeadline
			}
			if cpus > 1 {
				e.EDX |= cpuid1EDXHTT
			}
		case 4:
			// Cores per package sharing the package (EAX[31:26]); one
			// thread per core shares each cache level below L3.
			e.EAX = e.EAX&0x3ff | uint32(cpus-1)<<26
			if (e.EAX>>5)&7 == 3 {
				e.EAX |= uint32(cpus-1) << 14
			}
		case 0xa:
			e.EAX, e.EBX, e.ECX, e.EDX = 0, 0, 0, 0
		case 0xb, 0x1f:
			e.EDX = uint32(id)
			switch e.Index {
			case 0: // SMT level: one thread per core
				e.EAX, e.EBX, e.ECX = 0, 1, 1<<8
			case 1: // core level
				e.EAX, e.EBX, e.ECX = coreBits, uint32(cpus), 2<<8|1
			default:
				e.EAX, e.EBX, e.ECX = 0, 0, e.Index
			}
		}
		out = append(out, e)
	}
	return out
}

// Local APIC LVT registers (offsets in the LAPIC page) and delivery modes.
const (
	apicLVTLINT0   = 0x350
	apicLVTLINT1   = 0x360
	apicModeExtINT = 7 << 8
	apicModeNMI    = 4 << 8
)

// setupLAPIC routes LINT0 as ExtINT (the PIC) and LINT1 as NMI, matching
// the MP table's local interrupt entries.
func setupLAPIC(c *kvm.VCPU) error {
	l, err := c.GetLAPIC()
	if err != nil {
		return err
	}
	setLVT := func(off int, mode uint32) {
		v := uint32(l.Regs[off]) | uint32(l.Regs[off+1])<<8 | uint32(l.Regs[off+2])<<16 | uint32(l.Regs[off+3])<<24
		v = v&^0x700 | mode
		l.Regs[off], l.Regs[off+1], l.Regs[off+2], l.Regs[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	setLVT(apicLVTLINT0, apicModeExtINT)
	setLVT(apicLVTLINT1, apicModeNMI)
	return c.SetLAPIC(l)
}

// bootFPU is the x87/SSE state after FNINIT with all SSE exceptions masked.
func bootFPU() kvm.FPU {
	return kvm.FPU{FCW: 0x37f, MXCSR: 0x1f80}
}
