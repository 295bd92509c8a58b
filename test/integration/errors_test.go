package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/internal/testkernel"
	"github.com/novm/novm/runtime/sandbox"
)

// Bad input is refused with an error that says what to fix; exit code 1.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	notKernel := filepath.Join(dir, "notes.txt")
	os.WriteFile(notKernel, []byte("this is not a kernel\n"), 0o644)
	unreadable := filepath.Join(dir, "unreadable")
	os.Mkdir(unreadable, 0o755)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing kernel", []string{"boot", "--kernel", filepath.Join(dir, "nope")}, "does not exist"},
		{"not a kernel", []string{"boot", "--kernel", notKernel}, "not an x86-64 Linux kernel"},
		{"kernel is a directory", []string{"boot", "--kernel", unreadable}, "not a regular file"},
		{"missing initrd", []string{"boot", "--initrd", filepath.Join(dir, "nope.cpio")}, "initrd"},
		{"too little memory", []string{"boot", "--memory", "16"}, "too little"},
		{"too many cpus", []string{"boot", "--cpus", "1000"}, "--cpus 1000"},
		{"zero cpus", []string{"boot", "--cpus", "0"}, "--cpus 0"},
		{"no kvm device", []string{"boot", "--kvm", filepath.Join(dir, "kvm")}, "KVM is not available"},
		{"not a kvm device", []string{"boot", "--kvm", "/dev/null"}, "is this really a KVM device"},
		{"check without kvm", []string{"check", "--kvm", filepath.Join(dir, "kvm")}, "KVM is not available"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := novm(t, c.args...)
			if code != 1 || !strings.Contains(stdout+stderr, c.want) {
				t.Fatalf("exit %d, output %q; want exit 1 and %q", code, stdout+stderr, c.want)
			}
		})
	}
	_, stderr, code := novm(t, "boot", "--no-such-flag")
	if code != 2 || !strings.Contains(stderr, "flag provided but not defined") {
		t.Fatalf("unknown flag: exit %d, %q", code, stderr)
	}
}

// /dev/kvm without permission: the error says how to get it.
func TestKVMPermissionDenied(t *testing.T) {
	stdout, stderr, code := runAs(t, func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}, "check")
	if code != 1 || !strings.Contains(stdout, "permission denied: run as root or add the user to the group") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func writeKernel(t *testing.T, code []byte) string {
	p := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(p, testkernel.ELF(code, true), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A guest that never becomes ready is torn down after the bounded wait,
// and nothing is left behind.
func TestGuestNeverReady(t *testing.T) {
	before := openFDs(t)
	start := time.Now()
	_, err := sandbox.Boot(context.Background(), sandbox.Config{
		ReadyTimeout: 2 * time.Second,
		VM:           vmm.Config{Kernel: writeKernel(t, testkernel.SpinForever), MemoryMiB: 64},
	})
	if err == nil || !strings.Contains(err.Error(), "not ready after 2s") || !strings.Contains(err.Error(), "printed nothing") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("teardown took %v", d)
	}
	if after := openFDs(t); after > before {
		t.Errorf("%d file descriptors leaked", after-before)
	}
}

// A guest that crashes before ready ends the boot with an error carrying
// what its console printed last.
func TestGuestCrashReportsConsole(t *testing.T) {
	code := append(testkernel.PrintSerial("boom: guest is going down\n"), testkernel.UD2...)
	_, stderr, exit := novm(t, "boot", "--kernel", writeKernel(t, code), "--memory", "64")
	if exit != 1 || !strings.Contains(stderr, "before the agent was ready") || !strings.Contains(stderr, "boom: guest is going down") {
		t.Fatalf("exit %d, stderr:\n%s", exit, stderr)
	}
}

// An exit KVM cannot continue from names the exit, RIP and the
// instruction bytes. XGETBV with CR4.OSXSAVE clear raises #UD on hardware
// (a triple fault here, so a reset) and is an emulation failure on
// emulating KVMs: both must end the VM, never hang it.
func TestFatalExitNamesInstruction(t *testing.T) {
	xgetbv := []byte{0x31, 0xc9, 0x0f, 0x01, 0xd0} // xor ecx,ecx; xgetbv
	_, err := sandbox.Boot(context.Background(), sandbox.Config{
		ReadyTimeout: 30 * time.Second,
		VM:           vmm.Config{Kernel: writeKernel(t, xgetbv), MemoryMiB: 64},
	})
	if err == nil {
		t.Fatal("boot succeeded")
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "guest stopped (reset)"):
		t.Log("this KVM raised #UD: triple fault")
	case strings.Contains(msg, "KVM_EXIT_INTERNAL_ERROR"):
		if !strings.Contains(msg, "RIP 0x100002") || !strings.Contains(msg, "0f 01 d0") {
			t.Fatalf("error lacks RIP or instruction bytes: %v", msg)
		}
	default:
		t.Fatalf("unexpected error: %v", msg)
	}
}
