package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/novm/novm/hypervisor/kvm"
	"github.com/novm/novm/hypervisor/loader"
	"github.com/novm/novm/hypervisor/vmm"
)

// runCheck reports whether this host can run novm, with the fix for every
// problem found. It exits non-zero when something required is missing.
func runCheck(args []string) error {
	fs := flag.NewFlagSet("novm check", flag.ContinueOnError)
	device := fs.String("kvm", kvm.DefaultDevice, "KVM device")
	kernel := fs.String("kernel", defaultAsset("vmlinux"), "guest kernel to check")
	initrd := fs.String("initrd", defaultAsset("initramfs.cpio"), "guest initramfs to check")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	problems := 0
	ok := func(format string, a ...any) { fmt.Printf("ok    "+format+"\n", a...) }
	bad := func(format string, a ...any) { problems++; fmt.Printf("FAIL  "+format+"\n", a...) }

	sys, err := kvm.Open(*device)
	if err != nil {
		bad("%v", err)
	} else {
		defer sys.Close()
		ok("%s opened, KVM API 12", *device)
		vm, err := sys.CreateVM()
		if err != nil {
			bad("cannot create a VM: %v", err)
		} else {
			defer vm.Close()
		}
		for _, c := range kvm.KnownCaps {
			n := sys.CheckExtension(c.Cap)
			if vm != nil {
				n = max(n, vm.CheckExtension(c.Cap))
			}
			switch {
			case n == 0 && c.Required:
				bad("KVM_CAP_%s missing: novm needs it (a newer host kernel has it)", c.Name)
			case n == 0:
				fmt.Printf("-     KVM_CAP_%s not available (novm uses a slower fallback)\n", c.Name)
			case n == 1:
				ok("KVM_CAP_%s", c.Name)
			default:
				ok("KVM_CAP_%s = %d", c.Name, n)
			}
		}
	}
	if extra := vmm.HostCmdline(); extra != "" {
		fmt.Printf("note  this host's KVM is kvm_pvm (nested, emulating guest kernel code): guests get %q\n", extra)
	}
	checkKernel(*kernel, ok, bad)
	if st, err := os.Stat(*initrd); err != nil {
		bad("initramfs %s: %v (build it with `make`, or pass --initrd)", *initrd, err)
	} else {
		ok("initramfs %s (%d KiB)", *initrd, st.Size()>>10)
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s) found", problems)
	}
	fmt.Println("novm can run microVMs on this host")
	return nil
}

func checkKernel(path string, ok, bad func(string, ...any)) {
	f, err := os.Open(path)
	if err != nil {
		bad("kernel %s: %v (build the default one with `make`, or pass --kernel)", path, err)
		return
	}
	defer f.Close()
	head := make([]byte, 0x300)
	n, _ := f.Read(head)
	head = head[:n]
	switch {
	case n >= 4 && string(head[:4]) == "\x7fELF":
		ok("kernel %s (ELF vmlinux)", path)
	case loader.IsBzImage(head):
		ok("kernel %s (bzImage; unpacked on the host at first boot)", path)
	default:
		bad("kernel %s: %v", path, loader.ErrNotKernel)
	}
}
