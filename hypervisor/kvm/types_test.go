package kvm

import (
	"testing"
	"unsafe"
)

// The sizes below are sizeof() of the C structs in <linux/kvm.h> on x86_64;
// the ioctl numbers encode them, so they must match exactly.
func TestStructSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), 416},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_msr_entry", unsafe.Sizeof(MSR{}), 16},
		{"kvm_lapic_state", unsafe.Sizeof(LAPICState{}), 1024},
		{"kvm_userspace_memory_region", unsafe.Sizeof(userspaceMemoryRegion{}), 32},
		{"kvm_irq_level", unsafe.Sizeof(irqLevel{}), 8},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), 32},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), 64},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), 64},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// The ioctl numbers embed the argument size; check the encoding agrees with
// the struct sizes above (_IOC: dir<<30 | size<<16 | 'type'<<8 | nr).
func TestIoctlNumbersEncodeSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		req  uintptr
		size uintptr
	}{
		{"KVM_SET_REGS", kvmSetRegs, unsafe.Sizeof(Regs{})},
		{"KVM_SET_SREGS", kvmSetSregs, unsafe.Sizeof(Sregs{})},
		{"KVM_SET_FPU", kvmSetFPU, unsafe.Sizeof(FPU{})},
		{"KVM_SET_LAPIC", kvmSetLAPIC, unsafe.Sizeof(LAPICState{})},
		{"KVM_SET_USER_MEMORY_REGION", kvmSetUserMemoryRegion, unsafe.Sizeof(userspaceMemoryRegion{})},
		{"KVM_IRQFD", kvmIRQFD, unsafe.Sizeof(irqfd{})},
		{"KVM_IOEVENTFD", kvmIOEventFD, unsafe.Sizeof(ioeventfd{})},
		{"KVM_CREATE_PIT2", kvmCreatePIT2, unsafe.Sizeof(pitConfig{})},
	} {
		if got := (c.req >> 16) & 0x3fff; got != c.size {
			t.Errorf("%s encodes size %d, struct is %d", c.name, got, c.size)
		}
	}
}
