package task

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenIOFile(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sub", "c.log")
	pio, err := openIO(context.Background(), "c1", "default", stdioPaths{Stdout: "file://" + log, Stderr: "file://" + log})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(pio.stdout, "out\n")
	io.WriteString(pio.stderr, "err\n")
	pio.Close()
	if b, _ := os.ReadFile(log); string(b) != "out\nerr\n" {
		t.Errorf("log file %q", b)
	}
}

// A binary:// logging driver gets stdout on fd 3 and stderr on fd 4, the
// container's id in its environment, and signals readiness on fd 5.
func TestOpenIOBinary(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "logger")
	os.WriteFile(script, []byte("#!/bin/sh\nexec 5>&-\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE\" > \"$1\"\ncat <&3 >> \"$1\"\ncat <&4 >> \"$1\"\n"), 0o755)
	pio, err := openIO(context.Background(), "c2", "ns1", stdioPaths{Stdout: "binary://" + script + "?" + out})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(pio.stdout, "hello\n")
	io.WriteString(pio.stderr, "oops\n")
	cmd := pio.logger
	pio.logger = nil // wait for it here
	pio.Close()
	cmd.Wait()
	b, _ := os.ReadFile(out)
	if got := string(b); got != "c2 ns1\nhello\noops\n" {
		t.Errorf("logger wrote %q", got)
	}
}

func TestOpenIOFifos(t *testing.T) {
	dir := t.TempDir()
	paths := stdioPaths{Stdin: filepath.Join(dir, "in"), Stdout: filepath.Join(dir, "out"), Stderr: filepath.Join(dir, "err")}
	for _, p := range []string{paths.Stdin, paths.Stdout, paths.Stderr} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The client side, as containerd's cio opens it.
	in, err := os.OpenFile(paths.Stdin, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	outR, err := os.OpenFile(paths.Stdout, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pio, err := openIO(context.Background(), "c3", "default", paths)
	if err != nil {
		t.Fatal(err)
	}
	defer pio.Close()
	io.WriteString(in, "typed\n")
	buf := make([]byte, 6)
	if _, err := io.ReadFull(pio.Stdin(), buf); err != nil || string(buf) != "typed\n" {
		t.Errorf("stdin read %q, %v", buf, err)
	}
	io.WriteString(pio.stdout, "shown\n")
	if _, err := io.ReadFull(outR, buf); err != nil || string(buf) != "shown\n" {
		t.Errorf("stdout read %q, %v", buf, err)
	}
}

func TestOpenIOUnknownScheme(t *testing.T) {
	if _, err := openIO(context.Background(), "c4", "default", stdioPaths{Stdout: "tcp://host:1"}); err == nil || !strings.Contains(err.Error(), "tcp") {
		t.Errorf("unknown scheme: %v", err)
	}
}
