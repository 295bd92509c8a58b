package virtiofs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func (c *client) create(parent uint64, n string, mode uint32) (uint64, uint64, int32) {
	body := make([]byte, 16)
	le.PutUint32(body[0:], unix.O_RDWR)
	le.PutUint32(body[4:], mode)
	errno, out := c.call(opCreate, parent, append(body, name(n)...))
	if errno != 0 {
		return 0, 0, errno
	}
	return le.Uint64(out), le.Uint64(out[entryOutSize:]), 0
}

func (c *client) write(node, fh, off uint64, data string) int32 {
	body := make([]byte, 40)
	le.PutUint64(body[0:], fh)
	le.PutUint64(body[8:], off)
	le.PutUint32(body[16:], uint32(len(data)))
	errno, _ := c.call(opWrite, node, append(body, data...))
	return errno
}

func (c *client) mkdir(parent uint64, n string, mode uint32) int32 {
	body := make([]byte, 8)
	le.PutUint32(body, mode)
	errno, _ := c.call(opMkdir, parent, append(body, name(n)...))
	return errno
}

func TestCreateWriteTruncateRemove(t *testing.T) {
	c, dir := newShare(t, Options{})
	id, fh, errno := c.create(c.root, "new", 0o640)
	if errno != 0 {
		t.Fatalf("create: %d", errno)
	}
	if errno := c.write(id, fh, 0, "hello world"); errno != 0 {
		t.Fatalf("write: %d", errno)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new")); string(b) != "hello world" {
		t.Fatalf("host sees %q", b)
	}
	if st, _ := os.Stat(filepath.Join(dir, "new")); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	setattr := make([]byte, 88)
	le.PutUint32(setattr, fattrSize)
	le.PutUint64(setattr[16:], 5)
	if errno, _ := c.call(opSetattr, id, setattr); errno != 0 {
		t.Fatalf("truncate: %d", errno)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new")); string(b) != "hello" {
		t.Fatalf("after truncate host sees %q", b)
	}
	if errno := c.mkdir(c.root, "d", 0o755); errno != 0 {
		t.Fatalf("mkdir: %d", errno)
	}
	if errno, _ := c.call(opUnlink, c.root, name("new")); errno != 0 {
		t.Fatalf("unlink: %d", errno)
	}
	if errno, _ := c.call(opRmdir, c.root, name("d")); errno != 0 {
		t.Fatalf("rmdir: %d", errno)
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); !os.IsNotExist(err) {
		t.Fatal("directory still there")
	}
	// Names are validated for every mutating opcode too.
	if errno := c.mkdir(c.root, "..", 0o755); errno != -int32(unix.EINVAL) {
		t.Fatalf("mkdir ..: %d", errno)
	}
	if errno, _ := c.call(opUnlink, c.root, name("sub/inner")); errno != -int32(unix.EINVAL) {
		t.Fatalf("unlink sub/inner: %d", errno)
	}
}

func TestReadOnlyShareRefusesChanges(t *testing.T) {
	c, dir := newShare(t, Options{ReadOnly: true})
	if _, _, errno := c.create(c.root, "new", 0o644); errno != -int32(unix.EROFS) {
		t.Fatalf("create: %d", errno)
	}
	if errno := c.mkdir(c.root, "d", 0o755); errno != -int32(unix.EROFS) {
		t.Fatalf("mkdir: %d", errno)
	}
	id, _ := c.lookup(c.root, "hello.txt")
	open := make([]byte, 8)
	le.PutUint32(open, unix.O_WRONLY)
	if errno, _ := c.call(opOpen, id, open); errno != -int32(unix.EROFS) {
		t.Fatalf("open for write: %d", errno)
	}
	// O_RDONLY|O_TRUNC truncates on Linux: refused too.
	le.PutUint32(open, unix.O_RDONLY|unix.O_TRUNC)
	if errno, _ := c.call(opOpen, id, open); errno != -int32(unix.EROFS) {
		t.Fatalf("open read-only with O_TRUNC: %d", errno)
	}
	if st, _ := os.Stat(filepath.Join(dir, "hello.txt")); st.Size() == 0 {
		t.Fatal("a read-only share's file was truncated")
	}
}

// Requests run with the guest caller's fsuid/fsgid: the host kernel
// checks the caller's permissions, owns new files by the caller and clears
// SUID when someone else writes.
func TestCallerCredentials(t *testing.T) {
	c, dir := newShare(t, Options{})
	os.Mkdir(filepath.Join(dir, "mine"), 0o755)
	os.Chown(filepath.Join(dir, "mine"), 1000, 1000)
	os.Chmod(dir, 0o755)
	suid := filepath.Join(dir, "suid")
	os.WriteFile(suid, []byte("x"), 0o777)
	os.Chmod(suid, 0o4777)
	c.uid, c.gid = 1000, 1000
	if errno := c.mkdir(c.root, "not-mine", 0o755); errno != -int32(unix.EACCES) {
		t.Fatalf("mkdir in a root-owned directory as uid 1000: %d", errno)
	}
	mine, _ := c.lookup(c.root, "mine")
	if errno := c.mkdir(mine, "sub", 0o755); errno != 0 {
		t.Fatalf("mkdir in own directory: %d", errno)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(dir, "mine", "sub"), &st)
	if st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("new directory owned by %d:%d", st.Uid, st.Gid)
	}
	id, _ := c.lookup(c.root, "suid")
	open := make([]byte, 8)
	le.PutUint32(open, unix.O_WRONLY)
	errno, out := c.call(opOpen, id, open)
	if errno != 0 {
		t.Fatalf("open suid file for write: %d", errno)
	}
	if errno := c.write(id, le.Uint64(out), 0, "y"); errno != 0 {
		t.Fatalf("write: %d", errno)
	}
	unix.Stat(suid, &st)
	if st.Mode&unix.S_ISUID != 0 {
		t.Fatal("SUID survived a write by another user")
	}
	// The worker's identity is restored: root can do what uid 1000 cannot.
	c.uid, c.gid = 0, 0
	if errno := c.mkdir(c.root, "root-made", 0o755); errno != 0 {
		t.Fatalf("mkdir as root after a uid 1000 request: %d", errno)
	}
}
