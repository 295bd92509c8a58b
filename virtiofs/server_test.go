package virtiofs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// client builds FUSE requests and decodes replies against a Server.
type client struct {
	t        testing.TB
	s        *Server
	unique   uint64
	uid, gid uint32 // the guest caller's identity in each request
	root     uint64 // the share's node, looked up in the virtual root
}

func (c *client) call(op uint32, node uint64, body []byte) (int32, []byte) {
	c.t.Helper()
	c.unique++
	req := make([]byte, inHeaderSize+len(body))
	le.PutUint32(req[0:], uint32(len(req)))
	le.PutUint32(req[4:], op)
	le.PutUint64(req[8:], c.unique)
	le.PutUint64(req[16:], node)
	le.PutUint32(req[24:], c.uid)
	le.PutUint32(req[28:], c.gid)
	copy(req[inHeaderSize:], body)
	out := make([]byte, 1<<20)
	n := c.s.Handle(req, [][]byte{out[:100], out[100:]})
	if n == 0 {
		return 0, nil
	}
	if n < outHeaderSize || le.Uint32(out) != uint32(n) || le.Uint64(out[8:]) != c.unique {
		c.t.Fatalf("op %d: malformed reply (%d bytes, header % x)", op, n, out[:16])
	}
	return int32(le.Uint32(out[4:])), out[outHeaderSize:n]
}

func name(s string) []byte { return append([]byte(s), 0) }

func (c *client) lookup(parent uint64, n string) (uint64, int32) {
	errno, out := c.call(opLookup, parent, name(n))
	if errno != 0 {
		return 0, errno
	}
	return le.Uint64(out), 0
}

func newShare(t testing.TB, opts Options) (*client, string) {
	return newShareCapped(t, opts, 0)
}

func newShareCapped(t testing.TB, opts Options, maxFDs int) (*client, string) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello, guest\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "inner"), []byte("x"), 0o600)
	os.Symlink("/etc/passwd", filepath.Join(dir, "escape"))
	unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	s := New(Config{MaxFDs: maxFDs})
	t.Cleanup(s.Close)
	if err := s.AddShare("share", dir, opts); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, s: s}
	init := make([]byte, 64)
	le.PutUint32(init[0:], 7)
	le.PutUint32(init[4:], 38)
	le.PutUint32(init[12:], 1<<13)
	if errno, out := c.call(opInit, 0, init); errno != 0 || le.Uint32(out) != 7 || le.Uint32(out[4:]) != 38 {
		t.Fatalf("INIT: %d % x", errno, out)
	}
	var errno int32
	if c.root, errno = c.lookup(rootID, "share"); errno != 0 {
		t.Fatalf("lookup of the share: %d", errno)
	}
	return c, dir
}

func TestLookupGetattrRead(t *testing.T) {
	c, _ := newShare(t, Options{ReadOnly: true})
	id, errno := c.lookup(c.root, "hello.txt")
	if errno != 0 || id <= c.root {
		t.Fatalf("lookup: %d %d", id, errno)
	}
	if again, _ := c.lookup(c.root, "hello.txt"); again != id {
		t.Fatalf("second lookup gave node %d, first %d", again, id)
	}
	errno, attrOut := c.call(opGetattr, id, make([]byte, 16))
	if errno != 0 || le.Uint64(attrOut[16+8:]) != 13 {
		t.Fatalf("getattr: %d size %d", errno, le.Uint64(attrOut[16+8:]))
	}
	open := make([]byte, 8)
	errno, openOut := c.call(opOpen, id, open)
	if errno != 0 {
		t.Fatalf("open: %d", errno)
	}
	fh := le.Uint64(openOut)
	read := make([]byte, 40)
	le.PutUint64(read[0:], fh)
	le.PutUint64(read[8:], 7)
	le.PutUint32(read[16:], 100)
	if errno, data := c.call(opRead, id, read); errno != 0 || string(data) != "guest\n" {
		t.Fatalf("read: %d %q", errno, data)
	}
	rel := make([]byte, 24)
	le.PutUint64(rel, fh)
	if errno, _ := c.call(opRelease, id, rel); errno != 0 {
		t.Fatalf("release: %d", errno)
	}
	if errno, _ := c.call(opRead, id, read); errno != -int32(unix.EBADF) {
		t.Fatalf("read after release: %d", errno)
	}
}

func TestNamesThatEscapeAreRefused(t *testing.T) {
	c, _ := newShare(t, Options{})
	for _, n := range []string{"", ".", "..", "sub/inner", "../etc", string(make([]byte, 256))} {
		if _, errno := c.lookup(c.root, n); errno == 0 {
			t.Errorf("lookup %q succeeded", n)
		}
	}
	// No NUL terminator at all.
	if errno, _ := c.call(opLookup, c.root, []byte("hello.txt")); errno == 0 {
		t.Error("unterminated name accepted")
	}
	// A symlink is looked up as itself, never followed, and cannot be
	// opened for I/O.
	id, errno := c.lookup(c.root, "escape")
	if errno != 0 {
		t.Fatal(errno)
	}
	if errno, target := c.call(opReadlink, id, nil); errno != 0 || string(target) != "/etc/passwd" {
		t.Fatalf("readlink: %d %q", errno, target)
	}
	if errno, _ := c.call(opOpen, id, make([]byte, 8)); errno == 0 {
		t.Fatal("opened a symlink")
	}
	// A device node in the share is never opened (CVE-2020-35517).
	if nullID, errno := c.lookup(c.root, "null"); errno == 0 {
		if errno, _ := c.call(opOpen, nullID, make([]byte, 8)); errno != -int32(unix.EACCES) {
			t.Fatalf("open of a device node: %d", errno)
		}
	}
	// Unknown and stale node ids find nothing.
	if _, errno := c.lookup(9999, "hello.txt"); errno != -int32(unix.ENOENT) {
		t.Fatalf("lookup under unknown node: %d", errno)
	}
}

func TestForgetSaturatesAndFDCap(t *testing.T) {
	c, _ := newShareCapped(t, Options{}, 4) // virtual root, share root + 2
	id, _ := c.lookup(c.root, "hello.txt")
	forget := make([]byte, 8)
	le.PutUint64(forget, 1<<40)
	c.call(opForget, id, forget) // far more than looked up: saturates
	if errno, _ := c.call(opGetattr, id, make([]byte, 16)); errno != -int32(unix.ENOENT) {
		t.Fatalf("forgotten node still answers: %d", errno)
	}
	c.lookup(c.root, "hello.txt")
	c.lookup(c.root, "sub")
	if _, errno := c.lookup(c.root, "escape"); errno != -int32(unix.ENFILE) {
		t.Fatalf("lookup past the descriptor cap: %d", errno)
	}
}

func TestReaddirplus(t *testing.T) {
	c, _ := newShare(t, Options{})
	errno, out := c.call(opOpendir, c.root, make([]byte, 8))
	if errno != 0 {
		t.Fatal(errno)
	}
	rd := make([]byte, 40)
	le.PutUint64(rd, le.Uint64(out))
	le.PutUint32(rd[16:], 1<<16)
	errno, data := c.call(opReaddirplus, c.root, rd)
	if errno != 0 {
		t.Fatal(errno)
	}
	var names []string
	for len(data) > 0 {
		d := data[entryOutSize:]
		n := int(le.Uint32(d[16:]))
		names = append(names, string(d[24:24+n]))
		if nm := string(d[24 : 24+n]); nm != "." && nm != ".." && le.Uint64(data) == 0 {
			t.Errorf("%s listed without a node id", nm)
		}
		data = data[entryOutSize+direntSize+(n+7)&^7:]
	}
	want := []string{".", "..", "escape", "hello.txt", "null", "sub"}
	if !bytes.Equal([]byte(joinNames(names)), []byte(joinNames(want))) {
		t.Fatalf("listed %v, want %v", names, want)
	}
}

func joinNames(n []string) string {
	var b bytes.Buffer
	for _, s := range n {
		b.WriteString(s + "\n")
	}
	return b.String()
}

// FuzzHandle feeds arbitrary requests to a server on a real directory:
// no panic, and every reply is well-formed.
func FuzzHandle(f *testing.F) {
	f.Add([]byte{40, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'a', 0})
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("data"), 0o644)
	s := New(Config{})
	if err := s.AddShare("s", dir, Options{}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		out := make([]byte, 4096)
		n := s.Handle(req, [][]byte{out})
		if n != 0 && (n < outHeaderSize || int(le.Uint32(out)) != n) {
			t.Fatalf("malformed reply of %d bytes", n)
		}
	})
}
