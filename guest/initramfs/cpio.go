// Package initramfs writes the guest's initial ramdisk: an uncompressed
// cpio "newc" archive (decompression would run in the guest, which is slow
// on nested KVMs), byte-for-byte reproducible: entries sorted, owner root,
// timestamps zero, inode numbers assigned in order.
package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// File modes as cpio stores them.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// Entry is one archive member.
type Entry struct {
	Name     string // path inside the archive, no leading slash
	Mode     uint32 // type and permission bits, cpio encoding
	Data     []byte // file contents or symlink target
	DevMajor uint32 // for device nodes
	DevMinor uint32
}

// Archive collects entries; later additions of a name replace earlier ones.
type Archive struct {
	entries map[string]Entry
}

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]Entry{}} }

func clean(name string) (string, error) {
	name = strings.Trim(name, "/")
	if name == "" || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("initramfs: bad name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("initramfs: bad name %q", name)
		}
	}
	return name, nil
}

func (a *Archive) add(e Entry) error {
	name, err := clean(e.Name)
	if err != nil {
		return err
	}
	e.Name = name
	// Parent directories exist implicitly.
	for i := strings.LastIndex(name, "/"); i > 0; i = strings.LastIndex(name[:i], "/") {
		if _, ok := a.entries[name[:i]]; !ok {
			a.entries[name[:i]] = Entry{Name: name[:i], Mode: modeDir | 0o755}
		}
	}
	a.entries[name] = e
	return nil
}

// AddDir adds a directory.
func (a *Archive) AddDir(name string, perm fs.FileMode) error {
	return a.add(Entry{Name: name, Mode: modeDir | uint32(perm.Perm())})
}

// AddFile adds a regular file.
func (a *Archive) AddFile(name string, perm fs.FileMode, data []byte) error {
	return a.add(Entry{Name: name, Mode: modeRegular | uint32(perm.Perm()), Data: data})
}

// AddSymlink adds a symbolic link.
func (a *Archive) AddSymlink(name, target string) error {
	return a.add(Entry{Name: name, Mode: modeSymlink | 0o777, Data: []byte(target)})
}

// AddCharDev adds a character device node (e.g. /dev/console, which the
// kernel opens for init before anything could mount devtmpfs).
func (a *Archive) AddCharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return a.add(Entry{Name: name, Mode: modeChar | uint32(perm.Perm()), DevMajor: major, DevMinor: minor})
}

// WriteTo writes the archive in newc format, entries in path order.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	cw := &countWriter{w: w}
	for i, n := range names {
		if err := writeEntry(cw, uint32(i+1), a.entries[n]); err != nil {
			return cw.n, err
		}
	}
	if err := writeEntry(cw, 0, Entry{Name: "TRAILER!!!"}); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func writeEntry(w *countWriter, ino uint32, e Entry) error {
	nlink := uint32(1)
	if e.Mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.DevMajor, e.DevMinor, len(e.Name)+1, 0)
	w.Write([]byte(hdr))
	w.Write([]byte(e.Name))
	w.Write([]byte{0})
	w.pad4()
	w.Write(e.Data)
	w.pad4()
	return w.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countWriter) pad4() {
	if r := c.n % 4; r != 0 {
		c.Write(make([]byte, 4-r))
	}
}
