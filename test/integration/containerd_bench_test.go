package integration

// Benchmarks of novm under a real containerd, against runc on the same
// containerd in the same run.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkContainerdRunVsRunc times `ctr run --rm IMAGE id true` with
// runc and with novm, one after the other, and prints novm's breakdown as
// the shim logged it: shim start (ctr run to the shim's Create), VM boot
// (of which: VMM setup and agent ready), container rootfs preparation,
// start, and teardown.
func BenchmarkContainerdRunVsRunc(b *testing.B) {
	e := containerd(b)
	var runcT, novmT time.Duration
	var phases map[string]float64
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("b-runc-%d", i)
		start := time.Now()
		e.mustCtr(b, "run", "--rm", busyboxImage, id, "true")
		runcT += time.Since(start)

		id = fmt.Sprintf("b-novm-%d", i)
		start = time.Now()
		e.mustCtr(b, "run", "--rm", "--runtime", novmRuntime, busyboxImage, id, "true")
		novmT += time.Since(start)
		phases = e.shimLog(b, id, "container created")
		for k, v := range e.shimLog(b, id, "container deleted") {
			phases[k] = v
		}
		if st := e.shimLog(b, id, "process started"); st != nil {
			phases["start_ms"] = st["start_ms"]
		}
	}
	r, n := runcT.Seconds()/float64(b.N), novmT.Seconds()/float64(b.N)
	b.ReportMetric(r*1000, "runc-ms")
	b.ReportMetric(n*1000, "novm-ms")
	b.ReportMetric(n/r, "novm/runc")
	fmt.Printf("ctr run --rm IMAGE id true: runc %.0f ms, novm %.0f ms (novm/runc %.1fx)\n", r*1000, n*1000, n/r)
	fmt.Printf("novm breakdown (ms): shim start %.0f, rootfs mount %.0f, VM boot %.0f (VMM setup %.1f, to agent ready %.0f), container rootfs %.0f, start %.0f, teardown %.0f\n",
		phases["shim_start_ms"], phases["rootfs_ms"], phases["boot_ms"], phases["vm_setup_ms"], phases["agent_ready_ms"],
		phases["prepare_ms"], phases["start_ms"], phases["teardown_ms"])
}

// BenchmarkContainerdIdleMemory reports the shim's resident memory beyond
// the guest's RAM for one idle container: the cost of the VMM, the
// virtio-fs server and the shim together.
func BenchmarkContainerdIdleMemory(b *testing.B) {
	e := containerd(b)
	const id = "b-idle"
	e.mustCtr(b, "run", "-d", "--runtime", novmRuntime, busyboxImage, id, "sleep", "100000")
	defer func() {
		e.ctr(b, nil, "task", "kill", "-s", "SIGKILL", id)
		e.events.wait(b, "/tasks/exit", id, 2*time.Minute)
		e.mustCtr(b, "task", "rm", id)
		e.mustCtr(b, "container", "rm", id)
	}()
	// An exec that finished proves the container is up and idle.
	e.mustCtr(b, "task", "exec", "--exec-id", "probe", id, "true")
	pid := shimPid(id)
	total, guest, err := residentBeyondGuest(pid, 256<<20)
	if err != nil {
		b.Fatal(err)
	}
	over := float64(total-guest) / (1 << 20)
	b.ReportMetric(over, "shim-MiB-beyond-guest")
	fmt.Printf("idle container: shim resident %.1f MiB, of which guest RAM %.1f MiB; %.1f MiB beyond guest memory\n",
		float64(total)/(1<<20), float64(guest)/(1<<20), over)
}

// residentBeyondGuest reads a process's resident bytes and those of its
// guest RAM mapping (the mapping of exactly guestSize bytes).
func residentBeyondGuest(pid int, guestSize uint64) (total, guest uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	header := regexp.MustCompile(`^([0-9a-f]+)-([0-9a-f]+) `)
	var inGuest bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			lo, _ := strconv.ParseUint(m[1], 16, 64)
			hi, _ := strconv.ParseUint(m[2], 16, 64)
			inGuest = hi-lo == guestSize
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			total += kb << 10
			if inGuest {
				guest += kb << 10
			}
		}
	}
	return total, guest, sc.Err()
}

// shimLog finds the shim's log line with msg for container id in
// containerd's log and returns its numeric fields.
func (e *containerdEnv) shimLog(b testing.TB, id, msg string) map[string]float64 {
	data, err := os.ReadFile(filepath.Join(e.dir, "containerd.log"))
	if err != nil {
		b.Fatal(err)
	}
	field := regexp.MustCompile(`(\w+)=([0-9.]+)\b`)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `msg="`+msg+`"`) && strings.Contains(line, " id="+id+" ") {
			out := map[string]float64{}
			for _, m := range field.FindAllStringSubmatch(line, -1) {
				v, _ := strconv.ParseFloat(m[2], 64)
				out[m[1]] = v
			}
			return out
		}
	}
	return nil
}
