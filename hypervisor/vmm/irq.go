package vmm

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/novm/novm/hypervisor/kvm"
)

// irqLine is an edge-triggered interrupt input of the in-kernel IOAPIC.
// With irqfd a trigger is one eventfd write that KVM turns into a pulse;
// without it, two KVM_IRQ_LINE ioctls raise and lower the line.
type irqLine struct {
	vm  *kvm.VM
	gsi uint32
	efd int // -1 when irqfd is unavailable
}

func newIRQLine(vm *kvm.VM, gsi uint32, useIRQFD bool) *irqLine {
	l := &irqLine{vm: vm, gsi: gsi, efd: -1}
	if !useIRQFD {
		return l
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return l
	}
	if err := vm.IRQFD(fd, gsi); err != nil {
		unix.Close(fd)
		return l
	}
	l.efd = fd
	return l
}

var one = binary.LittleEndian.AppendUint64(nil, 1)

// Trigger implements the devices' Interrupt interfaces.
func (l *irqLine) Trigger() error {
	if l.efd >= 0 {
		_, err := unix.Write(l.efd, one)
		if err == unix.EAGAIN {
			return nil // counter saturated: an interrupt is pending anyway
		}
		return err
	}
	if err := l.vm.IRQLine(l.gsi, true); err != nil {
		return err
	}
	return l.vm.IRQLine(l.gsi, false)
}

func (l *irqLine) close() {
	if l.efd >= 0 {
		l.vm.DeassignIRQFD(l.efd, l.gsi)
		unix.Close(l.efd)
		l.efd = -1
	}
}

// ioeventfds adapts the VM to mmio.IOEventFDs.
type ioeventfds struct{ vm *kvm.VM }

func (e ioeventfds) RegisterIOEventFD(fd int, addr uint64, size uint32, value uint64) error {
	return e.vm.IOEventFD(fd, addr, size, value)
}

func (e ioeventfds) UnregisterIOEventFD(fd int, addr uint64, size uint32, value uint64) error {
	return e.vm.DeassignIOEventFD(fd, addr, size, value)
}
