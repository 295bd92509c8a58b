package agent

// This file gives each root filesystem one mount namespace, pivoted into
// it, that all of its processes share (as processes exec'd into a runc
// container join the container's). Processes are started from an OS
// thread that has joined the namespace, so nothing has to run between
// fork and exec. The helper that used to do that was the agent binary
// itself, and starting a Go binary costs seconds of emulated guest kernel
// on nested hosts.

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// onThread runs fn on an OS thread of its own that is discarded after,
// so fn may change the thread's namespaces, root, working directory and
// no_new_privs without affecting the rest of the agent.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine.
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// newMountNS makes the mount namespace for a root filesystem mounted at
// root: a copy of the agent's whose mounts are slaves (shares the agent
// mounts later reach it; mounts made inside stay inside), pivoted into
// root. The returned file keeps the namespace alive.
func newMountNS(root string) (*os.File, error) {
	var ns *os.File
	err := onThread(func() error {
		// CLONE_FS: root and cwd become this thread's own, so the pivot
		// below moves no other thread of the agent.
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		fd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ns = os.NewFile(uintptr(fd), "mntns:"+root)
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return fmt.Errorf("make mounts slaves: %w", err)
		}
		if err := unix.Chdir(root); err != nil {
			return err
		}
		// pivot_root(".", ".") stacks the old root on the new one;
		// detaching "." then drops it (no temporary directory needed).
		if err := unix.PivotRoot(".", "."); err != nil {
			return fmt.Errorf("pivot_root into %s: %w", root, err)
		}
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach old root: %w", err)
		}
		return nil
	})
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		return nil, err
	}
	return ns, nil
}

// inMountNS runs fn on a thread of its own (see onThread) that has joined
// ns, or stays in the agent's namespace for nil.
func inMountNS(ns *os.File, fn func() error) error {
	return onThread(func() error {
		if ns != nil {
			if err := enterMountNS(ns); err != nil {
				return err
			}
		}
		return fn()
	})
}

// enterMountNS joins ns on the calling thread, which must be locked and
// discarded after (see onThread): its root and working directory become
// the namespace's root.
func enterMountNS(ns *os.File) error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return status.Errorf(codes.Internal, "unshare fs: %v", err)
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
		return status.Errorf(codes.Internal, "join the rootfs's mount namespace: %v", err)
	}
	return nil
}
