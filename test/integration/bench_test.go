package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novm/novm/hypervisor/vmm"
)

// BenchmarkFirstInstruction measures the host's cost from an empty process
// state to the first KVM_RUN of the boot vCPU: open KVM, map RAM, load the
// default kernel and initramfs, build devices, boot structures and vCPUs.
// Goal: 5 ms (Firecracker publishes 8 CPU-ms for the same span).
func BenchmarkFirstInstruction(b *testing.B) {
	kernel, initrd := asset(b, "vmlinux"), asset(b, "initramfs.cpio")
	var wall, cpu time.Duration
	const perN = 10 // make bench runs each benchmark once; average over more
	n := b.N * perN
	for i := 0; i < n; i++ {
		cpu0 := cpuTime()
		start := time.Now()
		m, err := vmm.New(vmm.Config{Kernel: kernel, Initrd: initrd, MemoryMiB: 256})
		if err != nil {
			b.Fatal(err)
		}
		m.Start()
		first := <-m.FirstRun()
		wall += first.Sub(start)
		cpu += cpuTime() - cpu0
		m.Close()
	}
	msWall := float64(wall) / float64(n) / 1e6
	msCPU := float64(cpu) / float64(n) / 1e6
	b.ReportMetric(msWall, "ms-to-first-insn")
	b.ReportMetric(msCPU, "cpu-ms")
	b.ReportMetric(msWall/5, "x-goal-5ms")
	fmt.Printf("host cost to first guest instruction: %.2f ms wall, %.2f CPU-ms (goal 5 ms: %.2fx; Firecracker publishes 8 CPU-ms)\n", msWall, msCPU, msWall/5)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBootVsQEMU boots the same kernel and initramfs with `novm boot`
// and with QEMU's microvm machine, one after the other in this run, and
// reports the time from process start to the agent's ready line for each
// (goal: novm ≤ 0.8x QEMU), plus novm's own memory beyond guest pages
// (goal ≤ 15 MiB).
func BenchmarkBootVsQEMU(b *testing.B) {
	kernel, initrd := asset(b, "vmlinux"), asset(b, "initramfs.cpio")
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		b.Fatalf("qemu-system-x86_64 not installed (apt-get install qemu-system-x86): %v", err)
	}
	for i := 0; i < b.N; i++ {
		novmReady, overhead := bootNovm(b)
		qemuReady := bootQEMU(b, qemu, kernel, initrd)
		ratio := novmReady.Seconds() / qemuReady.Seconds()
		b.ReportMetric(novmReady.Seconds(), "novm-s-to-ready")
		b.ReportMetric(qemuReady.Seconds(), "qemu-s-to-ready")
		b.ReportMetric(ratio, "novm/qemu")
		b.ReportMetric(overhead, "vmm-MiB")
		fmt.Printf("boot to agent ready: novm %.2f s, QEMU microvm %.2f s: novm/QEMU = %.2fx (goal <= 0.8x)\n", novmReady.Seconds(), qemuReady.Seconds(), ratio)
		fmt.Printf("VMM memory overhead (RSS minus guest pages touched): %.2f MiB (goal <= 15 MiB)\n", overhead)
	}
}

var overheadRE = regexp.MustCompile(`vmm memory:\s+([0-9.]+) MiB`)

func bootNovm(b *testing.B) (time.Duration, float64) {
	cmd := exec.Command(asset(b, "novm"), "boot", "--cpus", "1", "--memory", "256")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var ready time.Duration
	var overhead float64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "agent ready:") {
			ready = time.Since(start)
		}
		if m := overheadRE.FindStringSubmatch(line); m != nil {
			overhead, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	if err := cmd.Wait(); err != nil || ready == 0 {
		b.Fatalf("novm boot: %v (ready seen: %v)", err, ready != 0)
	}
	return ready, overhead
}

// bootQEMU starts QEMU's microvm with the same kernel, initramfs, memory,
// vCPUs and kernel parameters, the agent's console on a socket, and times
// the agent's ready line.
func bootQEMU(b *testing.B, qemu, kernel, initrd string) time.Duration {
	dir := b.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	cmdline := strings.TrimSpace(vmm.BaseCmdline + " " + vmm.HostCmdline())
	cmd := exec.Command(qemu,
		"-M", "microvm,acpi=off,rtc=off", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
		"-m", "256", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-serial", "null",
		"-chardev", "socket,id=agent,path="+sock+",server=on,wait=on",
		"-device", "virtio-serial-device", "-device", "virtconsole,chardev=agent")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// QEMU waits for this connection before it starts the guest.
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		b.Fatalf("connect to QEMU's agent console: %v\n%s", err, stderr.String())
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if strings.Contains(line, "novm-agent ready") {
			return time.Since(start)
		}
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("console closed")
			}
			b.Fatalf("QEMU guest never became ready: %v\n%s", err, stderr.String())
		}
	}
}
