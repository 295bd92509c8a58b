package kvm

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultDevice is where KVM lives on Linux.
const DefaultDevice = "/dev/kvm"

// System is an open /dev/kvm.
type System struct {
	fd int
}

// Open opens the KVM device and checks the API version. Errors say what to
// fix: a missing module, a permission problem, or a too-old kernel.
func Open(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil, fmt.Errorf("open %s: no such device: KVM is not available (load kvm_intel or kvm_amd, or enable nested virtualisation)", path)
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("open %s: permission denied: run as root or add the user to the group owning %s", path, path)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: KVM_GET_API_VERSION: %w (is this really a KVM device?)", path, err)
	}
	if v != 12 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: KVM API version %d, want 12", path, v)
	}
	return &System{fd: fd}, nil
}

// Close closes the device; VMs created from it stay valid.
func (s *System) Close() error { return unix.Close(s.fd) }

// CheckExtension returns KVM_CHECK_EXTENSION's answer for cap on the system
// fd (0 = absent).
func (s *System) CheckExtension(c Cap) int {
	r, err := ioctl(s.fd, kvmCheckExtension, uintptr(c))
	if err != nil {
		return 0
	}
	return int(r)
}

// VCPUMmapSize is the size of the per-vCPU kvm_run mapping.
func (s *System) VCPUMmapSize() (int, error) {
	r, err := ioctl(s.fd, kvmGetVCPUMmapSize, 0)
	return int(r), err
}

// SupportedCPUID returns the CPUID leaves KVM can present to a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	const max = 256
	buf := make([]byte, 8+max*int(unsafe.Sizeof(CPUIDEntry{})))
	*(*uint32)(unsafe.Pointer(&buf[0])) = max
	if _, err := ioctl(s.fd, kvmGetSupportedCPUID, uintptr(unsafe.Pointer(&buf[0]))); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	n := *(*uint32)(unsafe.Pointer(&buf[0]))
	entries := unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[8])), n)
	return append([]CPUIDEntry(nil), entries...), nil
}

// VM is one KVM virtual machine.
type VM struct {
	sys *System
	fd  int
}

// CreateVM creates an empty VM.
func (s *System) CreateVM() (*VM, error) {
	r, err := ioctl(s.fd, kvmCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	unix.CloseOnExec(int(r))
	return &VM{sys: s, fd: int(r)}, nil
}

// Close releases the VM fd. vCPU fds must be closed first for the VM's
// memory to be freed by the kernel.
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// CheckExtension asks the VM fd, which may answer more precisely than the
// system fd (e.g. for NR_VCPUS).
func (vm *VM) CheckExtension(c Cap) int {
	r, err := ioctl(vm.fd, kvmCheckExtension, uintptr(c))
	if err != nil {
		return 0
	}
	return int(r)
}

// SetUserMemoryRegion maps host memory at hostAddr into guest physical
// memory at guestAddr.
func (vm *VM) SetUserMemoryRegion(slot uint32, guestAddr, size uint64, hostAddr uintptr) error {
	r := userspaceMemoryRegion{Slot: slot, GuestPhysAddr: guestAddr, MemorySize: size, UserspaceAddr: uint64(hostAddr)}
	if err := ioctlPtr(vm.fd, kvmSetUserMemoryRegion, &r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x size %#x: %w", slot, guestAddr, size, err)
	}
	return nil
}

// SetTSSAddr places the three pages Intel VMX needs for real-mode
// emulation; it must lie outside guest RAM. Harmless on other KVMs.
func (vm *VM) SetTSSAddr(addr uint64) error {
	if _, err := ioctl(vm.fd, kvmSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR: %w", err)
	}
	return nil
}

// SetIdentityMapAddr places the one page Intel VMX needs for an identity
// map in unpaged protected mode.
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	if err := ioctlPtr(vm.fd, kvmSetIdentityMapAddr, &addr); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR: %w", err)
	}
	return nil
}

// CreateIRQChip creates the in-kernel PIC, IOAPIC and local APICs.
func (vm *VM) CreateIRQChip() error {
	if _, err := ioctl(vm.fd, kvmCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// CreatePIT2 creates the in-kernel i8254 timer.
func (vm *VM) CreatePIT2() error {
	var c pitConfig
	if err := ioctlPtr(vm.fd, kvmCreatePIT2, &c); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// IRQLine sets the level of an interrupt line of the in-kernel irqchip.
func (vm *VM) IRQLine(irq uint32, level bool) error {
	l := irqLevel{IRQ: irq}
	if level {
		l.Level = 1
	}
	return ioctlPtr(vm.fd, kvmIRQLine, &l)
}

// IRQFD makes a write to eventfd fd pulse interrupt line gsi in the kernel,
// without a trip through this process.
func (vm *VM) IRQFD(fd int, gsi uint32) error {
	r := irqfd{FD: uint32(fd), GSI: gsi}
	if err := ioctlPtr(vm.fd, kvmIRQFD, &r); err != nil {
		return fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return nil
}

// DeassignIRQFD undoes IRQFD.
func (vm *VM) DeassignIRQFD(fd int, gsi uint32) error {
	r := irqfd{FD: uint32(fd), GSI: gsi, Flags: irqfdFlagDeassign}
	return ioctlPtr(vm.fd, kvmIRQFD, &r)
}

// IOEventFD makes a guest write of value (length size bytes) to MMIO
// address addr signal eventfd fd instead of exiting to user space.
func (vm *VM) IOEventFD(fd int, addr uint64, size uint32, value uint64) error {
	r := ioeventfd{Datamatch: value, Addr: addr, Len: size, FD: int32(fd), Flags: ioeventfdFlagDatamatch}
	if err := ioctlPtr(vm.fd, kvmIOEventFD, &r); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD at %#x: %w", addr, err)
	}
	return nil
}

// DeassignIOEventFD undoes IOEventFD.
func (vm *VM) DeassignIOEventFD(fd int, addr uint64, size uint32, value uint64) error {
	r := ioeventfd{Datamatch: value, Addr: addr, Len: size, FD: int32(fd), Flags: ioeventfdFlagDatamatch | ioeventfdFlagDeassign}
	return ioctlPtr(vm.fd, kvmIOEventFD, &r)
}
