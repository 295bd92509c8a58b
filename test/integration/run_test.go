package integration

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
	stdout, stderr, code := novm(t, "run", "--memory", "128", "--rootfs", asset(t, "rootfs"),
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
