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
	last := fmt.Sprintf("b-novm-%d", b.N-1)
	timeline := e.events.timeline(last, "/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete")
	r, n := runcT.Seconds()/float64(b.N), novmT.Seconds()/float64(b.N)
	b.ReportMetric(r*1000, "runc-ms")
	b.ReportMetric(n*1000, "novm-ms")
	b.ReportMetric(n/r, "novm/runc")
	fmt.Printf("ctr run --rm IMAGE id true: runc %.0f ms, novm %.0f ms (novm/runc %.1fx)\n", r*1000, n*1000, n/r)
	fmt.Printf("novm breakdown (ms): shim start %.0f, rootfs mount %.0f, VM boot %.0f (VMM setup %.1f, to agent ready %.0f), container rootfs %.0f, start %.0f, teardown %.0f\n",
		phases["shim_start_ms"], phases["rootfs_ms"], phases["boot_ms"], phases["vm_setup_ms"], phases["agent_ready_ms"],
		phases["prepare_ms"], phases["start_ms"], phases["teardown_ms"])
	fmt.Printf("novm events (ms after /containers/create): %s\n", timeline)
}

// timeline says when each topic's event for container id came, in ms
// after the first.
func (l *eventLog) timeline(id string, topics ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t0 time.Time
	var parts []string
	for _, topic := range topics {
		for _, line := range l.lines {
			if !strings.Contains(line, " "+topic+" ") || !strings.Contains(line, `"`+id+`"`) {
				continue
			}
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			at, err := time.Parse("2006-01-02 15:04:05.999999999", f[0]+" "+f[1])
			if err != nil {
				continue
			}
			if t0.IsZero() {
				t0 = at
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", topic, float64(at.Sub(t0).Microseconds())/1000))
			break
		}
	}
	return strings.Join(parts, ", ")
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
// guest RAM: the run of adjacent mappings spanning exactly guestSize bytes
// (the kernel and initramfs are mapped into it, splitting it up).
func residentBeyondGuest(pid int, guestSize uint64) (total, guest uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	type vma struct{ lo, hi, rss uint64 }
	var vmas []vma
	header := regexp.MustCompile(`^([0-9a-f]+)-([0-9a-f]+) `)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			lo, _ := strconv.ParseUint(m[1], 16, 64)
			hi, _ := strconv.ParseUint(m[2], 16, 64)
			vmas = append(vmas, vma{lo: lo, hi: hi})
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && len(vmas) > 0 {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			vmas[len(vmas)-1].rss = kb << 10
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	for i := range vmas {
		var rss uint64
		for j := i; j < len(vmas) && (j == i || vmas[j].lo == vmas[j-1].hi); j++ {
			rss += vmas[j].rss
			if span := vmas[j].hi - vmas[i].lo; span == guestSize {
				return total, rss, nil
			} else if span > guestSize {
				break
			}
		}
	}
	return 0, 0, fmt.Errorf("no %d MiB guest RAM mapping in the shim", guestSize>>20)
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
