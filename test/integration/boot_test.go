package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/runtime/sandbox"
)

// One boot through the CLI, as a user runs it: two vCPUs come up in the
// guest, the agent reports ready over virtio-console (guest → host), the
// poweroff command reaches it the same way (host → guest), and novm exits
// 0 after printing the phase timings.
func TestBootCLI(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := novm(t, "boot", "--cpus", "2", "--memory", "256")
	if code != 0 {
		t.Fatalf("novm boot exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"agent ready:", "cpus=2", "vmm setup:", "first instruction:", "guest to agent:", "shutdown:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// One boot in-process: ping over the control channel, a clean shutdown
// ending in a guest reset, and no file descriptors left behind. Not
// parallel: descriptors are counted for the whole test process.
func TestBootInProcessNoLeaks(t *testing.T) {
	before := openFDs(t)
	sb, err := sandbox.Boot(context.Background(), sandbox.Config{VM: vmm.Config{
		Kernel: asset(t, "vmlinux"), Initrd: asset(t, "initramfs.cpio"), CPUs: 1, MemoryMiB: 128,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Ready.Fields["cpus"] != "1" || sb.Ready.Fields["version"] == "" {
		t.Errorf("ready message %+v", sb.Ready.Fields)
	}
	if !sb.Machine().UsesIOEventFD() {
		t.Log("ioeventfd unavailable: virtio notifications go through MMIO exits")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sb.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := sb.Shutdown(time.Minute); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if e := sb.Machine().Wait(); e.Reason != vmm.ExitReset {
		t.Errorf("machine ended with %v, want a guest reset", e.Reason)
	}
	if after := openFDs(t); after > before {
		t.Errorf("%d file descriptors leaked", after-before)
	}
}
