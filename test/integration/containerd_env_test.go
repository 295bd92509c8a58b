package integration

// This file runs a real containerd for the shim tests: its own root, state
// and socket in a temp dir, the built shim and runc's on its PATH, a local
// busybox image imported (there is no registry), and `ctr events` recorded
// so tests can wait for task events instead of sleeping.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novm/novm/guest/ociimage"
)

const (
	novmRuntime = "io.containerd.novm.v2"
	// busyboxImage is the plain image; envImage shares its layer and sets
	// an environment variable and a working directory in its config.
	busyboxImage = "docker.io/library/busybox:latest"
	envImage     = "docker.io/novm/test-env:1"
	// ctrTimeout bounds one ctr command: a VM boot takes up to a minute
	// on this nested host, longer with several at once.
	ctrTimeout = 6 * time.Minute
)

type containerdEnv struct {
	dir, sock    string
	config, path string
	cmd          *exec.Cmd
	events       *eventLog
	stopEvts     func()
}

var (
	ctrdOnce   sync.Once
	ctrdShared *containerdEnv
	ctrdErr    error
)

// containerd returns the package's containerd, starting it on first use;
// TestMain stops it.
func containerd(t testing.TB) *containerdEnv {
	t.Helper()
	ctrdOnce.Do(func() { ctrdShared, ctrdErr = startContainerd(binDir(t)) })
	if ctrdErr != nil {
		t.Fatal(ctrdErr)
	}
	return ctrdShared
}

func startContainerd(bin string) (_ *containerdEnv, err error) {
	for _, tool := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: run `make setup` (.ci/setup installs containerd v2.4.2)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "novm-containerd-")
	if err != nil {
		return nil, err
	}
	e := &containerdEnv{dir: dir, sock: filepath.Join(dir, "containerd.sock")}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.sock, e.sock+".ttrpc")
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	e.config, e.path = cfg, bin
	if err := e.launch(); err != nil {
		return nil, err
	}
	archive := filepath.Join(dir, "images.tar")
	f, err := os.Create(archive)
	if err != nil {
		return nil, err
	}
	err = ociimage.Write(f, "/bin/busybox", []ociimage.Image{
		{Name: busyboxImage, Cmd: []string{"sh"}, WorkingDir: "/"},
		{Name: envImage, Cmd: []string{"sh"}, WorkingDir: "/srv/app", Env: []string{"FOO=bar from image"}},
	})
	f.Close()
	if err != nil {
		return nil, err
	}
	if out, err := e.ctrRaw(context.Background(), nil, "images", "import", archive); err != nil {
		return nil, fmt.Errorf("ctr images import: %v\n%s", err, out)
	}
	return e, nil
}

// launch starts containerd (appending to its log) and `ctr events`.
func (e *containerdEnv) launch() error {
	logf, err := os.OpenFile(filepath.Join(e.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	e.cmd = exec.Command("containerd", "--config", e.config, "--log-level", "debug")
	// The shim is found on containerd's PATH, and finds the kernel and
	// initramfs beside itself.
	e.cmd.Env = append(os.Environ(), "PATH="+e.path+":"+os.Getenv("PATH"))
	stderr, err := e.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return err
	}
	if err := e.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if strings.Contains(sc.Text(), "containerd successfully booted") {
				once.Do(func() { close(ready) })
			}
		}
		logf.Close()
	}()
	select {
	case <-ready:
	case <-time.After(time.Minute):
		return fmt.Errorf("containerd did not start; see %s", logf.Name())
	}
	return e.startEvents()
}

// restart stops containerd (not the shims) and starts it again on the
// same state, as after a containerd upgrade or crash.
func (e *containerdEnv) restart(t testing.TB) {
	t.Helper()
	e.stopEvts()
	e.cmd.Process.Signal(os.Interrupt)
	e.cmd.Wait()
	if err := e.launch(); err != nil {
		t.Fatal(err)
	}
}

func (e *containerdEnv) stop() {
	if e.stopEvts != nil {
		e.stopEvts()
	}
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
	}
	// A failing test may leave containers: clean them up the way
	// containerd would after a dead shim (`shim delete` in the bundle),
	// which kills the shim, unmounts the rootfs and removes its socket.
	tasks := filepath.Join(e.dir, "state", "io.containerd.runtime.v2.task", "default")
	ents, _ := os.ReadDir(tasks)
	for _, ent := range ents {
		bundle := filepath.Join(tasks, ent.Name())
		cmd := exec.Command(filepath.Join(binDirOr(), "containerd-shim-novm-v2"), "-namespace", "default",
			"-id", ent.Name(), "-address", e.sock, "-bundle", bundle, "delete")
		cmd.Dir = bundle
		cmd.Run()
	}
	os.RemoveAll(e.dir)
}

func (e *containerdEnv) ctrRaw(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", e.sock}, args...)...)
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

// ctr runs ctr as a user would; it returns stdout, stderr and the exit
// code.
func (e *containerdEnv) ctr(t testing.TB, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", e.sock}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	code := exitCode(t, cmd.Run(), "ctr", args)
	if ctx.Err() != nil {
		t.Fatalf("ctr %v did not finish within %v", args, ctrTimeout)
	}
	return stdout.String(), filterWarnings(stderr.String()), code
}

// mustCtr runs ctr and fails the test unless it exits 0.
func (e *containerdEnv) mustCtr(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := e.ctr(t, nil, args...)
	if code != 0 {
		t.Fatalf("ctr %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// filterWarnings drops containerd's cgroup v1 deprecation warning (this
// host has cgroup v1), which ctr prints on every command.
func filterWarnings(s string) string {
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.Contains(l, "DEPRECATION: The support for cgroup v1") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// eventLog records `ctr events` lines and lets tests wait for one.
type eventLog struct {
	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
}

func (e *containerdEnv) startEvents() error {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ctr", "--address", e.sock, "events")
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return err
	}
	l := e.events
	if l == nil { // kept across containerd restarts
		l = &eventLog{}
		l.cond = sync.NewCond(&l.mu)
		e.events = l
	}
	e.stopEvts = func() { cancel(); cmd.Wait() }
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.cond.Broadcast()
			l.mu.Unlock()
		}
	}()
	return nil
}

// wait returns the first event line with the topic that mentions
// "container_id":"id" (and, for task exits, "id":"id": the init's exit,
// not an exec's), waiting up to timeout for it.
func (l *eventLog) wait(t testing.TB, topic, id string, timeout time.Duration) string {
	t.Helper()
	timer := time.AfterFunc(timeout, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if line, ok := l.find(topic, id); ok {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s within %v; events:\n%s", topic, id, timeout, strings.Join(l.lines, "\n"))
		}
		l.cond.Wait()
	}
}

// has reports whether an event was seen. Callers do not hold mu.
func (l *eventLog) has(topic, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.find(topic, id)
	return ok
}

func (l *eventLog) find(topic, id string) (string, bool) {
	for _, line := range l.lines {
		if strings.Contains(line, " "+topic+" ") && strings.Contains(line, `"container_id":"`+id+`"`) &&
			(topic != "/tasks/exit" || strings.Contains(line, `"id":"`+id+`"`)) {
			return line, true
		}
	}
	return "", false
}
