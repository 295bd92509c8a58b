package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/novm/novm/hypervisor/kvm"
	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/runtime/sandbox"
)

// vmFlags are the flags shared by commands that start a VM.
type vmFlags struct {
	kernel, initrd, cmdline, device string
	cpus, memory                    int
	console, debug                  bool
	readyTimeout                    time.Duration
	vsockSocket                     string
}

// register adds the flags; initrd names the command's default initramfs.
func (f *vmFlags) register(fs *flag.FlagSet, initrd string) {
	fs.StringVar(&f.kernel, "kernel", defaultAsset("vmlinux"), "guest kernel: ELF vmlinux or bzImage")
	fs.StringVar(&f.initrd, "initrd", defaultAsset(initrd), "guest initramfs holding the novm agent as /init")
	fs.StringVar(&f.cmdline, "cmdline-append", "", "extra kernel command line parameters")
	fs.StringVar(&f.device, "kvm", kvm.DefaultDevice, "KVM device")
	fs.IntVar(&f.cpus, "cpus", vmm.DefaultCPUs, "number of vCPUs")
	fs.IntVar(&f.memory, "memory", vmm.DefaultMemoryMiB, "guest memory in MiB")
	fs.BoolVar(&f.console, "console", false, "show the guest's serial console on stderr")
	fs.BoolVar(&f.debug, "debug", false, "debug logging (implies --console)")
	fs.DurationVar(&f.readyTimeout, "ready-timeout", sandbox.DefaultReadyTimeout, "how long to wait for the guest agent")
	fs.StringVar(&f.vsockSocket, "vsock-socket", "", "expose guest vsock ports on this Unix socket (\"CONNECT <port>\" handshake)")
}

// check rejects values the VMM would otherwise replace by defaults.
func (f *vmFlags) check() error {
	if f.cpus < 1 {
		return fmt.Errorf("--cpus %d: want at least 1", f.cpus)
	}
	if f.memory < 1 {
		return fmt.Errorf("--memory %d MiB is too little", f.memory)
	}
	if f.readyTimeout <= 0 {
		return fmt.Errorf("--ready-timeout %v: want a positive duration", f.readyTimeout)
	}
	return nil
}

func (f *vmFlags) sandboxConfig() sandbox.Config {
	log := logrus.NewEntry(logrus.StandardLogger())
	if f.debug {
		logrus.SetLevel(logrus.DebugLevel)
		f.console = true
	}
	var serial io.Writer
	if f.console {
		serial = os.Stderr
	}
	return sandbox.Config{
		ReadyTimeout: f.readyTimeout,
		VsockSocket:  f.vsockSocket,
		VM: vmm.Config{
			Device: f.device, Kernel: f.kernel, Initrd: f.initrd, Cmdline: f.cmdline,
			CPUs: f.cpus, MemoryMiB: f.memory, SerialOut: serial, CacheDir: cacheDir(), Log: log,
		},
	}
}

func runBoot(args []string) error {
	fs := flag.NewFlagSet("novm boot", flag.ContinueOnError)
	var vf vmFlags
	vf.register(fs, "initramfs.cpio")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long to wait for the guest to power off")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "novm boot: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if err := vf.check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()
	cfg := vf.sandboxConfig()
	sb, err := sandbox.Boot(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("agent ready: %s\n", formatFields(sb.Ready.Fields))
	if over, guest, err := vmmOverhead(sb.Machine()); err == nil {
		fmt.Printf("vmm memory:         %8.2f MiB resident beyond %.2f MiB of guest pages\n", float64(over)/(1<<20), float64(guest)/(1<<20))
	}
	if err := sb.Shutdown(*shutdownTimeout); err != nil {
		return err
	}
	t := sb.Timings
	fmt.Printf("vmm setup:          %8.2f ms\n", ms(t.Setup))
	fmt.Printf("first instruction:  %8.2f ms after start\n", ms(t.FirstInstruction))
	fmt.Printf("guest to agent:     %8.2f ms\n", ms(t.Ready))
	fmt.Printf("shutdown:           %8.2f ms\n", ms(t.Shutdown))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func formatFields(f map[string]string) string {
	s := ""
	for _, k := range []string{"version", "cpus", "memtotal_kib", "main_at", "uptime", "agent_sys_kib"} {
		if v, ok := f[k]; ok {
			s += fmt.Sprintf("%s=%s ", k, v)
		}
	}
	return s
}

// vmmOverhead is the novm process's resident memory that is not guest RAM:
// VmRSS minus the guest pages the host has backed.
func vmmOverhead(m *vmm.Machine) (overhead, guest uint64, err error) {
	guest, err = m.Memory().ResidentBytes()
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	var rssKiB uint64
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKiB, _ = strconv.ParseUint(strings.Fields(v)[0], 10, 64)
		}
	}
	rss := rssKiB << 10
	if rss < guest {
		return 0, guest, nil
	}
	return rss - guest, guest, nil
}
