package agent

// This file mounts what the host shares: the virtio-fs device's root (one
// entry per share) once, each root filesystem as a bind mount of its
// share with the pseudo filesystems a container expects inside, and
// further shares as bind mounts at their targets. Root filesystems are
// shared mounts, so a share mounted in one later reaches the processes
// already running there (they share the rootfs's mount namespace, a slave
// of the agent's; see mountns.go).

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/novm/novm/agent/api"
)

const (
	// sharesDir is where the virtio-fs device is mounted.
	sharesDir = "/run/novm/shares"
	// rootfsDir holds the root filesystems (each the root of its own
	// mount namespace, see mountns.go).
	rootfsDir = "/run/novm/rootfs"
)

var (
	mountMu       sync.Mutex
	sharesMounted bool
	mountedRootfs = map[string]rootfsMount{}
)

// rootfsMount is a mounted root filesystem: its directory in the agent's
// namespace and its own mount namespace.
type rootfsMount struct {
	dir string
	ns  *os.File
}

// finishRootfs creates the mount namespace of a rootfs whose mounts are
// in place and records it. Callers hold mountMu.
func finishRootfs(share, dir string) error {
	ns, err := newMountNS(dir)
	if err != nil {
		return status.Errorf(codes.Internal, "rootfs %q: %v", share, err)
	}
	mountedRootfs[share] = rootfsMount{dir: dir, ns: ns}
	return nil
}

// mountedRoot returns the directory of a mounted rootfs ("" for "", the
// guest's own root). Callers hold mountMu.
func mountedRoot(share string) (string, error) {
	if share == "" {
		return "", nil
	}
	r, ok := mountedRootfs[share]
	if !ok {
		return "", status.Errorf(codes.NotFound, "rootfs %q is not mounted", share)
	}
	return r.dir, nil
}

// rootfsNamespace returns the mount namespace of a mounted rootfs (nil
// for "", the agent's own).
func rootfsNamespace(share string) *os.File {
	mountMu.Lock()
	defer mountMu.Unlock()
	return mountedRootfs[share].ns
}

// rootfsMounts are mounted inside a root filesystem so a process pivoted
// into it finds what a container expects.
var rootfsMounts = []mount{
	{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
	{"devtmpfs", "dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
	{"tmpfs", "dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// shareSource returns the share's path under the mounted device root.
// Callers hold mountMu.
func shareSource(name string) (string, error) {
	if !validName(name) {
		return "", status.Errorf(codes.InvalidArgument, "bad share name %q", name)
	}
	if !sharesMounted {
		if err := os.MkdirAll(sharesDir, 0o700); err != nil {
			return "", status.Errorf(codes.Internal, "%v", err)
		}
		if err := unix.Mount(api.SharesTag, sharesDir, "virtiofs", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return "", status.Errorf(codes.FailedPrecondition, "mount virtio-fs %q: %v", api.SharesTag, err)
		}
		sharesMounted = true
	}
	src := filepath.Join(sharesDir, name)
	if _, err := os.Lstat(src); err != nil {
		return "", status.Errorf(codes.NotFound, "share %q: %v", name, err)
	}
	return src, nil
}

// rootfsLocked mounts share (once) as a root filesystem with the default
// pseudo filesystems and returns its directory ("" for no share). Callers
// hold mountMu.
func rootfsLocked(share string) (string, error) {
	if share == "" {
		return "", nil
	}
	if r, ok := mountedRootfs[share]; ok {
		return r.dir, nil
	}
	dir, err := bindRootfs(share)
	if err != nil {
		return "", err
	}
	for _, m := range rootfsMounts {
		target := filepath.Join(dir, m.target)
		if filepath.Dir(m.target) == "dev" {
			os.MkdirAll(target, 0o755) // inside the guest's devtmpfs
		}
		if st, err := os.Stat(target); err != nil || !st.IsDir() {
			return "", status.Errorf(codes.FailedPrecondition, "rootfs %q has no /%s directory to mount %s on", share, m.target, m.fstype)
		}
		if err := unix.Mount(m.source, target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return "", status.Errorf(codes.Internal, "mount %s in rootfs %q: %v", m.fstype, share, err)
		}
	}
	if err := finishRootfs(share, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// bindRootfs bind-mounts a share as a shared mount under rootfsDir.
// Callers hold mountMu.
func bindRootfs(share string) (string, error) {
	src, err := shareSource(share)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(rootfsDir, share)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", status.Errorf(codes.Internal, "%v", err)
	}
	if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		return "", status.Errorf(codes.FailedPrecondition, "mount rootfs %q: %v", share, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return "", status.Errorf(codes.Internal, "make rootfs %q shared: %v", share, err)
	}
	return dir, nil
}

func validName(name string) bool {
	if name == "" || len(name) > 255 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return false
		}
	}
	return true
}

// inRoot is path as seen from inside root.
func inRoot(root, path string) string {
	if root == "" {
		return path
	}
	return filepath.Join(root, filepath.Clean("/"+path))
}

// mountedShares records the targets mounted, so a process that repeats
// its predecessor's mounts reuses them.
var mountedShares = map[string]bool{}

// mountShares mounts the rootfs share (if any, once) and shares at their
// targets inside it (inside the guest's root without one), and returns
// the rootfs directory.
func mountShares(rootfs string, mounts []*api.ShareMount) (string, error) {
	mountMu.Lock()
	defer mountMu.Unlock()
	root, err := rootfsLocked(rootfs)
	if err != nil {
		return "", err
	}
	for _, m := range mounts {
		if err := bindShare(root, m); err != nil {
			return "", err
		}
	}
	return root, nil
}

// bindShare bind-mounts one share, creating its mount point (a directory,
// or an empty file for a file share). Callers hold mountMu.
func bindShare(root string, m *api.ShareMount) error {
	if m == nil || !filepath.IsAbs(m.Target) {
		return status.Errorf(codes.InvalidArgument, "share mount needs an absolute target")
	}
	target := inRoot(root, m.Target)
	if mountedShares[target] {
		return nil
	}
	src, err := shareSource(m.Share)
	if err != nil {
		return err
	}
	st, err := os.Stat(src)
	if err != nil {
		return status.Errorf(codes.NotFound, "share %q: %v", m.Share, err)
	}
	if st.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "mount point %s: %v", m.Target, err)
	}
	if m.Readonly {
		// A remount after the bind would not reach the copies already
		// propagated to running processes: bind a read-only mount instead.
		if src, err = readOnlyBind(src); err != nil {
			return status.Errorf(codes.Internal, "read-only mount of share %q: %v", m.Share, err)
		}
		defer unix.Unmount(src, unix.MNT_DETACH)
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return status.Errorf(codes.FailedPrecondition, "mount share %q on %s: %v", m.Share, m.Target, err)
	}
	mountedShares[target] = true
	return nil
}

// readOnlyBind bind-mounts src read-only at a private staging path.
func readOnlyBind(src string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	staging := "/run/novm/staging-file"
	if st.IsDir() {
		staging = "/run/novm/staging-dir"
		err = os.MkdirAll(staging, 0o700)
	} else {
		err = os.WriteFile(staging, nil, 0o600)
	}
	if err != nil {
		return "", err
	}
	if err := unix.Mount(src, staging, "", unix.MS_BIND, ""); err != nil {
		return "", err
	}
	if err := unix.Mount("", staging, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unix.Unmount(staging, unix.MNT_DETACH)
		return "", err
	}
	return staging, nil
}

// unbindShare unmounts a share's target; a busy mount stays (EBUSY).
func unbindShare(rootfs, path string) error {
	mountMu.Lock()
	defer mountMu.Unlock()
	root, err := mountedRoot(rootfs)
	if err != nil {
		return err
	}
	target := inRoot(root, path)
	if !mountedShares[target] {
		return status.Errorf(codes.NotFound, "no share mounted at %s", path)
	}
	if err := unix.Unmount(target, 0); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return status.Errorf(codes.FailedPrecondition, "share at %s is busy (open files or a working directory in it)", path)
		}
		return status.Errorf(codes.Internal, "unmount %s: %v", path, err)
	}
	delete(mountedShares, target)
	return nil
}
