package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/novm/novm/guest/initramfs"
	"github.com/novm/novm/hypervisor/vmm"
)

// benchInit is the bench guest's init: mount the share, run the probe's
// benchmark, reset. The kernel hands init the bench* parameters as
// environment variables.
const benchInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /mnt
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t virtiofs "$benchtag" /mnt || echo "bench failed: mount $benchtag"
/fsprobe bench "/mnt$benchsub" "$benchmib" "$benchfiles"
echo bench-done
/bin/busybox reboot -f
`

// benchInitrd is an initramfs with busybox, the probe and benchInit.
func benchInitrd(b *testing.B, probe string) string {
	a := initramfs.New()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		b.Fatal(err)
	}
	probeBin, err := os.ReadFile(filepath.Join(probe, "fsprobe"))
	if err != nil {
		b.Fatal(err)
	}
	for _, err := range []error{
		a.AddDir("bin", 0o755), a.AddDir("dev", 0o755), a.AddCharDev("dev/console", 0o600, 5, 1),
		a.AddFile("bin/busybox", 0o755, busybox), a.AddSymlink("bin/sh", "busybox"),
		a.AddFile("fsprobe", 0o755, probeBin), a.AddFile("bench-init", 0o755, []byte(benchInit)),
	} {
		if err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "bench.cpio")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := a.WriteTo(f); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchResults reads "bench NAME VALUE UNIT" lines up to bench-done.
func benchResults(r io.Reader) (map[string]float64, string) {
	res := map[string]float64{}
	var log strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if f := strings.Fields(line); len(f) == 4 && f[0] == "bench" {
			v, _ := strconv.ParseFloat(f[2], 64)
			res[f[1]] = v
		}
		if strings.Contains(line, "bench-done") {
			break
		}
	}
	io.Copy(io.Discard, r)
	return res, log.String()
}

// benchLimit ends a bench guest that never finishes.
const benchLimit = 45 * time.Minute

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkVirtioFSVsVirtiofsd runs the same in-guest file-system
// benchmark (sequential write then read of one file, a create/stat/unlink
// storm) on novm's in-process virtio-fs and on Debian's C virtiofsd behind
// QEMU's microvm, same kernel, initramfs, memory and vCPU, one after the
// other, and prints novm/virtiofsd per metric (goal ≥ 1.0x).
//
// The issue asks for 256 MiB and 5 000 files. Every guest FUSE round trip
// costs tens of milliseconds of emulated guest kernel on a nested kvm_pvm
// host, which would make one run take over an hour, so the defaults are
// 16 MiB and 200 files (on this host novm's guest wrote 0.18 MiB/s and
// did 8 metadata ops/s); NOVM_BENCH_FS_MIB and NOVM_BENCH_FS_FILES set the
// full sizes.
func BenchmarkVirtioFSVsVirtiofsd(b *testing.B) {
	mib, files := envInt("NOVM_BENCH_FS_MIB", 16), envInt("NOVM_BENCH_FS_FILES", 200)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		b.Fatal("qemu-system-x86_64 not installed (make setup installs it)")
	}
	const virtiofsd = "/usr/lib/qemu/virtiofsd"
	if _, err := os.Stat(virtiofsd); err != nil {
		b.Fatalf("%s not installed (make setup installs it)", virtiofsd)
	}
	initrd := benchInitrd(b, buildProbe(b))
	kernel := asset(b, "vmlinux")
	params := fmt.Sprintf("rdinit=/bench-init benchmib=%d benchfiles=%d", mib, files)

	novmDir := b.TempDir()
	r, w := io.Pipe()
	m, err := vmm.New(vmm.Config{Kernel: kernel, Initrd: initrd, MemoryMiB: 256, CPUs: 1, SerialOut: w,
		Cmdline: params + " benchtag=" + vmm.FSTag + " benchsub=/bench", Shares: []vmm.Share{{Name: "bench", Path: novmDir}}})
	if err != nil {
		b.Fatal(err)
	}
	m.Start()
	go func() { m.Wait(); w.Close() }()
	defer time.AfterFunc(benchLimit, m.Stop).Stop()
	novmRes, novmLog := benchResults(r)
	m.Close()

	qemuRes, qemuLog := qemuVirtiofsdBench(b, qemu, virtiofsd, kernel, initrd, params+" benchtag=bench benchsub=")
	for _, metric := range []string{"seq-write", "seq-read", "metadata"} {
		n, q := novmRes[metric], qemuRes[metric]
		if n == 0 || q == 0 {
			b.Fatalf("%s missing\nnovm guest:\n%s\nQEMU guest:\n%s", metric, novmLog, qemuLog)
		}
		fmt.Printf("virtio-fs in the guest, %-9s novm %9.2f  virtiofsd %9.2f  ratio %.2fx (goal >= 1.0x; %d MiB, %d files)\n",
			metric, n, q, n/q, mib, files)
		b.ReportMetric(n/q, metric+"-x")
	}
}

// qemuVirtiofsdBench runs the bench guest under QEMU's microvm with the
// share served by virtiofsd over vhost-user.
func qemuVirtiofsdBench(b *testing.B, qemu, virtiofsd, kernel, initrd, params string) (map[string]float64, string) {
	dir := b.TempDir()
	share := filepath.Join(dir, "share")
	os.Mkdir(share, 0o755)
	sock := filepath.Join(dir, "vfs.sock")
	fsd := exec.Command(virtiofsd, "--socket-path="+sock, "-o", "source="+share, "-o", "cache=auto")
	var fsdErr strings.Builder
	fsd.Stderr = &fsdErr
	if err := fsd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { fsd.Process.Kill(); fsd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
	}
	cmdline := strings.TrimSpace(vmm.BaseCmdline + " " + vmm.HostCmdline() + " " + params)
	cmd := exec.Command(qemu,
		"-M", "microvm,acpi=off,rtc=off,memory-backend=mem",
		// vhost-user devices need modern virtio-mmio; microvm defaults
		// to legacy.
		"-global", "virtio-mmio.force-legacy=false", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
		"-object", "memory-backend-memfd,id=mem,size=256M,share=on",
		"-m", "256", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline, "-serial", "stdio",
		"-chardev", "socket,id=vfs,path="+sock,
		"-device", "vhost-user-fs-device,queue-size=1024,chardev=vfs,tag=bench")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	timer := time.AfterFunc(benchLimit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	res, log := benchResults(out)
	cmd.Process.Kill()
	cmd.Wait()
	return res, log + stderr.String() + fsdErr.String()
}
