// Package vmm assembles a microVM from the hypervisor's parts: KVM, guest
// memory, the kernel loader, boot structures, the legacy devices and the
// virtio-mmio devices, and runs its vCPUs until the guest stops.
package vmm

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/kvm"
	"github.com/novm/novm/virtiofs"
)

// Limits and defaults for a microVM.
const (
	DefaultCPUs      = 1
	DefaultMemoryMiB = 256
	// MinMemoryMiB is the least RAM novm will boot a guest with: below
	// this a Linux guest with an agent does not come up reliably.
	MinMemoryMiB = 64
	MaxCPUs      = 64
)

// BaseCmdline is the kernel command line novm always starts from: console
// on the serial port, reset through the keyboard controller (so reboot and
// panic end the VM), no ACPI (the MP table describes the CPUs), quiet
// because every console byte costs a VM exit.
const BaseCmdline = "console=ttyS0 reboot=k panic=-1 acpi=off i8042.noaux i8042.nokbd quiet"

// Config describes one microVM.
type Config struct {
	// Device is the KVM device (default /dev/kvm).
	Device string
	// Kernel is an ELF vmlinux or a bzImage.
	Kernel string
	// Initrd is an optional initramfs (uncompressed cpio recommended).
	Initrd string
	// Cmdline is appended to BaseCmdline and the host's compatibility
	// flags; the virtio-mmio device declarations are added by the VMM.
	Cmdline   string
	CPUs      int
	MemoryMiB int
	// SerialOut receives the kernel's serial console (nil: discarded; the
	// last bytes are kept for error messages either way).
	SerialOut io.Writer
	// AgentOut receives what the guest writes to /dev/hvc0.
	AgentOut io.Writer
	// CacheDir holds unpacked bzImage payloads.
	CacheDir string
	// Shares are host directories and files served to the guest over
	// virtio-fs from the start.
	Shares []Share
	// GuestCID is the guest's vsock context ID (default 3).
	GuestCID uint64
	// Linux64 enters the kernel through the Linux 64-bit boot protocol
	// even when it has a PVH entry (for kernels whose PVH path is broken,
	// and to test that protocol).
	Linux64 bool
	Log     *logrus.Entry
}

func (c *Config) validate() error {
	if c.Device == "" {
		c.Device = kvm.DefaultDevice
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if c.Kernel == "" {
		return fmt.Errorf("no kernel given")
	}
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return fmt.Errorf("--cpus %d: want 1..%d", c.CPUs, MaxCPUs)
	}
	if c.MemoryMiB < MinMemoryMiB {
		return fmt.Errorf("--memory %d MiB is too little: a guest needs at least %d MiB", c.MemoryMiB, MinMemoryMiB)
	}
	if c.MemoryMiB > 1<<20 {
		return fmt.Errorf("--memory %d MiB: more than 1 TiB is not supported", c.MemoryMiB)
	}
	return nil
}

// FSTag is the virtio-fs tag of novm's one file-system device: the guest
// mounts it (`mount -t virtiofs novm DIR`) and finds each share as an entry
// of DIR, to bind-mount where it belongs.
const FSTag = "novm"

// Share is a host directory or regular file served to the guest.
type Share struct {
	// Name is the share's entry in the FSTag mount's root.
	Name     string
	Path     string
	ReadOnly bool
}

// options is a share's cache policy. A read-only share cannot change
// under the guest from the guest's side and, by contract, does not
// change on the host (image layers): names and attributes are cached for
// an hour and file pages kept across opens. A writable share may be
// changed on the host too: names and attributes for one second; file
// pages are kept across opens (without that, every exec of a binary in a
// container's rootfs read it again through FUSE) and dropped when the
// guest sees a changed mtime or size after that second.
func (sh Share) options() virtiofs.Options {
	if sh.ReadOnly {
		return virtiofs.Options{ReadOnly: true, KeepCache: true, EntryTimeout: 3600, AttrTimeout: 3600}
	}
	return virtiofs.Options{KeepCache: true, EntryTimeout: 1, AttrTimeout: 1}
}

// HostCmdline returns kernel parameters this host's KVM needs, empty on an
// ordinary KVM. kvm_pvm (a nested KVM without VMX) runs guest kernel code
// through an instruction emulator that lacks XSAVE, CMPXCHG16B, POPCNT and
// a few more; these flags keep the guest kernel away from them. They are
// only added where that KVM is loaded, so guests elsewhere keep AVX.
func HostCmdline() string {
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return "noxsave mitigations=off rodata=off clearcpuid=cx16,popcnt,smap,rdtscp,rdpid,invpcid,fsgsbase,erms,fsrm"
	}
	return ""
}

func joinCmdline(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
