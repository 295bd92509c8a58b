package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecHelperArg, as the agent binary's first argument, makes it the exec
// helper instead of PID 1. os/exec cannot run code between fork and exec,
// so a process that gets a root filesystem is started as this helper in a
// new mount namespace; it pivots into the root, drops to the process's
// credentials and execs the command.
const ExecHelperArg = "novm-exec-helper"

// execHelperEnv carries the helper's instructions (the target's own
// environment is passed to execve explicitly, without it).
const execHelperEnv = "NOVM_EXEC_HELPER"

type execSpec struct {
	Root    string
	Cwd     string
	Path    string
	Args    []string
	Env     []string
	UID     uint32
	GID     uint32
	Groups  []uint32
	NoNewPr bool
}

// ExecHelper runs in the child; it never returns. Failures exit 126 with
// the reason on stderr, which is the process's stderr stream.
func ExecHelper() {
	var spec execSpec
	if err := json.Unmarshal([]byte(os.Getenv(execHelperEnv)), &spec); err != nil {
		fail("bad exec spec: %v", err)
	}
	if err := pivotInto(spec.Root); err != nil {
		fail("%v", err)
	}
	// A working directory the image names but its rootfs lacks is
	// created, as runc does.
	if err := os.MkdirAll(spec.Cwd, 0o755); err != nil {
		fail("working directory %s: %v", spec.Cwd, err)
	}
	if err := os.Chdir(spec.Cwd); err != nil {
		fail("working directory %s: %v", spec.Cwd, err)
	}
	groups := make([]int, len(spec.Groups))
	for i, g := range spec.Groups {
		groups[i] = int(g)
	}
	// Go applies these to every thread of the helper.
	if err := syscall.Setgroups(groups); err != nil {
		fail("setgroups: %v", err)
	}
	if err := syscall.Setgid(int(spec.GID)); err != nil {
		fail("setgid %d: %v", spec.GID, err)
	}
	if err := syscall.Setuid(int(spec.UID)); err != nil {
		fail("setuid %d: %v", spec.UID, err)
	}
	if spec.NoNewPr {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fail("no_new_privs: %v", err)
		}
	}
	err := syscall.Exec(spec.Path, spec.Args, spec.Env)
	code := 126
	if os.IsNotExist(err) {
		code = 127
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", spec.Path, err)
	os.Exit(code)
}

// pivotInto makes root the root of this new mount namespace, so the
// agent's own tree is out of the process's sight. The namespace is a
// slave of the agent's: shares the agent mounts in root later reach the
// process, nothing the process mounts reaches the agent.
func pivotInto(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make mounts slaves: %w", err)
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// "." then drops it (the trick runc uses, no temporary directory).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "novm: "+format+"\n", a...)
	os.Exit(126)
}
