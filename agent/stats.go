package agent

// This file reads the guest kernel's accounting for the host: the VM is
// the container, so /proc's whole-system numbers are the container's
// (containerd's task metrics), and the OOM-kill counter tells an OOM kill
// from any other SIGKILL.

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/novm/novm/agent/api"
)

// userHZ is the unit of /proc/stat's CPU times (fixed by the kernel ABI).
const userHZ = 100

func guestStats() *api.StatsResponse {
	r := &api.StatsResponse{OomKills: oomKills()}
	mem := procFields("/proc/meminfo", ':')
	r.MemoryTotalBytes = mem["MemTotal"] * 1024
	r.MemoryUsedBytes = (mem["MemTotal"] - mem["MemAvailable"]) * 1024
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		f := strings.Fields(string(line)) // cpu user nice system idle iowait irq softirq ...
		n := func(i int) uint64 {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseUint(f[i], 10, 64)
			return v
		}
		const nsPerTick = 1e9 / userHZ
		r.CpuUserNanos = (n(1) + n(2)) * nsPerTick
		r.CpuSystemNanos = (n(3) + n(6) + n(7)) * nsPerTick
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				r.Pids++
			}
		}
	}
	return r
}

// oomKills is the guest kernel's count of OOM kills since boot.
func oomKills() uint64 {
	return procFields("/proc/vmstat", ' ')["oom_kill"]
}

// procFields parses "name<sep> value [kB]" lines.
func procFields(path string, sep byte) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), string(sep))
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
			out[name] = v
		}
	}
	return out
}
