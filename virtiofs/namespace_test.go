package virtiofs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func renameBody(newdir uint64, flags uint32, old, new string) []byte {
	b := make([]byte, 16)
	le.PutUint64(b, newdir)
	le.PutUint32(b[8:], flags)
	return append(append(b, name(old)...), name(new)...)
}

func TestRenameVariants(t *testing.T) {
	c, dir := newShare(t, Options{})
	sub, _ := c.lookup(c.root, "sub")
	if errno, _ := c.call(opRename2, c.root, renameBody(sub, 0, "hello.txt", "moved")); errno != 0 {
		t.Fatalf("rename: %d", errno)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "moved")); err != nil {
		t.Fatal(err)
	}
	if errno, _ := c.call(opRename2, sub, renameBody(sub, unix.RENAME_NOREPLACE, "moved", "inner")); errno != -int32(unix.EEXIST) {
		t.Fatalf("NOREPLACE onto an existing name: %d", errno)
	}
	if errno, _ := c.call(opRename2, sub, renameBody(sub, unix.RENAME_EXCHANGE, "moved", "inner")); errno != 0 {
		t.Fatalf("EXCHANGE: %d", errno)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "inner")); string(b) != "hello, guest\n" {
		t.Fatalf("after exchange inner = %q", b)
	}
	if errno, _ := c.call(opRename2, sub, renameBody(sub, unix.RENAME_WHITEOUT, "moved", "x")); errno != -int32(unix.EINVAL) {
		t.Fatalf("WHITEOUT: %d", errno)
	}
	for _, bad := range [][2]string{{"moved", "../x"}, {"..", "x"}, {"moved", "a/b"}} {
		if errno, _ := c.call(opRename2, sub, renameBody(sub, 0, bad[0], bad[1])); errno != -int32(unix.EINVAL) {
			t.Errorf("rename %q -> %q: %d", bad[0], bad[1], errno)
		}
	}
}

func TestSymlinkLinkMknod(t *testing.T) {
	c, dir := newShare(t, Options{})
	if errno, _ := c.call(opSymlink, c.root, append(name("ln"), name("/etc/shadow")...)); errno != 0 {
		t.Fatalf("symlink: %d", errno)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "ln")); target != "/etc/shadow" {
		t.Fatalf("link target %q", target)
	}
	hello, _ := c.lookup(c.root, "hello.txt")
	body := make([]byte, 8)
	le.PutUint64(body, hello)
	if errno, _ := c.call(opLink, c.root, append(body, name("hard")...)); errno != 0 {
		t.Fatalf("link: %d", errno)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(dir, "hard"), &st)
	if st.Nlink != 2 {
		t.Fatalf("nlink %d", st.Nlink)
	}
	mk := func(n string, mode uint32) int32 {
		b := make([]byte, 16)
		le.PutUint32(b, mode)
		errno, _ := c.call(opMknod, c.root, append(b, name(n)...))
		return errno
	}
	if errno := mk("fifo", unix.S_IFIFO|0o644); errno != 0 {
		t.Fatalf("mkfifo: %d", errno)
	}
	for _, mode := range []uint32{unix.S_IFCHR | 0o666, unix.S_IFBLK | 0o666} {
		if errno := mk("dev", mode); errno != -int32(unix.EPERM) {
			t.Fatalf("device node mode %o: %d", mode, errno)
		}
	}
}

func TestXattrsAndFileOps(t *testing.T) {
	c, dir := newShare(t, Options{})
	id, fh, _ := c.create(c.root, "f", 0o644)
	set := make([]byte, 8)
	le.PutUint32(set, 5)
	set = append(append(set, name("user.novm")...), "value"...)
	if errno, _ := c.call(opSetxattr, id, set); errno != 0 {
		t.Fatalf("setxattr: %d (filesystem without user xattrs?)", errno)
	}
	get := make([]byte, 8)
	le.PutUint32(get, 64)
	if errno, v := c.call(opGetxattr, id, append(get, name("user.novm")...)); errno != 0 || string(v) != "value" {
		t.Fatalf("getxattr: %d %q", errno, v)
	}
	if errno, v := c.call(opGetxattr, id, append(make([]byte, 8), name("user.novm")...)); errno != 0 || le.Uint32(v) != 5 {
		t.Fatalf("getxattr size probe: %d % x", errno, v)
	}
	if errno, _ := c.call(opRemovexattr, id, name("user.novm")); errno != 0 {
		t.Fatalf("removexattr: %d", errno)
	}
	// No xattrs through a symlink: that would reach its target.
	link, _ := c.lookup(c.root, "escape")
	if errno, _ := c.call(opGetxattr, link, append(get, name("user.x")...)); errno != -int32(unix.EPERM) {
		t.Fatalf("getxattr on a symlink: %d", errno)
	}
	c.write(id, fh, 0, "0123456789")
	fsync := make([]byte, 16)
	le.PutUint64(fsync, fh)
	if errno, _ := c.call(opFsync, id, fsync); errno != 0 {
		t.Fatalf("fsync: %d", errno)
	}
	seek := make([]byte, 24)
	le.PutUint64(seek, fh)
	le.PutUint32(seek[16:], unix.SEEK_END)
	if errno, off := c.call(opLseek, id, seek); errno != 0 || le.Uint64(off) != 10 {
		t.Fatalf("lseek: %d %v", errno, off)
	}
	cfr := make([]byte, 56)
	le.PutUint64(cfr[0:], fh)
	le.PutUint64(cfr[8:], 2)
	le.PutUint64(cfr[24:], fh)
	le.PutUint64(cfr[32:], 10)
	le.PutUint64(cfr[40:], 3)
	if errno, out := c.call(opCopyFileRange, id, cfr); errno != 0 || le.Uint32(out) != 3 {
		t.Fatalf("copy_file_range: %d", errno)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "0123456789234" {
		t.Fatalf("file = %q", b)
	}
}
