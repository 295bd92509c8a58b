package integration

// These tests drive novm through a real containerd with ctr, as a user
// would. VM boots are the cost (about a minute each here), so each test
// checks as much as it can per container, and the one-shot runs boot in
// parallel (which is itself under test).

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TestContainerdRun runs three containers at once with `ctr run --rm`:
// output, stdin and exit code; a terminal; and the image config, a
// read-only bind mount and runtime options.
func TestContainerdRun(t *testing.T) {
	e := containerd(t)
	t.Run("group", func(t *testing.T) {
		t.Run("stdio", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := e.ctr(t, strings.NewReader("line1\nline2\n"), "run", "--rm", "--runtime", novmRuntime,
				busyboxImage, "c-stdio", "sh", "-c", "cat; echo hello; echo oops >&2; exit 3")
			if out != "line1\nline2\nhello\n" || code != 3 || !strings.Contains(errOut, "oops") {
				t.Errorf("stdout %q, stderr %q, exit %d; want the piped lines then hello, oops on stderr, exit 3", out, errOut, code)
			}
		})
		t.Run("tty", func(t *testing.T) {
			t.Parallel()
			out, code := ctrWithPty(t, e, "hello\n", "run", "--rm", "-t", "--runtime", novmRuntime, busyboxImage, "c-tty",
				"sh", "-c", "read x; echo got=$x; tty; stty size; exit 7")
			for _, want := range []string{"got=hello", "/dev/pts/", "40 100"} {
				if !strings.Contains(out, want) {
					t.Errorf("terminal output lacks %q:\n%q", want, out)
				}
			}
			if code != 7 {
				t.Errorf("exit %d, want 7", code)
			}
		})
		t.Run("config-and-mounts", func(t *testing.T) {
			t.Parallel()
			host := t.TempDir()
			os.WriteFile(filepath.Join(host, "data.txt"), []byte("from the host\n"), 0o644)
			opts := filepath.Join(t.TempDir(), "novm.toml")
			os.WriteFile(opts, []byte("cpus = 2\nmemory_mib = 300\n"), 0o644)
			out, errOut, code := e.ctr(t, nil, "run", "--rm", "--runtime", novmRuntime, "--runtime-config-path", opts,
				"--mount", "type=bind,src="+host+",dst=/data,options=rbind:ro", envImage, "c-config",
				"sh", "-c", `echo "FOO=$FOO"; pwd; cat /data/data.txt; touch /data/new 2>/dev/null || echo ro-refused; echo cpus=$(nproc); grep MemTotal /proc/meminfo`)
			if code != 0 {
				t.Fatalf("exit %d: %s%s", code, out, errOut)
			}
			for _, want := range []string{"FOO=bar from image\n", "/srv/app\n", "from the host\n", "ro-refused\n", "cpus=2\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			// 300 MiB of RAM, less what the kernel reserves.
			if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindStringSubmatch(out); m == nil {
				t.Errorf("no MemTotal in %q", out)
			} else if kb, _ := strconv.Atoi(m[1]); kb < 250<<10 || kb > 300<<10 {
				t.Errorf("MemTotal %d kB, want about 300 MiB", kb)
			}
			if _, err := os.Stat(filepath.Join(host, "new")); err == nil {
				t.Error("a write through the read-only mount reached the host")
			}
		})
	})
	for _, id := range []string{"c-stdio", "c-tty", "c-config"} {
		e.assertGone(t, id)
	}
}

// TestContainerdDetached walks a detached container through every ctr
// task verb, with a containerd restart in the middle.
func TestContainerdDetached(t *testing.T) {
	e := containerd(t)
	const id = "c-detached"
	e.removeOnFailure(t, id)
	e.mustCtr(t, "run", "-d", "--runtime", novmRuntime, busyboxImage, id, "sleep", "100000")
	if out := e.mustCtr(t, "task", "ls"); !regexp.MustCompile(id + `\s+\d+\s+RUNNING`).MatchString(out) {
		t.Errorf("task ls:\n%s", out)
	}
	out, errOut, code := e.ctr(t, nil, "task", "exec", "--exec-id", "x1", id, "sh", "-c", "echo from-exec $(hostname); exit 4")
	if out != "from-exec "+id+"\n" || code != 4 {
		t.Errorf("exec: %q %q exit %d", out, errOut, code)
	}
	if out := e.mustCtr(t, "task", "ps", id); !regexp.MustCompile(`(?m)^\d+\s`).MatchString(out) {
		t.Errorf("task ps:\n%s", out)
	}

	e.mustCtr(t, "task", "pause", id)
	if out := e.mustCtr(t, "task", "ls"); !regexp.MustCompile(id + `\s+\d+\s+PAUSED`).MatchString(out) {
		t.Errorf("task ls after pause:\n%s", out)
	}
	e.mustCtr(t, "task", "resume", id)
	// The guest runs again: an exec completes.
	if out, _, code := e.ctr(t, nil, "task", "exec", "--exec-id", "x2", id, "echo", "resumed"); out != "resumed\n" || code != 0 {
		t.Errorf("exec after resume: %q exit %d", out, code)
	}

	// containerd restarts and finds the running container through its
	// shim.
	e.restart(t)
	if out := e.mustCtr(t, "task", "ls"); !regexp.MustCompile(id + `\s+\d+\s+RUNNING`).MatchString(out) {
		t.Errorf("task ls after containerd restart:\n%s", out)
	}

	metrics := e.mustCtr(t, "task", "metrics", id)
	for _, want := range []string{"memory.usage_in_bytes", "memory.limit_in_bytes", "cpuacct.usage", "pids.current"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}

	// kill --all reaches an exec too; the init's exit comes after it.
	e.mustCtr(t, "task", "exec", "--detach", "--exec-id", "x3", id, "sleep", "100000")
	e.events.wait(t, "/tasks/exec-started", id, time.Minute)
	e.mustCtr(t, "task", "kill", "--all", "--signal", "SIGKILL", id)
	exit := e.events.wait(t, "/tasks/exit", id, 2*time.Minute)
	if !strings.Contains(exit, `"exit_status":137`) {
		t.Errorf("exit event %s, want status 137", exit)
	}
	if out := e.mustCtr(t, "task", "ls"); !regexp.MustCompile(id + `\s+\d+\s+STOPPED`).MatchString(out) {
		t.Errorf("task ls after kill:\n%s", out)
	}
	e.mustCtr(t, "task", "rm", id)
	e.mustCtr(t, "container", "rm", id)
	for _, topic := range []string{"/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/paused", "/tasks/resumed", "/tasks/delete"} {
		if !e.events.has(topic, id) {
			t.Errorf("no %s event", topic)
		}
	}
	e.assertGone(t, id)
}

// TestContainerdVMLoss loses two VMs at once: one by killing its shim
// (and with it the VMM) from outside, one by a guest that reboots under
// its container. Either way the task exits with an event and ctr cleans
// up completely.
func TestContainerdVMLoss(t *testing.T) {
	e := containerd(t)
	t.Run("group", func(t *testing.T) {
		t.Run("shim-killed", func(t *testing.T) {
			t.Parallel()
			const id = "c-killed"
			e.removeOnFailure(t, id)
			e.mustCtr(t, "run", "-d", "--runtime", novmRuntime, busyboxImage, id, "sleep", "100000")
			pid := shimPid(id)
			if pid == 0 {
				t.Fatal("no shim process found")
			}
			if err := syscallKill(pid); err != nil {
				t.Fatal(err)
			}
			e.events.wait(t, "/tasks/exit", id, 2*time.Minute)
			// containerd cleans up a dead shim's task itself; rm finds it
			// gone.
			if _, errOut, code := e.ctr(t, nil, "task", "rm", id); code != 0 && !strings.Contains(errOut, "not found") {
				t.Errorf("task rm: %s", errOut)
			}
			e.mustCtr(t, "container", "rm", id)
			e.assertGone(t, id)
		})
		t.Run("guest-reboot", func(t *testing.T) {
			t.Parallel()
			const id = "c-reboot"
			e.removeOnFailure(t, id)
			e.mustCtr(t, "run", "-d", "--runtime", novmRuntime, busyboxImage, id, "sleep", "100000")
			// Guest root may reboot its kernel; the VM ends under the task.
			if _, _, code := e.ctr(t, nil, "task", "exec", "--exec-id", "boom", id, "reboot", "-f"); code != 255 {
				t.Errorf("exec of reboot: exit %d, want 255 (VM gone)", code)
			}
			exit := e.events.wait(t, "/tasks/exit", id, 2*time.Minute)
			if !strings.Contains(exit, `"exit_status":255`) {
				t.Errorf("exit event %s, want status 255", exit)
			}
			e.mustCtr(t, "task", "rm", id)
			e.mustCtr(t, "container", "rm", id)
			e.assertGone(t, id)
		})
	})
}

// TestContainerdErrors: broken bundles and configuration fail in ctr run
// with a message naming the problem, and leave nothing behind.
func TestContainerdErrors(t *testing.T) {
	e := containerd(t)
	dir := t.TempDir()
	badSpec := filepath.Join(dir, "config.json")
	os.WriteFile(badSpec, []byte(`{"ociVersion":"1.0.2","process":{"cwd":"relative","args":["true"]},"root":{"path":"rootfs"}}`), 0o644)
	badKernel := filepath.Join(dir, "kernel.toml")
	os.WriteFile(badKernel, []byte("kernel = \"/nonexistent/vmlinux\"\n"), 0o644)
	typo := filepath.Join(dir, "typo.toml")
	os.WriteFile(typo, []byte("kernal = \"/k\"\n"), 0o644)
	for _, c := range []struct {
		id   string
		args []string
		want string
	}{
		{"e-rootfs", []string{"--rootfs", "/nonexistent/rootfs", "e-rootfs", "true"}, "/nonexistent/rootfs"},
		{"e-spec", []string{"--config", badSpec, "e-spec"}, `process.cwd "relative" is not an absolute path`},
		{"e-mount", []string{"--mount", "type=nfs,src=server:/x,dst=/x", busyboxImage, "e-mount", "true"}, `mount type "nfs"`},
		{"e-kernel", []string{"--runtime-config-path", badKernel, busyboxImage, "e-kernel", "true"}, "/nonexistent/vmlinux"},
		{"e-options", []string{"--runtime-config-path", typo, busyboxImage, "e-options", "true"}, "kernal"},
	} {
		args := append([]string{"run", "--rm", "--runtime", novmRuntime}, c.args...)
		_, errOut, code := e.ctr(t, nil, args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want an error naming %q", c.id, code, errOut, c.want)
		}
		for _, crash := range []string{"panic:", "goroutine "} {
			if strings.Contains(errOut, crash) {
				t.Errorf("%s: shim crashed:\n%s", c.id, errOut)
			}
		}
		e.ctr(t, nil, "container", "rm", c.id)
		e.assertGone(t, c.id)
	}
}

// removeOnFailure force-removes a container a failed test left, so the
// next test starts clean.
func (e *containerdEnv) removeOnFailure(t *testing.T, id string) {
	t.Cleanup(func() {
		if t.Failed() {
			e.ctr(t, nil, "task", "rm", "-f", id)
			e.ctr(t, nil, "container", "rm", id)
		}
	})
}

// assertGone checks that nothing of a removed container is left: no shim
// process, no mount, no bundle directory.
func (e *containerdEnv) assertGone(t *testing.T, id string) {
	t.Helper()
	if pid := shimPid(id); pid != 0 {
		t.Errorf("%s: shim process %d still running", id, pid)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte("/"+id+"/")) {
		t.Errorf("%s: mounts left:\n%s", id, grepLines(string(mounts), "/"+id+"/"))
	}
	bundle := filepath.Join(e.dir, "state", "io.containerd.runtime.v2.task", "default", id)
	if _, err := os.Stat(bundle); err == nil {
		t.Errorf("%s: bundle %s left", id, bundle)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// shimPid finds the novm shim serving id (0 if none).
func shimPid(id string) int {
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-novm-v2") {
			continue
		}
		for i, a := range args {
			if a == "-id" && i+1 < len(args) && args[i+1] == id {
				return pid
			}
		}
	}
	return 0
}

func syscallKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// ctrWithPty runs ctr on a new pseudo-terminal (40 rows, 100 columns),
// types input into it and returns everything ctr printed and its exit
// code.
func ctrWithPty(t *testing.T, e *containerdEnv, input string, args ...string) (string, int) {
	t.Helper()
	pty, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	if err := pty.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ctr", append([]string{"--address", e.sock}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	io.WriteString(pty, input)
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, pty); close(copied) }() // ends with EIO once ctr is gone
	timer := time.AfterFunc(ctrTimeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err = cmd.Wait()
	<-copied
	return out.String(), exitCode(t, err, "ctr", args)
}
