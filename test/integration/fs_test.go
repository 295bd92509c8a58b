package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// buildProbe builds test/fsprobe, the program both suites run.
func buildProbe(t testing.TB) string {
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "github.com/novm/novm/test/fsprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fsprobe: %v\n%s", err, out)
	}
	return dir
}

// fillBig makes the 10 000-entry directory the readdir check lists.
func fillBig(t *testing.T, dir string) {
	big := filepath.Join(dir, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("file-%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The virtio-fs issue's semantics and escape suites, in one guest: the
// semantics checks run as guest root on a share and as root on a host
// directory of the same file system and must print the same facts; every
// escape attempt from a share must be blocked, and the host must find
// nothing changed outside it.
func TestFilesystemSuites(t *testing.T) {
	t.Parallel()
	probe := buildProbe(t)
	sem, hostSem := t.TempDir(), t.TempDir()
	// Other users must reach the checks' directories on both sides.
	for _, d := range []string{sem, hostSem, filepath.Dir(hostSem)} {
		os.Chmod(d, 0o755)
	}
	fillBig(t, sem)
	fillBig(t, hostSem)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("host-only-secret\n"), 0o600)
	esc := filepath.Join(outside, "share")
	os.Mkdir(esc, 0o755)
	// A host device node inside the share (the host's /dev/null).
	if err := unix.Mknod(filepath.Join(esc, "hostnull"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}

	script := "/probe/fsprobe semantics /sem && /probe/fsprobe escape /esc host-only-secret " + secret
	stdout, stderr, code := novm(t, "run", "--memory", "256", "--share", probe+":/probe:ro", "--share", sem+":/sem",
		"--share", esc+":/esc", "--", "/bin/sh", "-c", script)
	if code != 0 {
		t.Fatalf("guest run: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	hostOut, err := exec.Command(filepath.Join(probe, "fsprobe"), "semantics", hostSem).Output()
	if err != nil {
		t.Fatalf("host run: %v", err)
	}

	guest := map[string][]string{}
	var escapes []string
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "escape ") {
			escapes = append(escapes, line)
			continue
		}
		check, _, _ := strings.Cut(line, ":")
		guest[check] = append(guest[check], line)
	}
	host := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(hostOut)), "\n") {
		check, _, _ := strings.Cut(line, ":")
		host[check] = append(host[check], line)
	}
	t.Run("semantics", func(t *testing.T) {
		if len(host) < 10 {
			t.Fatalf("host run printed only %d checks", len(host))
		}
		for check, want := range host {
			t.Run(check, func(t *testing.T) {
				if got := strings.Join(guest[check], "\n"); got != strings.Join(want, "\n") {
					t.Errorf("guest on a share:\n%s\nhost directory:\n%s", got, strings.Join(want, "\n"))
				}
			})
		}
	})
	t.Run("escape", func(t *testing.T) {
		if len(escapes) < 7 {
			t.Fatalf("only %d escape checks ran: %q", len(escapes), escapes)
		}
		for _, line := range escapes {
			name, result, _ := strings.Cut(strings.TrimPrefix(line, "escape "), ": ")
			t.Run(name, func(t *testing.T) {
				if result != "blocked" {
					t.Error(result)
				}
			})
		}
		// Nothing outside the share changed: the secret and its directory.
		if b, _ := os.ReadFile(secret); string(b) != "host-only-secret\n" {
			t.Errorf("secret now reads %q", b)
		}
		entries, _ := os.ReadDir(outside)
		if len(entries) != 2 {
			t.Errorf("the share's parent now holds %d entries", len(entries))
		}
		for _, name := range []string{"xfifo", "xsock", "hostnull"} {
			if n, _ := unix.Llistxattr(filepath.Join(esc, name), make([]byte, 256)); n > 0 {
				t.Errorf("%s got xattrs on the host", name)
			}
		}
	})
}
