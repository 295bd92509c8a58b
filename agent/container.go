package agent

// This file prepares a root filesystem the way a container spec asks: the
// spec's own proc, sysfs, tmpfs, devpts, mqueue and cgroup mounts in its
// order, and a minimal /dev (a tmpfs with the standard nodes, as runc
// makes) instead of the guest's devtmpfs, which holds the agent's own
// console.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/novm/novm/agent/api"
)

// prepareRootfs mounts a rootfs share with the given guest mounts.
func prepareRootfs(req *api.PrepareRootfsRequest) error {
	mountMu.Lock()
	defer mountMu.Unlock()
	if _, ok := mountedRootfs[req.Rootfs]; ok {
		return status.Errorf(codes.AlreadyExists, "rootfs %q is already mounted", req.Rootfs)
	}
	if req.Hostname != "" {
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			return status.Errorf(codes.InvalidArgument, "hostname %q: %v", req.Hostname, err)
		}
	}
	root, err := bindRootfs(req.Rootfs)
	if err != nil {
		return err
	}
	mounts := req.Mounts
	if !hasTarget(mounts, "/dev") {
		dev := &api.GuestMount{Type: "tmpfs", Source: "tmpfs", Target: "/dev",
			Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}}
		mounts = append([]*api.GuestMount{dev}, mounts...)
	}
	for _, m := range mounts {
		if err := mountGuest(root, m); err != nil {
			unix.Unmount(root, unix.MNT_DETACH)
			return err
		}
	}
	return finishRootfs(req.Rootfs, root)
}

func hasTarget(mounts []*api.GuestMount, target string) bool {
	for _, m := range mounts {
		if filepath.Clean(m.Target) == target {
			return true
		}
	}
	return false
}

// mountGuest mounts one guest file system inside root.
func mountGuest(root string, m *api.GuestMount) error {
	if !filepath.IsAbs(m.Target) {
		return status.Errorf(codes.InvalidArgument, "mount target %q is not absolute", m.Target)
	}
	target := inRoot(root, m.Target)
	flags, data := mountOptions(m.Options)
	fstype, source := m.Type, m.Source
	if source == "" {
		source = fstype
	}
	if fstype == "cgroup" {
		// A v1 hierarchy per controller is the host's business; inside
		// the VM the container sees the guest's unified hierarchy.
		fstype, data = "cgroup2", ""
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return status.Errorf(codes.FailedPrecondition, "mount point %s: %v", m.Target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		if fstype == "cgroup2" {
			fmt.Fprintf(os.Stderr, "novm-agent: mount cgroup2 at %s: %v (left out)\n", m.Target, err)
			return nil
		}
		return status.Errorf(codes.FailedPrecondition, "mount %s on %s: %v", m.Type, m.Target, err)
	}
	if filepath.Clean(m.Target) == "/dev" && fstype == "tmpfs" {
		if err := populateDev(target); err != nil {
			return status.Errorf(codes.Internal, "populate /dev: %v", err)
		}
	}
	return nil
}

// mountFlags are the OCI mount options that are mount(2) flags; the
// value says whether the option sets (true) or clears the flag.
var mountFlags = map[string]struct {
	set  bool
	flag uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"dirsync": {true, unix.MS_DIRSYNC}, "mand": {true, unix.MS_MANDLOCK}, "nomand": {false, unix.MS_MANDLOCK},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "diratime": {false, unix.MS_NODIRATIME},
	"relatime": {true, unix.MS_RELATIME}, "norelatime": {false, unix.MS_RELATIME},
	"strictatime": {true, unix.MS_STRICTATIME}, "nostrictatime": {false, unix.MS_STRICTATIME},
}

// ignoredOptions are OCI options with no meaning for a fresh kernel file
// system mount in the guest.
var ignoredOptions = map[string]bool{
	"bind": true, "rbind": true, "defaults": true, "remount": true,
	"private": true, "rprivate": true, "shared": true, "rshared": true,
	"slave": true, "rslave": true, "unbindable": true, "runbindable": true,
}

// mountOptions splits OCI options into mount(2) flags and the data string.
func mountOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.set {
				flags |= f.flag
			} else {
				flags &^= f.flag
			}
			continue
		}
		if !ignoredOptions[o] {
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

// devNodes are the devices every container gets (the OCI spec's default
// devices).
var devNodes = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

var devLinks = [][2]string{
	{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
}

// populateDev fills a fresh /dev tmpfs.
func populateDev(dev string) error {
	for _, n := range devNodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o666); err != nil { // past the umask
			return err
		}
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// signalAll sends sig to every process whose root directory is the
// rootfs share's (the guest's own root for ""), except the agent: the
// container's processes, wherever they were started from.
func signalAll(rootfs string, sig unix.Signal) error {
	mountMu.Lock()
	root, err := mountedRoot(rootfs)
	mountMu.Unlock()
	if err != nil {
		return err
	}
	if root == "" {
		root = "/"
	}
	var want unix.Stat_t
	if err := unix.Stat(root, &want); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "root"), &st) != nil {
			continue // gone, or a kernel thread
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			unix.Kill(pid, sig)
		}
	}
	return nil
}
