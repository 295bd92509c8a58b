package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/runtime/sandbox"
)

// countWriter counts bytes and signals once target bytes arrived.
type countWriter struct {
	mu     sync.Mutex
	n      int64
	target int64
	done   chan struct{}
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(len(p))
	if c.target > 0 && c.n >= c.target && c.done != nil {
		close(c.done)
		c.done = nil
	}
	return len(p), nil
}

func (c *countWriter) expect(target int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.target = 0, target
	ch := make(chan struct{})
	c.done = ch
	return ch
}

func bootBusybox(b *testing.B, serial io.Writer) *sandbox.Sandbox {
	sb, err := sandbox.Boot(context.Background(), sandbox.Config{VM: vmm.Config{
		Kernel: asset(b, "vmlinux"), Initrd: asset(b, "initramfs-busybox.cpio"), MemoryMiB: 192, SerialOut: serial,
	}})
	if err != nil {
		b.Fatal(err)
	}
	return sb
}

// transfer runs args in the guest with the given stdio and returns how
// long it took and the host CPU time spent meanwhile.
func transfer(b *testing.B, sb *sandbox.Sandbox, id string, args []string, stdio sandbox.Stdio, wait <-chan struct{}) (time.Duration, time.Duration) {
	cpu0, t0 := cpuTime(), time.Now()
	p, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: id, Args: args}, stdio)
	if err != nil {
		b.Fatal(err)
	}
	if code, _, err := p.Wait(context.Background()); err != nil || code != 0 {
		b.Fatalf("%v: exit %d, %v", args, code, err)
	}
	if wait != nil {
		<-wait
	}
	return time.Since(t0), cpuTime() - cpu0
}

// BenchmarkVsockVsSerial moves data guest→host and host→guest over vsock
// streams and guest→host over the serial console, in one VM, and reports
// MiB/s and host CPU-ms per MiB for each.
func BenchmarkVsockVsSerial(b *testing.B) {
	serial := &countWriter{}
	sb := bootBusybox(b, serial)
	defer sb.Close()
	const vsockMiB, serialKiB = 16, 64
	bb := "/bin/busybox"
	for i := 0; i < b.N; i++ {
		out := &countWriter{}
		outDone := out.expect(vsockMiB << 20)
		d1, c1 := transfer(b, sb, fmt.Sprintf("g2hb%d", i), []string{bb, "dd", "if=/dev/zero", "bs=65536", "count=" + fmt.Sprint(vsockMiB*16)}, sandbox.Stdio{Stdout: out}, outDone)
		in := bytes.NewReader(make([]byte, vsockMiB<<20))
		d2, c2 := transfer(b, sb, fmt.Sprintf("h2g%d", i), []string{bb, "dd", "of=/dev/null", "bs=65536"}, sandbox.Stdio{Stdin: in}, nil)
		serDone := serial.expect(serialKiB << 10)
		d3, c3 := transfer(b, sb, fmt.Sprintf("ser%d", i), []string{bb, "sh", "-c", "dd if=/dev/zero bs=1024 count=" + fmt.Sprint(serialKiB) + " > /dev/ttyS0"}, sandbox.Stdio{}, serDone)
		g2h := float64(vsockMiB) / d1.Seconds()
		h2g := float64(vsockMiB) / d2.Seconds()
		ser := float64(serialKiB) / 1024 / d3.Seconds()
		b.ReportMetric(g2h, "vsock-g2h-MiB/s")
		b.ReportMetric(h2g, "vsock-h2g-MiB/s")
		b.ReportMetric(ser, "serial-g2h-MiB/s")
		b.ReportMetric(g2h/ser, "vsock/serial")
		fmt.Printf("guest→host: vsock %.2f MiB/s (%.1f host CPU-ms/MiB), serial console %.3f MiB/s (%.1f host CPU-ms/MiB): vsock/serial = %.0fx\n",
			g2h, ms(c1)/vsockMiB, ser, ms(c3)/(serialKiB/1024.0), g2h/ser)
		fmt.Printf("host→guest: vsock %.2f MiB/s (%.1f host CPU-ms/MiB)\n", h2g, ms(c2)/vsockMiB)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkExecVsRunc times running `true` in an already running VM (start
// + wait through the agent) against `runc exec` into a running container
// on this host, alternating in one run.
func BenchmarkExecVsRunc(b *testing.B) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		b.Fatalf("runc not installed (apt-get install runc): %v", err)
	}
	sb := bootBusybox(b, nil)
	defer sb.Close()
	id := startRuncContainer(b, runc)
	defer exec.Command(runc, "delete", "-f", id).Run()
	const rounds = 5
	var novmT, runcT time.Duration
	for i := 0; i < b.N*rounds; i++ {
		d, _ := transfer(b, sb, fmt.Sprintf("true%d", i), []string{"/bin/busybox", "true"}, sandbox.Stdio{}, nil)
		novmT += d
		t0 := time.Now()
		if out, err := exec.Command(runc, "exec", id, "/bin/busybox", "true").CombinedOutput(); err != nil {
			b.Fatalf("runc exec: %v\n%s", err, out)
		}
		runcT += time.Since(t0)
	}
	n := float64(b.N * rounds)
	nm, rm := ms(novmT)/n, ms(runcT)/n
	b.ReportMetric(nm, "novm-exec-ms")
	b.ReportMetric(rm, "runc-exec-ms")
	b.ReportMetric(nm/rm, "novm/runc")
	fmt.Printf("exec round trip of `true`: novm %.1f ms, runc exec %.1f ms: novm/runc = %.1fx\n", nm, rm, nm/rm)
}

// startRuncContainer runs a busybox container (`sleep`) with runc.
func startRuncContainer(b *testing.B, runc string) string {
	dir := b.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	for _, d := range []string{"proc", "dev", "sys", "tmp"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	bbData, err := os.ReadFile("/bin/busybox")
	if err != nil {
		b.Fatalf("busybox-static not installed: %v", err)
	}
	os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bbData, 0o755)
	if out, err := exec.Command(runc, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v\n%s", err, out)
	}
	spec, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	spec = bytes.Replace(spec, []byte(`"sh"`), []byte(`"/bin/busybox", "sleep", "3600"`), 1)
	spec = bytes.Replace(spec, []byte(`"terminal": true`), []byte(`"terminal": false`), 1)
	os.WriteFile(filepath.Join(dir, "config.json"), spec, 0o644)
	id := fmt.Sprintf("novm-bench-%d", os.Getpid())
	// The detached container inherits runc's stdio: give it a file, not a
	// pipe this process would wait on for ever.
	logf, err := os.Create(filepath.Join(dir, "runc.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(runc, "run", "-d", "--bundle", dir, id)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		b.Fatalf("runc run: %v\n%s", err, out)
	}
	return id
}
