package agent

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

// rootfsDir is where the agent mounts virtio-fs shares used as roots.
const rootfsDir = "/run/novm/rootfs"

var (
	rootfsMu      sync.Mutex
	mountedRootfs = map[string]string{}
)

// rootfsMounts are mounted inside a root filesystem share so a process
// chrooted into it finds what a container expects.
var rootfsMounts = []mount{
	{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
	{"devtmpfs", "dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"tmpfs", "tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// mountRootfs mounts the virtio-fs share tag (once) with its pseudo
// filesystems and returns its directory.
func mountRootfs(tag string) (string, error) {
	rootfsMu.Lock()
	defer rootfsMu.Unlock()
	if dir, ok := mountedRootfs[tag]; ok {
		return dir, nil
	}
	if !validTag(tag) {
		return "", status.Errorf(codes.InvalidArgument, "bad rootfs tag %q", tag)
	}
	dir := filepath.Join(rootfsDir, tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", status.Errorf(codes.Internal, "%v", err)
	}
	if err := unix.Mount(tag, dir, "virtiofs", 0, ""); err != nil {
		return "", status.Errorf(codes.FailedPrecondition, "mount virtio-fs share %q: %v", tag, err)
	}
	for _, m := range rootfsMounts {
		target := filepath.Join(dir, m.target)
		if st, err := os.Stat(target); err != nil || !st.IsDir() {
			return "", status.Errorf(codes.FailedPrecondition, "rootfs %q has no /%s directory to mount %s on", tag, m.target, m.fstype)
		}
		if err := unix.Mount(m.source, target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return "", status.Errorf(codes.Internal, "mount %s in rootfs %q: %v", m.fstype, tag, err)
		}
	}
	mountedRootfs[tag] = dir
	return dir, nil
}

func validTag(tag string) bool {
	if tag == "" || len(tag) > 36 || tag == "." || tag == ".." {
		return false
	}
	for _, c := range tag {
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

var mountedShares = map[string]bool{}

// mountShares mounts virtio-fs shares at their targets inside root,
// creating missing mount points. Each target is mounted once per VM.
func mountShares(root string, mounts []*api.ShareMount) error {
	rootfsMu.Lock()
	defer rootfsMu.Unlock()
	for _, m := range mounts {
		if !validTag(m.Tag) || !filepath.IsAbs(m.Target) {
			return status.Errorf(codes.InvalidArgument, "bad share mount %q on %q", m.Tag, m.Target)
		}
		target := inRoot(root, m.Target)
		if mountedShares[target] {
			continue
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return status.Errorf(codes.FailedPrecondition, "mount point %s: %v", m.Target, err)
		}
		var flags uintptr
		if m.Readonly {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount(m.Tag, target, "virtiofs", flags, ""); err != nil {
			return status.Errorf(codes.FailedPrecondition, "mount share %q on %s: %v", m.Tag, m.Target, err)
		}
		mountedShares[target] = true
	}
	return nil
}
