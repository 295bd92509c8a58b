// Package integration tests novm end to end on the real /dev/kvm with the
// project's guest kernel and initramfs, as built by `make` (the Makefile
// passes NOVM_BIN). Boots are expensive on nested KVMs, so each test that
// boots checks as much as it can per boot.
package integration

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binDir is where `make` put the binaries, kernel and initramfs.
func binDir(t testing.TB) string {
	dir := os.Getenv("NOVM_BIN")
	if dir == "" {
		dir, _ = filepath.Abs("../../bin")
	}
	for _, f := range []string{"novm", "vmlinux", "initramfs.cpio"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s missing: run `make` first (or set NOVM_BIN): %v", f, err)
		}
	}
	return dir
}

// binDirOr is binDir for code without a test at hand.
func binDirOr() string {
	if dir := os.Getenv("NOVM_BIN"); dir != "" {
		return dir
	}
	dir, _ := filepath.Abs("../../bin")
	return dir
}

func asset(t testing.TB, name string) string { return filepath.Join(binDir(t), name) }

// novm runs the CLI and returns stdout, stderr and the exit code.
func novm(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return runAs(t, nil, args...)
}

func runAs(t testing.TB, setup func(*exec.Cmd), args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(asset(t, "novm"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if setup != nil {
		setup(cmd)
	}
	code := exitCode(t, cmd.Run(), "novm", args)
	// Whatever the input, novm answers with an error, never a Go crash.
	for _, crash := range []string{"panic:", "goroutine ", "SIGSEGV"} {
		if strings.Contains(stderr.String(), crash) {
			t.Fatalf("novm %v crashed:\n%s", args, stderr.String())
		}
	}
	return stdout.String(), stderr.String(), code
}

// exitCode is the exit status of a command that ran (err from Wait or
// Run); a command that could not run fails the test.
func exitCode(t testing.TB, err error, name string, args []string) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", name, args, err)
	}
	return 0
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// ioPipe is io.Pipe, named for the tests that feed a process's stdin.
func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }
