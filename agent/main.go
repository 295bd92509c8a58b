package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/agent/control"
	"github.com/novm/novm/internal/termios"
)

// ControlDevice is the virtio console the agent talks to the host on.
const ControlDevice = "/dev/hvc0"

// Main is PID 1's whole life. It never returns.
func Main() {
	mainAt := uptime()
	console := os.Stderr // the kernel gave PID 1 /dev/console
	if err := leaveInitramfs(); err != nil {
		fmt.Fprintf(console, "novm-agent: %v (processes with a root filesystem will not start)\n", err)
	}
	if err := mountBase(); err != nil {
		fmt.Fprintf(console, "novm-agent: %v\n", err)
		powerOff()
	}
	r := newReaper()
	if err := serveAPI(newService(r)); err != nil {
		fmt.Fprintf(console, "novm-agent: %v\n", err)
		powerOff()
	}
	ctl, err := os.OpenFile(ControlDevice, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(console, "novm-agent: open %s: %v (no virtio-console: is this a novm guest?)\n", ControlDevice, err)
		powerOff()
	}
	// Raw: host commands must not be echoed back, bytes pass unchanged.
	if _, err := termios.MakeRaw(int(ctl.Fd())); err != nil {
		fmt.Fprintf(console, "novm-agent: %s: %v\n", ControlDevice, err)
	}
	facts := readyFacts()
	facts["main_at"] = mainAt
	facts["uptime"] = uptime()
	fmt.Fprint(ctl, control.Format(control.VerbReady, facts))
	serve(ctl)
	fmt.Fprint(ctl, control.Format(control.VerbBye, nil))
	powerOff()
}

// serveAPI starts the ttrpc API and the stdio stream listener on vsock.
func serveAPI(svc *service) error {
	apiL, err := listenVsock(api.AgentPort)
	if err != nil {
		return err
	}
	stdioL, err := listenVsock(api.StdioPort)
	if err != nil {
		return err
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	api.RegisterAgentService(srv, svc)
	go srv.Serve(context.Background(), apiL)
	go svc.serveStdio(stdioL)
	return nil
}

// serve answers host commands until told to power off or the channel ends.
func serve(ctl *os.File) {
	sc := bufio.NewScanner(ctl)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case control.CmdPoweroff:
			return
		case control.CmdPing:
			fmt.Fprint(ctl, control.Format(control.VerbPong, nil))
		case "":
		default:
			fmt.Fprint(ctl, control.Format(control.VerbError, map[string]string{"unknown": strings.Fields(sc.Text())[0]}))
		}
	}
}

// readyFacts are what the host learns about the guest at ready time.
func readyFacts() map[string]string {
	f := map[string]string{
		"version": Version,
		"cpus":    strconv.Itoa(onlineCPUs()),
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f["memtotal_kib"] = strings.Fields(v)[0]
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	f["agent_sys_kib"] = strconv.FormatUint(m.Sys>>10, 10)
	return f
}

// uptime is the guest's CLOCK_BOOTTIME in seconds: how long since the
// kernel started, for boot-time breakdowns on the host.
func uptime() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return "?"
	}
	return fmt.Sprintf("%.3f", float64(ts.Nano())/1e9)
}

// onlineCPUs counts CPUs in /sys/devices/system/cpu/online ("0-1,3").
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, _ := strconv.Atoi(lo)
		z := a
		if found {
			z, _ = strconv.Atoi(hi)
		}
		n += z - a + 1
	}
	return n
}
