package kvm

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Exit reasons from kvm_run.exit_reason that novm handles by name.
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitIRQWindowOpen = 7
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitNMI           = 16
	ExitInternalError = 17
	ExitSystemEvent   = 24
)

var exitNames = map[uint32]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO", ExitHypercall: "HYPERCALL",
	ExitDebug: "DEBUG", ExitHLT: "HLT", ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR", ExitNMI: "NMI",
	ExitInternalError: "INTERNAL_ERROR", ExitSystemEvent: "SYSTEM_EVENT",
}

// ExitName names a KVM exit reason for error messages.
func ExitName(reason uint32) string {
	if n, ok := exitNames[reason]; ok {
		return "KVM_EXIT_" + n
	}
	return fmt.Sprintf("KVM exit %d", reason)
}

// System event types (kvm_run.system_event.type).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// Offsets into struct kvm_run (x86_64).
const (
	runImmediateExit = 1
	runExitReason    = 8
	runUnion         = 32
)

// VCPU is one virtual CPU: its fd and its shared kvm_run page.
type VCPU struct {
	ID  int
	fd  int
	run []byte // mmap of struct kvm_run
}

// CreateVCPU creates vCPU id and maps its kvm_run area.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	r, err := ioctl(vm.fd, kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	fd := int(r)
	unix.CloseOnExec(fd)
	size, err := vm.sys.VCPUMmapSize()
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	run, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap kvm_run of vCPU %d: %w", id, err)
	}
	return &VCPU{ID: id, fd: fd, run: run}, nil
}

// Close unmaps kvm_run and closes the vCPU fd.
func (c *VCPU) Close() error {
	if c.run != nil {
		unix.Munmap(c.run)
		c.run = nil
	}
	return unix.Close(c.fd)
}

// Run enters the guest once. It returns unix.EINTR when a signal or
// immediate_exit interrupted it; the caller decides whether to re-enter.
func (c *VCPU) Run() error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), kvmRun, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// SetImmediateExit sets kvm_run.immediate_exit: while set, KVM_RUN returns
// EINTR at once instead of entering the guest. Together with a signal to
// the vCPU thread this stops a vCPU without a race.
func (c *VCPU) SetImmediateExit(on bool) {
	// A single byte store is atomic on x86, and kvm_run is not Go heap
	// memory, so a plain store from the stopping goroutine is enough.
	var v byte
	if on {
		v = 1
	}
	c.run[runImmediateExit] = v
}

// ExitReason is kvm_run.exit_reason after Run returned.
func (c *VCPU) ExitReason() uint32 {
	return binary.LittleEndian.Uint32(c.run[runExitReason:])
}

// IOExit describes a KVM_EXIT_IO: Data is the slice of kvm_run holding the
// bytes (count*size of them) to read from or write into.
type IOExit struct {
	Write bool
	Size  int
	Port  uint16
	Count int
	Data  []byte
}

// IO decodes kvm_run.io.
func (c *VCPU) IO() IOExit {
	u := c.run[runUnion:]
	size := int(u[1])
	count := int(binary.LittleEndian.Uint32(u[4:]))
	off := binary.LittleEndian.Uint64(u[8:])
	e := IOExit{Write: u[0] == 1, Size: size, Port: binary.LittleEndian.Uint16(u[2:]), Count: count}
	if end := off + uint64(size*count); off < uint64(len(c.run)) && end <= uint64(len(c.run)) {
		e.Data = c.run[off:end]
	}
	return e
}

// MMIOExit describes a KVM_EXIT_MMIO; Data aliases kvm_run.mmio.data.
type MMIOExit struct {
	Addr  uint64
	Write bool
	Data  []byte
}

// MMIO decodes kvm_run.mmio.
func (c *VCPU) MMIO() MMIOExit {
	u := c.run[runUnion:]
	n := binary.LittleEndian.Uint32(u[16:])
	if n > 8 {
		n = 8
	}
	return MMIOExit{Addr: binary.LittleEndian.Uint64(u[0:]), Data: u[8 : 8+n], Write: u[20] != 0}
}

// InternalError decodes kvm_run.internal: suberror and its data words.
func (c *VCPU) InternalError() (suberror uint32, data []uint64) {
	u := c.run[runUnion:]
	suberror = binary.LittleEndian.Uint32(u[0:])
	n := binary.LittleEndian.Uint32(u[4:])
	if n > 16 {
		n = 16
	}
	for i := uint32(0); i < n; i++ {
		data = append(data, binary.LittleEndian.Uint64(u[8+8*i:]))
	}
	return suberror, data
}

// SystemEvent decodes kvm_run.system_event.type.
func (c *VCPU) SystemEvent() uint32 {
	return binary.LittleEndian.Uint32(c.run[runUnion:])
}

// FailEntryReason decodes kvm_run.fail_entry.hardware_entry_failure_reason.
func (c *VCPU) FailEntryReason() uint64 {
	return binary.LittleEndian.Uint64(c.run[runUnion:])
}

// GetRegs reads the general-purpose registers.
func (c *VCPU) GetRegs() (Regs, error) {
	var r Regs
	err := ioctlPtr(c.fd, kvmGetRegs, &r)
	return r, err
}

// SetRegs writes the general-purpose registers.
func (c *VCPU) SetRegs(r Regs) error { return wrap("KVM_SET_REGS", ioctlPtr(c.fd, kvmSetRegs, &r)) }

// GetSregs reads the segment and control registers.
func (c *VCPU) GetSregs() (Sregs, error) {
	var s Sregs
	err := ioctlPtr(c.fd, kvmGetSregs, &s)
	return s, err
}

// SetSregs writes the segment and control registers.
func (c *VCPU) SetSregs(s Sregs) error { return wrap("KVM_SET_SREGS", ioctlPtr(c.fd, kvmSetSregs, &s)) }

// SetFPU writes the x87/SSE state.
func (c *VCPU) SetFPU(f FPU) error { return wrap("KVM_SET_FPU", ioctlPtr(c.fd, kvmSetFPU, &f)) }

// GetLAPIC reads the local APIC register page.
func (c *VCPU) GetLAPIC() (LAPICState, error) {
	var l LAPICState
	err := ioctlPtr(c.fd, kvmGetLAPIC, &l)
	return l, wrap("KVM_GET_LAPIC", err)
}

// SetLAPIC writes the local APIC register page.
func (c *VCPU) SetLAPIC(l LAPICState) error {
	return wrap("KVM_SET_LAPIC", ioctlPtr(c.fd, kvmSetLAPIC, &l))
}

// SetMSRs writes model-specific registers; all of them must be accepted.
func (c *VCPU) SetMSRs(msrs []MSR) error {
	buf := make([]byte, 8+len(msrs)*int(unsafe.Sizeof(MSR{})))
	binary.LittleEndian.PutUint32(buf, uint32(len(msrs)))
	copy(unsafe.Slice((*MSR)(unsafe.Pointer(&buf[8])), len(msrs)), msrs)
	n, err := ioctl(c.fd, kvmSetMSRs, uintptr(unsafe.Pointer(&buf[0])))
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS: %w", err)
	}
	if int(n) != len(msrs) {
		return fmt.Errorf("KVM_SET_MSRS: only %d of %d set (MSR %#x refused)", n, len(msrs), msrs[n].Index)
	}
	return nil
}

// SetCPUID sets what CPUID reports inside the guest.
func (c *VCPU) SetCPUID(entries []CPUIDEntry) error {
	buf := make([]byte, 8+len(entries)*int(unsafe.Sizeof(CPUIDEntry{})))
	binary.LittleEndian.PutUint32(buf, uint32(len(entries)))
	copy(unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[8])), len(entries)), entries)
	_, err := ioctl(c.fd, kvmSetCPUID2, uintptr(unsafe.Pointer(&buf[0])))
	return wrap("KVM_SET_CPUID2", err)
}

func wrap(op string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
