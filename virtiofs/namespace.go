package virtiofs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// twoNames splits "old\0new\0".
func twoNames(b []byte) (string, string, unix.Errno) {
	a, rest, errno := nameArg(b)
	if errno != 0 {
		return "", "", errno
	}
	c, _, errno := nameArg(rest)
	return a, c, errno
}

func (s *Server) rename(olddir *node, h inHeader, body []byte, v2 bool) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.ENOENT
	}
	newdir := s.nodes.get(le.Uint64(body))
	if newdir == nil {
		return nil, unix.ENOENT
	}
	if newdir.share != olddir.share {
		return nil, unix.EXDEV // another share, or the virtual root
	}
	var flags uint32
	names := body[8:]
	if v2 {
		if len(body) < 16 {
			return nil, unix.EINVAL
		}
		flags, names = le.Uint32(body[8:]), body[16:]
		if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
			return nil, unix.EINVAL // no RENAME_WHITEOUT from the guest
		}
	}
	oldname, newname, errno := twoNames(names)
	if errno != 0 {
		return nil, errno
	}
	var err error
	s.creds.as(h.UID, h.GID, func() { err = unix.Renameat2(olddir.fd, oldname, newdir.fd, newname, uint(flags)) })
	return nil, errnoOf0(err)
}

func (s *Server) symlink(parent *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	// FUSE sends the new entry's name, then the link's contents. The
	// contents are the guest's data: the server never follows them.
	name, rest, errno := nameArg(body)
	if errno != 0 {
		return nil, errno
	}
	target, ok := cString(rest)
	if !ok || len(target) == 0 || len(target) >= unix.PathMax {
		return nil, unix.EINVAL
	}
	var err error
	s.creds.as(h.UID, h.GID, func() { err = unix.Symlinkat(string(target), parent.fd, name) })
	if err != nil {
		return nil, errnoOf(err)
	}
	return s.lookupEntry(parent, name)
}

func (s *Server) link(parent *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.ENOENT
	}
	// The source is a node of this share: nothing outside can be linked.
	old := s.nodes.get(le.Uint64(body))
	if old == nil {
		return nil, unix.ENOENT
	}
	if old.mode&unix.S_IFMT == unix.S_IFDIR {
		return nil, unix.EPERM
	}
	if old.share != parent.share {
		return nil, unix.EXDEV
	}
	name, _, errno := nameArg(body[8:])
	if errno != 0 {
		return nil, errno
	}
	var err error
	s.creds.as(h.UID, h.GID, func() {
		err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", old.fd), parent.fd, name, unix.AT_SYMLINK_FOLLOW)
	})
	if err != nil {
		return nil, errnoOf(err)
	}
	return s.lookupEntry(parent, name)
}

// mknod makes FIFOs, sockets and empty regular files; device nodes are
// refused whoever asks: they would hand the guest host devices.
func (s *Server) mknod(parent *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 16 {
		return nil, unix.EINVAL
	}
	mode, umask := le.Uint32(body), le.Uint32(body[8:])
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFREG:
	default:
		return nil, unix.EPERM
	}
	name, _, errno := nameArg(body[16:])
	if errno != 0 {
		return nil, errno
	}
	var err error
	s.creds.as(h.UID, h.GID, func() {
		err = unix.Mknodat(parent.fd, name, mode&unix.S_IFMT|mode&^umask&0o7777, 0)
	})
	if err != nil {
		return nil, errnoOf(err)
	}
	return s.lookupEntry(parent, name)
}
