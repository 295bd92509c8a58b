package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/runtime/sandbox"
)

// run starts args in the guest and waits for it, returning the exit
// status and both output streams.
func run(t *testing.T, sb *sandbox.Sandbox, id string, args []string, stdin []byte) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	stdio := sandbox.Stdio{Stdout: &out, Stderr: &errb}
	if stdin != nil {
		stdio.Stdin = bytes.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := sb.Start(ctx, &api.CreateProcessRequest{Id: id, Args: args, Env: []string{"PATH=/bin"}}, stdio)
	if err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	code, _, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// All agent API cases share one booted VM (a boot costs ~30 s here).
func TestAgentAPI(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "vsock.sock")
	sb, err := sandbox.Boot(context.Background(), sandbox.Config{VsockSocket: sock, VM: vmm.Config{
		Kernel: asset(t, "vmlinux"), Initrd: asset(t, "initramfs-busybox.cpio"), CPUs: 1, MemoryMiB: 192,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	bb := "/bin/busybox"

	t.Run("ping", func(t *testing.T) {
		resp, err := sb.Agent().Ping(context.Background(), &api.PingRequest{})
		if err != nil || resp.Version == "" || resp.Version != sb.Ready.Fields["version"] {
			t.Fatalf("ping = %+v, %v", resp, err)
		}
	})
	t.Run("agent reached by hand through the Unix socket", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT %d\n", api.AgentPort)
		// Read the answer byte by byte: what follows it is ttrpc's.
		var line string
		for err == nil && !strings.HasSuffix(line, "\n") {
			var b [1]byte
			if _, err = c.Read(b[:]); err == nil {
				line += string(b[:])
			}
		}
		if err != nil || !strings.HasPrefix(line, "OK ") {
			t.Fatalf("handshake answer %q, %v", line, err)
		}
		client := ttrpc.NewClient(c)
		defer client.Close()
		resp, err := api.NewAgentClient(client).Ping(context.Background(), &api.PingRequest{})
		if err != nil || resp.Version != sb.Ready.Fields["version"] {
			t.Fatalf("ping over the Unix socket = %+v, %v", resp, err)
		}
	})
	t.Run("exit codes and both streams", func(t *testing.T) {
		code, out, errs := run(t, sb, "codes", []string{bb, "sh", "-c", "echo out; echo err >&2; exit 3"}, nil)
		if code != 3 || out != "out\n" || errs != "err\n" {
			t.Fatalf("code %d out %q err %q", code, out, errs)
		}
	})
	t.Run("command not found is 127", func(t *testing.T) {
		_, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: "nf", Args: []string{"/no/such/cmd"}}, sandbox.Stdio{})
		var se *sandbox.StartError
		if !errors.As(err, &se) || se.ExitStatus != 127 || !strings.Contains(se.Error(), "/no/such/cmd") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not executable is 126", func(t *testing.T) {
		_, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: "ne", Args: []string{"/proc/version"}}, sandbox.Stdio{})
		var se *sandbox.StartError
		if !errors.As(err, &se) || se.ExitStatus != 126 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("signals", func(t *testing.T) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			id := "sig" + strconv.Itoa(int(sig))
			var out bytes.Buffer
			p, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: id, Args: []string{bb, "sh", "-c", "echo started; exec " + bb + " sleep 600"}}, sandbox.Stdio{Stdout: &out})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Signal(context.Background(), int(sig), true); err != nil {
				t.Fatal(err)
			}
			code, _, err := p.Wait(context.Background())
			if err != nil || code != 128+int(sig) {
				t.Fatalf("%v: code %d, %v", sig, code, err)
			}
		}
	})
	t.Run("1 MiB of output complete and in order", func(t *testing.T) {
		const n = 170000
		code, out, _ := run(t, sb, "seq", []string{bb, "seq", "1", strconv.Itoa(n)}, nil)
		var want strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&want, "%d\n", i)
		}
		if code != 0 || out != want.String() {
			t.Fatalf("code %d, got %d bytes, want %d (equal: %v)", code, len(out), want.Len(), out == want.String())
		}
		if len(out) < 1<<20 {
			t.Fatalf("only %d bytes", len(out))
		}
	})
	t.Run("stdin round trip and EOF", func(t *testing.T) {
		in := bytes.Repeat([]byte("0123456789abcdef\n"), 20000) // 340 KB
		code, out, _ := run(t, sb, "cat", []string{bb, "cat"}, in)
		if code != 0 || out != string(in) {
			t.Fatalf("code %d, got %d bytes back of %d", code, len(out), len(in))
		}
	})
	t.Run("terminal and resize", func(t *testing.T) {
		var out bytes.Buffer
		pr, pw := ioPipe()
		p, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: "tty", Terminal: true,
			Args: []string{bb, "sh", "-c", "read x; " + bb + " stty size; " + bb + " tty"}}, sandbox.Stdio{Stdin: pr, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Resize(context.Background(), 100, 40); err != nil {
			t.Fatal(err)
		}
		pw.Write([]byte("go\n"))
		code, _, err := p.Wait(context.Background())
		pw.Close()
		if err != nil || code != 0 || !strings.Contains(out.String(), "40 100") || !strings.Contains(out.String(), "/dev/pts/") {
			t.Fatalf("code %d err %v out %q", code, err, out.String())
		}
	})
	t.Run("invalid user", func(t *testing.T) {
		_, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: "baduser", Args: []string{bb, "true"},
			User: &api.User{Uid: 4294967295, Gid: 0}}, sandbox.Stdio{})
		var se *sandbox.StartError
		if !errors.As(err, &se) || se.ExitStatus != 126 || !strings.Contains(se.Error(), "invalid argument") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("20 concurrent execs", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out bytes.Buffer
				id := fmt.Sprintf("c%d", i)
				p, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: id, Args: []string{bb, "echo", id}}, sandbox.Stdio{Stdout: &out})
				if err != nil {
					errs <- err
					return
				}
				code, _, err := p.Wait(context.Background())
				if err != nil || code != 0 || out.String() != id+"\n" {
					errs <- fmt.Errorf("%s: code %d out %q err %v", id, code, out.String(), err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	// Last: the VM dies under a running process; waiting says so.
	t.Run("VM death while a process runs", func(t *testing.T) {
		p, err := sb.Start(context.Background(), &api.CreateProcessRequest{Id: "victim", Args: []string{bb, "sleep", "600"}}, sandbox.Stdio{})
		if err != nil {
			t.Fatal(err)
		}
		sb.Machine().Stop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err = p.Wait(ctx)
		if err == nil || !strings.Contains(err.Error(), "guest stopped") {
			t.Fatalf("wait after VM death: %v", err)
		}
	})
}
