package virtiofs

// This file is the mount's root: a virtual, read-only directory whose
// entries are the shares. One virtio-fs device then carries any number of
// shares, and shares come and go while the guest runs, which a device per
// share cannot do (virtio-mmio devices are fixed at boot).

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// share is one host file or directory exported under a name in the root.
type share struct {
	name string
	path string
	opts Options
	root *node
}

// AddShare exports the host directory or regular file at path as name in
// the root. Names follow the rules of any file name in a share.
func (s *Server) AddShare(name, path string, opts Options) error {
	if !validName([]byte(name)) {
		return fmt.Errorf("share name %q: want a plain file name", name)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("share %s: %w", path, err)
	}
	st, err := fstat(fd)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = fmt.Errorf("not a directory or regular file")
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("share %s: %w", path, err)
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if _, ok := s.shares[name]; ok {
		unix.Close(fd)
		return fmt.Errorf("share %q exists", name)
	}
	sh := &share{name: name, path: path, opts: opts}
	n := s.nodes.add(sh, fd, st)
	if n == nil {
		return fmt.Errorf("share %s: descriptor limit reached", path)
	}
	n.nlookup, n.pinned = 0, true
	sh.root = n
	s.shares[name] = sh
	return nil
}

// RemoveShare withdraws a share: its name leaves the root and every
// descriptor the server holds in it is closed, so the guest's node ids and
// open files in it go stale (ENOENT, EBADF). The guest should unmount it
// first. Requests in flight finish before it returns.
func (s *Server) RemoveShare(name string) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	sh, ok := s.shares[name]
	if !ok {
		return fmt.Errorf("no share %q", name)
	}
	delete(s.shares, name)
	s.mu.Lock()
	for fh, h := range s.handles {
		if h.share == sh {
			if h.fd >= 0 {
				unix.Close(h.fd)
			}
			delete(s.handles, fh)
		}
	}
	s.mu.Unlock()
	s.nodes.dropShare(sh)
	return nil
}

// rootOp answers a request on the virtual root. Callers hold opMu.
func (s *Server) rootOp(root *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	switch h.Opcode {
	case opLookup:
		name, _, errno := nameArg(body)
		if errno != 0 {
			return nil, errno
		}
		return s.rootLookup(name)
	case opGetattr:
		out := make([]byte, attrOutSize)
		s.rootAttr().put(out[16:])
		return out, 0
	case opOpendir:
		return s.openRoot()
	case opReaddir:
		return s.readdir(root, body, false)
	case opReaddirplus:
		return s.readdir(root, body, true)
	case opReleasedir:
		return s.release(body)
	case opStatfs:
		out := make([]byte, 80)
		le.PutUint32(out[40:], 4096) // bsize
		le.PutUint32(out[44:], 255)  // namelen
		le.PutUint32(out[48:], 4096) // frsize
		return out, 0
	case opAccess, opFlush, opFsyncdir:
		return nil, 0
	case opGetxattr:
		return nil, unix.ENODATA
	case opListxattr:
		return sizedReply(0, nil)
	case opOpen:
		return nil, unix.EISDIR
	}
	if mutating(h.Opcode) {
		return nil, unix.EROFS
	}
	return nil, unix.EINVAL
}

// rootLookup finds a share's root. Entries are not cached by the guest
// (timeout 0) so a removed share disappears at once.
func (s *Server) rootLookup(name string) ([]byte, unix.Errno) {
	sh, ok := s.shares[name]
	if !ok {
		return nil, unix.ENOENT
	}
	st, err := fstat(sh.root.fd)
	if err != nil {
		return nil, errnoOf(err)
	}
	s.nodes.ref(sh.root)
	out := make([]byte, entryOutSize)
	putEntryOut(out, sh.root.id, 0, sh.opts.AttrTimeout, toAttr(st))
	return out, 0
}

func (s *Server) rootAttr() attr {
	t := uint64(s.started.Unix())
	return attr{Ino: rootID, Mode: unix.S_IFDIR | 0o555, Nlink: 2, Atime: t, Mtime: t, Ctime: t, Blksize: 4096}
}

func (s *Server) openRoot() ([]byte, unix.Errno) {
	entries := []dirEntry{{name: ".", ino: rootID, typ: unix.DT_DIR}, {name: "..", ino: rootID, typ: unix.DT_DIR}}
	names := make([]string, 0, len(s.shares))
	for name := range s.shares {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		root := s.shares[name].root
		typ := uint8(unix.DT_DIR)
		if root.mode&unix.S_IFMT == unix.S_IFREG {
			typ = unix.DT_REG
		}
		entries = append(entries, dirEntry{name: name, ino: root.key.ino, typ: typ})
	}
	out := make([]byte, 16)
	le.PutUint64(out, s.addHandle(&handle{fd: -1, entries: entries}))
	return out, 0
}
