package virtiofs

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

func toAttr(st unix.Stat_t) attr {
	return attr{
		Ino: st.Ino, Size: uint64(st.Size), Blocks: uint64(st.Blocks),
		Atime: uint64(st.Atim.Sec), AtimeNs: uint32(st.Atim.Nsec),
		Mtime: uint64(st.Mtim.Sec), MtimeNs: uint32(st.Mtim.Nsec),
		Ctime: uint64(st.Ctim.Sec), CtimeNs: uint32(st.Ctim.Nsec),
		Mode: st.Mode, Nlink: uint32(st.Nlink), UID: st.Uid, GID: st.Gid,
		Rdev: uint32(st.Rdev), Blksize: uint32(st.Blksize),
	}
}

func fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// openBeneath opens one validated name under dirfd as O_PATH: no
// symlink is followed, nothing resolves outside dirfd, no magic links.
func openBeneath(dirfd int, name string) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
	})
}

// lookupEntry resolves name in parent and returns its entry_out bytes.
func (s *Server) lookupEntry(parent *node, name string) ([]byte, unix.Errno) {
	fd, err := openBeneath(parent.fd, name)
	if err != nil {
		return nil, errnoOf(err)
	}
	st, err := fstat(fd)
	if err != nil {
		unix.Close(fd)
		return nil, errnoOf(err)
	}
	n := s.nodes.add(parent.share, fd, st)
	if n == nil {
		return nil, unix.ENFILE
	}
	out := make([]byte, entryOutSize)
	putEntryOut(out, n.id, parent.share.opts.EntryTimeout, parent.share.opts.AttrTimeout, toAttr(st))
	return out, 0
}

// entry is lookupEntry for any directory, the virtual root included.
func (s *Server) entry(parent *node, name string) ([]byte, unix.Errno) {
	if parent.share == nil {
		return s.rootLookup(name)
	}
	return s.lookupEntry(parent, name)
}

func (s *Server) lookup(parent *node, body []byte) ([]byte, unix.Errno) {
	name, _, errno := nameArg(body)
	if errno != 0 {
		return nil, errno
	}
	return s.lookupEntry(parent, name)
}

func (s *Server) batchForget(body []byte) {
	if len(body) < 8 {
		return
	}
	count := int(le.Uint32(body))
	entries := body[8:]
	for i := 0; i < count && len(entries) >= 16; i++ {
		s.nodes.forget(le.Uint64(entries), le.Uint64(entries[8:]))
		entries = entries[16:]
	}
}

func (s *Server) getattr(n *node) ([]byte, unix.Errno) {
	st, err := fstat(n.fd)
	if err != nil {
		return nil, errnoOf(err)
	}
	out := make([]byte, attrOutSize)
	le.PutUint64(out[0:], n.share.opts.AttrTimeout)
	toAttr(st).put(out[16:])
	return out, 0
}

func (s *Server) readlink(n *node) ([]byte, unix.Errno) {
	if n.mode&unix.S_IFMT != unix.S_IFLNK {
		return nil, unix.EINVAL
	}
	buf := make([]byte, unix.PathMax)
	k, err := unix.Readlinkat(n.fd, "", buf)
	if err != nil {
		return nil, errnoOf(err)
	}
	return buf[:k], 0
}

// open reopens a node for I/O. Only regular files and directories are
// ever opened: a device node in a share must never give the guest the
// host's device (CVE-2020-35517).
func (s *Server) open(n *node, h inHeader, body []byte, dir bool) ([]byte, unix.Errno) {
	if len(body) < 4 {
		return nil, unix.EINVAL
	}
	flags := int(le.Uint32(body))
	typ := n.mode & unix.S_IFMT
	switch {
	case dir && typ != unix.S_IFDIR:
		return nil, unix.ENOTDIR
	case !dir && typ == unix.S_IFDIR:
		return nil, unix.EISDIR
	case !dir && typ != unix.S_IFREG:
		return nil, unix.EACCES
	}
	if !dir && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0) && n.share.opts.ReadOnly {
		return nil, unix.EROFS
	}
	// Reopen the inode itself through its O_PATH descriptor (the magic
	// link is the server's own, never a guest-supplied path); the type
	// was checked above and an inode's type cannot change. Opening as the
	// caller makes the host check the caller's permissions.
	oflags := flags&(unix.O_ACCMODE|unix.O_TRUNC|unix.O_APPEND) | unix.O_CLOEXEC
	var fd int
	var err error
	if dir {
		// "." of the directory's own O_PATH descriptor: no walk through
		// /proc needed.
		s.creds.as(h.UID, h.GID, func() { fd, err = unix.Openat(n.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) })
	} else {
		s.creds.as(h.UID, h.GID, func() { fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", n.fd), oflags, 0) })
	}
	if err != nil {
		return nil, errnoOf(err)
	}
	hd := &handle{fd: fd, share: n.share}
	if dir {
		entries, err := readDir(fd)
		unix.Close(fd)
		if err != nil {
			return nil, errnoOf(err)
		}
		hd = &handle{fd: -1, share: n.share, entries: entries}
	}
	fh := s.addHandle(hd)
	out := make([]byte, 16)
	le.PutUint64(out[0:], fh)
	if n.share.opts.KeepCache {
		le.PutUint32(out[8:], fopenKeepCache)
	}
	return out, 0
}

func (s *Server) addHandle(h *handle) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	fh := s.nextFH
	s.nextFH++
	s.handles[fh] = h
	return fh
}

func (s *Server) handle(fh uint64) *handle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handles[fh]
}

// readInto answers READ by reading the file straight into the guest's
// reply buffers, after room for the out header: no intermediate copy.
func (s *Server) readInto(unique uint64, body []byte, out [][]byte) int {
	if len(body) < 24 {
		return writeReply(out, unique, unix.EINVAL, nil)
	}
	fh, off, size := le.Uint64(body[0:]), le.Uint64(body[8:]), le.Uint32(body[16:])
	h := s.handle(fh)
	if h == nil || h.fd < 0 {
		return writeReply(out, unique, unix.EBADF, nil)
	}
	// The reply's data is out minus its first outHeaderSize bytes, cut
	// to the size asked for.
	iov := make([][]byte, 0, len(out))
	skip, want := outHeaderSize, int(min(size, 1<<20))
	for _, o := range out {
		if skip >= len(o) {
			skip -= len(o)
			continue
		}
		o, skip = o[skip:], 0
		if len(o) > want {
			o = o[:want]
		}
		if len(o) > 0 {
			iov = append(iov, o)
			want -= len(o)
		}
	}
	if skip > 0 {
		return 0 // not even room for the header
	}
	n, err := unix.Preadv(h.fd, iov, int64(off))
	if err != nil {
		return writeReply(out, unique, errnoOf(err), nil)
	}
	var hdr [outHeaderSize]byte
	le.PutUint32(hdr[0:], uint32(outHeaderSize+n))
	le.PutUint64(hdr[8:], unique)
	scatter(out, hdr[:])
	return outHeaderSize + n
}

func (s *Server) release(body []byte) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.EINVAL
	}
	fh := le.Uint64(body)
	s.mu.Lock()
	h := s.handles[fh]
	delete(s.handles, fh)
	s.mu.Unlock()
	if h != nil && h.fd >= 0 {
		unix.Close(h.fd)
	}
	return nil, 0
}

// readDir lists a directory, sorted, with . and .. first.
func readDir(fd int) ([]dirEntry, error) {
	var entries []dirEntry
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(le.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name, _ := cString(b[19:reclen])
			entries = append(entries, dirEntry{name: string(name), ino: le.Uint64(b[0:]), typ: b[18]})
			b = b[reclen:]
		}
	}
	sort.Slice(entries, func(i, j int) bool {
		ri, rj := dotRank(entries[i].name), dotRank(entries[j].name)
		if ri != rj {
			return ri < rj
		}
		return entries[i].name < entries[j].name
	})
	return entries, nil
}

func dotRank(name string) int {
	switch name {
	case ".":
		return 0
	case "..":
		return 1
	}
	return 2
}

// readdir answers READDIR(PLUS) from the snapshot; the offset is the
// index of the next entry. Only READDIRPLUS needs the directory's node
// (parent may be nil otherwise).
func (s *Server) readdir(parent *node, body []byte, plus bool) ([]byte, unix.Errno) {
	if len(body) < 24 {
		return nil, unix.EINVAL
	}
	fh, off, size := le.Uint64(body[0:]), le.Uint64(body[8:]), int(le.Uint32(body[16:]))
	h := s.handle(fh)
	if h == nil || h.fd >= 0 {
		return nil, unix.EBADF
	}
	if plus && parent == nil {
		return nil, unix.ENOENT
	}
	var out []byte
	for i := off; i < uint64(len(h.entries)); i++ {
		e := h.entries[i]
		rec := direntSize + (len(e.name)+7)&^7
		if plus {
			rec += entryOutSize
		}
		if len(out)+rec > size {
			break
		}
		b := make([]byte, rec)
		d := b
		if plus {
			// Each listed entry counts as a lookup (the guest will
			// FORGET it), except . and .., which it does not instantiate.
			if e.name != "." && e.name != ".." {
				if entry, errno := s.entry(parent, e.name); errno == 0 {
					copy(b, entry)
				}
			}
			d = b[entryOutSize:]
		}
		le.PutUint64(d[0:], e.ino)
		le.PutUint64(d[8:], i+1)
		le.PutUint32(d[16:], uint32(len(e.name)))
		le.PutUint32(d[20:], uint32(e.typ))
		copy(d[24:], e.name)
		out = append(out, b...)
	}
	return out, 0
}

func (s *Server) statfs(n *node) ([]byte, unix.Errno) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(n.fd, &st); err != nil {
		return nil, errnoOf(err)
	}
	out := make([]byte, 80)
	le.PutUint64(out[0:], st.Blocks)
	le.PutUint64(out[8:], st.Bfree)
	le.PutUint64(out[16:], st.Bavail)
	le.PutUint64(out[24:], st.Files)
	le.PutUint64(out[32:], st.Ffree)
	le.PutUint32(out[40:], uint32(st.Bsize))
	le.PutUint32(out[44:], uint32(st.Namelen))
	le.PutUint32(out[48:], uint32(st.Frsize))
	return out, 0
}
