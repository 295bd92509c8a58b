package main

// The escape suite: what a root process in the guest can try, through the
// guest kernel, to reach host files outside a share. The host resolves
// nothing the guest names except one component at a time beneath the
// share, so every attempt must end in an error or in a guest-side file;
// an attempt that returns the host's secret is an escape.

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

type escapeCheck struct {
	name string
	// run returns "blocked" or what escaped.
	run func(share, secret, hostSecret string) string
}

var escapeChecks = []escapeCheck{
	{"dotdot", escapeDotdot},
	{"absolute-names", escapeAbsolute},
	{"symlink-swap", escapeSymlinkSwap},
	{"proc-self-fd", escapeProcFD},
	{"device-nodes", escapeDevices},
	{"hardlink-outside", escapeHardlink},
	{"xattr-special", escapeXattr},
}

// leaked reports which of paths reads back the secret.
func leaked(secret string, paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), secret) {
			return "ESCAPED: read the host's secret through " + p
		}
	}
	return "blocked"
}

func escapeDotdot(share, secret, _ string) string {
	paths := []string{share + "/../secret", share + "/../../secret", share + "/./../secret"}
	// Relative to a descriptor of the share, too.
	if fd, err := unix.Open(share, unix.O_PATH|unix.O_DIRECTORY, 0); err == nil {
		paths = append(paths, fmt.Sprintf("/proc/self/fd/%d/../secret", fd))
		for _, rel := range []string{"../secret", "../../secret"} {
			if f, err := unix.Openat(fd, rel, unix.O_RDONLY, 0); err == nil {
				unix.Close(f)
				paths = append(paths, fmt.Sprintf("/proc/self/fd/%d/%s", fd, rel))
			}
		}
	}
	return leaked(secret, paths...)
}

// escapeAbsolute plants symlinks naming the secret's host path: the guest
// resolves them in its own tree, the host never follows them.
func escapeAbsolute(share, secret, hostSecret string) string {
	os.Symlink(hostSecret, share+"/abs")
	os.Symlink("../secret", share+"/rel")
	os.Symlink("/", share+"/root")
	return leaked(secret, share+"/abs", share+"/rel", share+"/root"+hostSecret)
}

// escapeSymlinkSwap swaps a directory with a symlink to the secret's host
// directory while another thread opens a file through it.
func escapeSymlinkSwap(share, secret, hostSecret string) string {
	dir := share + "/swap"
	os.Mkdir(dir, 0o755)
	os.WriteFile(dir+"/secret", []byte("decoy"), 0o644)
	os.Symlink(hostSecret[:strings.LastIndex(hostSecret, "/")], share+"/swap-link")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ {
			unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, share+"/swap-link", unix.RENAME_EXCHANGE)
		}
	}()
	result := "blocked"
	for i := 0; i < 300 && result == "blocked"; i++ {
		result = leaked(secret, dir+"/secret")
	}
	<-done
	return result
}

func escapeProcFD(share, secret, hostSecret string) string {
	os.WriteFile(share+"/f", []byte("x"), 0o644)
	fd, err := unix.Open(share+"/f", unix.O_RDONLY, 0)
	if err != nil {
		return "setup failed: " + errName(err)
	}
	defer unix.Close(fd)
	os.Symlink(fmt.Sprintf("/proc/self/fd/%d", fd), share+"/pfd")
	os.Symlink("/proc/self/cwd", share+"/pcwd")
	os.Symlink("/proc/1/root"+hostSecret, share+"/proot")
	return leaked(secret, share+"/pfd/../secret", share+"/pcwd"+hostSecret, share+"/proot",
		fmt.Sprintf("/proc/self/fd/%d/../../secret", fd))
}

// escapeDevices tries to make device nodes in the share and to open the
// one the host put there (share/hostnull, the host's /dev/null).
func escapeDevices(share, _, _ string) string {
	for _, dev := range []struct {
		name string
		mode uint32
		dev  int
	}{{"null", unix.S_IFCHR, int(unix.Mkdev(1, 3))}, {"mem", unix.S_IFCHR, int(unix.Mkdev(1, 1))}, {"disk", unix.S_IFBLK, int(unix.Mkdev(8, 0))}} {
		if err := unix.Mknod(share+"/"+dev.name, dev.mode|0o666, dev.dev); err == nil {
			return "ESCAPED: made device node " + dev.name
		}
	}
	if fd, err := unix.Open(share+"/hostnull", unix.O_RDWR, 0); err == nil {
		unix.Close(fd)
		return "ESCAPED: opened the host's device node"
	}
	return "blocked"
}

func escapeHardlink(share, secret, hostSecret string) string {
	for _, src := range []string{share + "/../secret", hostSecret, "/etc/passwd", "/proc/self/exe"} {
		if unix.Link(src, share+"/hard") == nil {
			if r := leaked(secret, share+"/hard"); r != "blocked" {
				return r
			}
			os.Remove(share + "/hard")
		}
	}
	return "blocked"
}

// escapeXattr sets xattrs on a FIFO, a socket, a symlink and the host's
// device node: the host must refuse them all (reaching them through /proc
// would open the node or follow the link on the host).
func escapeXattr(share, _, _ string) string {
	unix.Mkfifo(share+"/xfifo", 0o644)
	unix.Mknod(share+"/xsock", unix.S_IFSOCK|0o644, 0)
	os.Symlink("/etc/passwd", share+"/xlink")
	for _, p := range []string{"/xfifo", "/xsock", "/hostnull"} {
		if unix.Setxattr(share+p, "user.escape", []byte("x"), 0) == nil {
			return "ESCAPED: xattr set on " + p
		}
	}
	if unix.Lsetxattr(share+"/xlink", "trusted.escape", []byte("x"), 0) == nil {
		return "ESCAPED: xattr set on a symlink"
	}
	return "blocked"
}
