// Package kvm is a thin, typed layer over the /dev/kvm ioctl interface.
//
// It exists so that the rest of the hypervisor never touches ioctl numbers
// or the kvm_run layout directly. Every struct here mirrors one from
// <linux/kvm.h> byte for byte (sizes are asserted in the tests); nothing
// here makes policy decisions about how a VM is laid out.
package kvm

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl numbers from <linux/kvm.h> (x86_64).
const (
	kvmGetAPIVersion       = 0xae00
	kvmCreateVM            = 0xae01
	kvmCheckExtension      = 0xae03
	kvmGetVCPUMmapSize     = 0xae04
	kvmGetSupportedCPUID   = 0xc008ae05
	kvmCreateVCPU          = 0xae41
	kvmSetUserMemoryRegion = 0x4020ae46
	kvmSetTSSAddr          = 0xae47
	kvmSetIdentityMapAddr  = 0x4008ae48
	kvmCreateIRQChip       = 0xae60
	kvmIRQLine             = 0x4008ae61
	kvmIRQFD               = 0x4020ae76
	kvmCreatePIT2          = 0x4040ae77
	kvmIOEventFD           = 0x4040ae79
	kvmRun                 = 0xae80
	kvmGetRegs             = 0x8090ae81
	kvmSetRegs             = 0x4090ae82
	kvmGetSregs            = 0x8138ae83
	kvmSetSregs            = 0x4138ae84
	kvmSetMSRs             = 0x4008ae89
	kvmSetCPUID2           = 0x4008ae90
	kvmGetLAPIC            = 0x8400ae8e
	kvmSetLAPIC            = 0x4400ae8f
	kvmGetFPU              = 0x81a0ae8c
	kvmSetFPU              = 0x41a0ae8d
)

// ioctl issues one ioctl and retries only on EINTR before the call did
// anything (these ioctls are not KVM_RUN and are restartable).
func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return r, errno
		}
		return r, nil
	}
}

func ioctlPtr[T any](fd int, req uintptr, p *T) error {
	_, err := ioctl(fd, req, uintptr(unsafe.Pointer(p)))
	return err
}
