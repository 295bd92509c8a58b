package virtiofs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// readdirNames lists a directory node through OPENDIR + READDIR.
func (c *client) readdirNames(dir uint64) []string {
	c.t.Helper()
	errno, out := c.call(opOpendir, dir, make([]byte, 8))
	if errno != 0 {
		c.t.Fatalf("opendir: %d", errno)
	}
	rd := make([]byte, 40)
	le.PutUint64(rd, le.Uint64(out))
	le.PutUint32(rd[16:], 1<<16)
	errno, data := c.call(opReaddir, dir, rd)
	if errno != 0 {
		c.t.Fatalf("readdir: %d", errno)
	}
	var names []string
	for len(data) >= direntSize {
		n := int(le.Uint32(data[16:]))
		names = append(names, string(data[24:24+n]))
		data = data[direntSize+(n+7)&^7:]
	}
	return names
}

func TestSharesComeAndGo(t *testing.T) {
	c, dir := newShare(t, Options{})
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "f"), []byte("other"), 0o644)
	if err := c.s.AddShare("ro", other, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.s.AddShare("file", filepath.Join(dir, "hello.txt"), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := c.s.AddShare("ro", other, Options{}); err == nil {
		t.Fatal("a second share under the same name was accepted")
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if err := c.s.AddShare(bad, other, Options{}); err == nil {
			t.Errorf("share name %q accepted", bad)
		}
	}
	if got := joinNames(c.readdirNames(rootID)); got != joinNames([]string{".", "..", "file", "ro", "share"}) {
		t.Fatalf("root lists %q", got)
	}

	// The root itself cannot be changed.
	if errno := c.mkdir(rootID, "x", 0o755); errno != -int32(unix.EROFS) {
		t.Fatalf("mkdir in the root: %d", errno)
	}
	// Read-only is per share.
	ro, _ := c.lookup(rootID, "ro")
	if errno := c.mkdir(ro, "x", 0o755); errno != -int32(unix.EROFS) {
		t.Fatalf("mkdir in a read-only share: %d", errno)
	}
	// Nothing moves or links across shares.
	f, _ := c.lookup(ro, "f")
	body := make([]byte, 8)
	le.PutUint64(body, f)
	if errno, _ := c.call(opLink, c.root, append(body, name("stolen")...)); errno != -int32(unix.EXDEV) {
		t.Fatalf("link across shares: %d", errno)
	}
	rb := make([]byte, 8)
	le.PutUint64(rb, rootID)
	if errno, _ := c.call(opRename, c.root, append(rb, append(name("hello.txt"), name("x")...)...)); errno != -int32(unix.EXDEV) {
		t.Fatalf("rename into the root: %d", errno)
	}
	// A file share is a regular file at the root.
	file, errno := c.lookup(rootID, "file")
	if errno != 0 {
		t.Fatal(errno)
	}
	errno, attrOut := c.call(opGetattr, file, make([]byte, 16))
	if errno != 0 || le.Uint32(attrOut[16+60:])&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("file share getattr: %d", errno)
	}

	// Removal: gone from the root, its nodes and open files stale.
	errno, openOut := c.call(opOpen, f, make([]byte, 8))
	if errno != 0 {
		t.Fatal(errno)
	}
	if err := c.s.RemoveShare("ro"); err != nil {
		t.Fatal(err)
	}
	if err := c.s.RemoveShare("ro"); err == nil {
		t.Fatal("removed a share twice")
	}
	if _, errno := c.lookup(rootID, "ro"); errno != -int32(unix.ENOENT) {
		t.Fatalf("lookup of a removed share: %d", errno)
	}
	if errno, _ := c.call(opGetattr, f, make([]byte, 16)); errno != -int32(unix.ENOENT) {
		t.Fatalf("node of a removed share: %d", errno)
	}
	read := make([]byte, 40)
	le.PutUint64(read, le.Uint64(openOut))
	le.PutUint32(read[16:], 10)
	if errno, _ := c.call(opRead, f, read); errno != -int32(unix.EBADF) {
		t.Fatalf("read of a file in a removed share: %d", errno)
	}
	// The other shares are untouched, and the name can be reused.
	if _, errno := c.lookup(c.root, "hello.txt"); errno != 0 {
		t.Fatalf("remaining share: %d", errno)
	}
	if err := c.s.AddShare("ro", other, Options{}); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.lookup(rootID, "ro"); again == ro {
		t.Fatal("a re-added share reused a stale node id")
	}
}
