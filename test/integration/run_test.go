package integration

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The commands of the agent issue's definition of done, through the CLI
// exactly as a user types them; one VM each, booted in parallel.
func TestRunCLI(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		stdin     string
		args      []string
		code      int
		out, errs string
	}{
		{"exit status and streams", "", []string{"run", "--", "/bin/busybox", "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n", "err\n"},
		{"stdin", "hi\n", []string{"run", "-i", "--", "/bin/busybox", "cat"}, 0, "hi\n", ""},
		{"terminal size", "", []string{"run", "-t", "--", "/bin/busybox", "stty", "size"}, 0, "24 80\r\n", ""},
		{"env, workdir, user, not found", "", []string{"run", "-e", "GREETING=hello", "-w", "/tmp", "--user", "1000:1000", "--",
			"/bin/busybox", "sh", "-c", "echo $GREETING $(/bin/busybox pwd) $(/bin/busybox id -u):$(/bin/busybox id -g); nosuchcmd"}, 127, "hello /tmp 1000:1000\n", "nosuchcmd: not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runAs(t, func(cmd *exec.Cmd) {
				if c.stdin != "" {
					cmd.Stdin = strings.NewReader(c.stdin)
				}
			}, append([]string{c.args[0], "--memory", "128"}, c.args[1:]...)...)
			if code != c.code || stdout != c.out || !strings.Contains(stderr, c.errs) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d %q %q", code, stdout, stderr, c.code, c.out, c.errs)
			}
		})
	}
}

// SIGTERM to `novm run` reaches the process (exit 143) and the VM goes
// down cleanly.
func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(asset(t, "novm"), "run", "--memory", "128", "--", "/bin/busybox", "sh", "-c", "echo started; exec /bin/busybox sleep 600")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "started\n" {
		cmd.Process.Kill()
		t.Fatalf("first line %q, %v; stderr %s", line, err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("novm run ended with %v, want exit 143; stderr %s", err, stderr.String())
	}
}

// The virtio-fs issue's definition of done: a busybox tree as the root
// filesystem, served by novm's own virtio-fs device, with /tmp writable;
// plus a writable and a read-only share mounted inside it.
func TestRunRootfs(t *testing.T) {
	t.Parallel()
	data, ro := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(data, "in"), []byte("from the host\n"), 0o644)
	script := "echo hi > /tmp/x && cat /tmp/x; test -e /init && echo initramfs visible; /bin/ls /; " +
		"cat /data/in; echo from the guest > /data/out; echo x > /ro/y 2>/dev/null || echo ro refused; " +
		"grep -c /run/novm /proc/mounts" // pivot_root in a mount namespace: nothing of the agent's tree is left
	stdout, stderr, code := novm(t, "run", "--memory", "128", "--rootfs", rootfsCopy(t),
		"--share", data+":/data", "--share", ro+":/ro:ro", "--", "/bin/sh", "-c", script)
	want := "hi\nbin\ndata\ndev\netc\nproc\nro\nroot\nsys\ntmp\nfrom the host\nro refused\n0\n"
	if code != 1 || stdout != want { // grep -c exits 1 when it counts 0
		t.Fatalf("exit %d stdout %q stderr %q; want %q", code, stdout, stderr, want)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "out")); string(b) != "from the guest\n" {
		t.Fatalf("host sees %q in the writable share", b)
	}
	if _, err := os.Stat(filepath.Join(ro, "y")); err == nil {
		t.Fatal("guest wrote into the read-only share")
	}
}

// rootfsCopy is a private copy of the Makefile's busybox root filesystem:
// mount points for shares are created in it, as runc does in a bundle.
func rootfsCopy(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", asset(t, "rootfs"), dir).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v %s", err, out)
	}
	return dir
}

// lineReader reads a process's output up to marker lines.
type lineReader struct {
	t *testing.T
	r *bufio.Reader
}

// until returns the lines before marker.
func (l lineReader) until(marker string) []string {
	l.t.Helper()
	var lines []string
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			l.t.Fatalf("output ended before %q (after %q): %v", marker, lines, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == marker {
			return lines
		}
		lines = append(lines, line)
	}
}

// The virtio-fs issue's live shares: `novm share add` while a process
// runs in a root filesystem makes the share appear there at once, a busy
// share refuses `novm share rm`, an idle one disappears.
func TestLiveShares(t *testing.T) {
	t.Parallel()
	state, live, ro := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(live, "file"), []byte("hello-live\n"), 0o644)
	os.WriteFile(filepath.Join(ro, "file"), []byte("read-only\n"), 0o644)
	conf := filepath.Join(t.TempDir(), "app.conf")
	os.WriteFile(conf, []byte("a file share\n"), 0o644)
	script := `echo started; read a
cat /mnt/live/file /mnt/ro/file /etc/app.conf; echo from the guest > /mnt/live/written
echo x 2>/dev/null > /mnt/ro/new || echo ro refused
echo step1; read a
cd /mnt/live; echo step2; read a
cd /; echo step3; read a
ls /mnt/live; echo end`
	name := "live-" + strconv.Itoa(os.Getpid())
	cmd := exec.Command(asset(t, "novm"), "run", "--memory", "128", "--name", name, "--state-dir", state,
		"--rootfs", rootfsCopy(t), "-i", "--", "/bin/sh", "-c", script)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := lineReader{t, bufio.NewReader(stdout)}
	share := func(args ...string) (string, int) {
		o, e, code := novm(t, append([]string{"share", args[0], "--state-dir", state, "--vm", name}, args[1:]...)...)
		return o + e, code
	}
	out.until("started")
	for _, args := range [][]string{{"add", live, "/mnt/live"}, {"add", "--ro", ro, "/mnt/ro"}, {"add", conf, "/etc/app.conf"}} {
		if msg, code := share(args...); code != 0 {
			t.Fatalf("novm share %v: exit %d: %s", args, code, msg)
		}
	}
	if msg, code := share("add", live, "/mnt/live"); code == 0 {
		t.Fatal("a second share at the same guest path was accepted")
	} else if !strings.Contains(msg, "already mounted") {
		t.Fatalf("second share at /mnt/live: %s", msg)
	}
	io.WriteString(stdin, "go\n")
	if got, want := strings.Join(out.until("step1"), "|"), "hello-live|read-only|a file share|ro refused"; got != want {
		t.Fatalf("guest saw %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(live, "written")); string(b) != "from the guest\n" {
		t.Fatalf("host sees %q written by the guest", b)
	}
	io.WriteString(stdin, "go\n")
	out.until("step2")
	if msg, code := share("rm", "/mnt/live"); code == 0 || !strings.Contains(msg, "busy") {
		t.Fatalf("removing a share in use: exit %d: %s", code, msg)
	}
	io.WriteString(stdin, "go\n")
	out.until("step3")
	if msg, code := share("rm", live, "/mnt/live"); code != 0 {
		t.Fatalf("novm share rm: exit %d: %s", code, msg)
	}
	if msg, code := share("rm", "/mnt/live"); code == 0 || !strings.Contains(msg, "no share") {
		t.Fatalf("removing it twice: exit %d: %s", code, msg)
	}
	io.WriteString(stdin, "go\n")
	if left := out.until("end"); len(left) != 0 {
		t.Fatalf("after removal the guest still lists %q", left)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("novm run: %v; stderr %s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(state, name)); !os.IsNotExist(err) {
		t.Fatalf("control socket directory left behind: %v", err)
	}
}
