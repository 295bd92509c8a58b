package virtiofs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mutating reports whether an opcode changes the share.
func mutating(op uint32) bool {
	switch op {
	case opSetattr, opSymlink, opMknod, opMkdir, opUnlink, opRmdir, opRename, opLink,
		opWrite, opCreate, opSetxattr, opRemovexattr, opFallocate, opRename2, opCopyFileRange:
		return true
	}
	return false
}

// nameArg validates the NUL-terminated name at the front of b.
func nameArg(b []byte) (string, []byte, unix.Errno) {
	n, ok := cString(b)
	if !ok || !validName(n) {
		return "", nil, unix.EINVAL
	}
	return string(n), b[len(n)+1:], 0
}

func (s *Server) mkdir(parent *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.EINVAL
	}
	mode, umask := le.Uint32(body), le.Uint32(body[4:])
	name, _, errno := nameArg(body[8:])
	if errno != 0 {
		return nil, errno
	}
	var err error
	s.creds.as(h.UID, h.GID, func() { err = unix.Mkdirat(parent.fd, name, mode&^umask&0o7777) })
	if err != nil {
		return nil, errnoOf(err)
	}
	return s.lookupEntry(parent, name)
}

func (s *Server) remove(parent *node, h inHeader, body []byte, dir bool) ([]byte, unix.Errno) {
	name, _, errno := nameArg(body)
	if errno != 0 {
		return nil, errno
	}
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	var err error
	s.creds.as(h.UID, h.GID, func() { err = unix.Unlinkat(parent.fd, name, flags) })
	return nil, errnoOf0(err)
}

// create makes and opens a regular file: entry_out followed by open_out.
func (s *Server) create(parent *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 16 {
		return nil, unix.EINVAL
	}
	flags, mode, umask := int(le.Uint32(body)), le.Uint32(body[4:]), le.Uint32(body[8:])
	name, _, errno := nameArg(body[16:])
	if errno != 0 {
		return nil, errno
	}
	// Only the access mode and a few flags pass; never O_PATH, never
	// following a symlink planted under the name.
	flags = flags&(unix.O_ACCMODE|unix.O_EXCL|unix.O_TRUNC|unix.O_APPEND) | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC
	var fd int
	var err error
	s.creds.as(h.UID, h.GID, func() {
		fd, err = unix.Openat2(parent.fd, name, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode &^ umask & 0o7777),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	})
	if err != nil {
		return nil, errnoOf(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, unix.EACCES
	}
	entry, errno := s.lookupEntry(parent, name)
	if errno != 0 {
		unix.Close(fd)
		return nil, errno
	}
	fh := s.addHandle(&handle{fd: fd, share: parent.share})
	out := make([]byte, entryOutSize+16)
	copy(out, entry)
	le.PutUint64(out[entryOutSize:], fh)
	return out, 0
}

func (s *Server) write(h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 40 {
		return nil, unix.EINVAL
	}
	fh, off, size := le.Uint64(body[0:]), le.Uint64(body[8:]), le.Uint32(body[16:])
	data := body[40:]
	if uint64(size) > uint64(len(data)) {
		return nil, unix.EINVAL
	}
	hd := s.handle(fh)
	if hd == nil || hd.fd < 0 {
		return nil, unix.EBADF
	}
	var n int
	var err error
	s.creds.as(h.UID, h.GID, func() { n, err = unix.Pwrite(hd.fd, data[:size], int64(off)) })
	if err != nil {
		return nil, errnoOf(err)
	}
	out := make([]byte, 8)
	le.PutUint32(out, uint32(n))
	return out, 0
}

// SETATTR valid bits.
const (
	fattrMode  = 1 << 0
	fattrUID   = 1 << 1
	fattrGID   = 1 << 2
	fattrSize  = 1 << 3
	fattrAtime = 1 << 4
	fattrMtime = 1 << 5
	fattrFH    = 1 << 6
	fattrAnow  = 1 << 7
	fattrMnow  = 1 << 8
)

func (s *Server) setattr(n *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 88 {
		return nil, unix.EINVAL
	}
	valid := le.Uint32(body)
	proc := fmt.Sprintf("/proc/self/fd/%d", n.fd)
	isLink := n.mode&unix.S_IFMT == unix.S_IFLNK
	var err error
	s.creds.as(h.UID, h.GID, func() {
		if valid&fattrSize != 0 {
			if n.mode&unix.S_IFMT != unix.S_IFREG {
				err = unix.EINVAL
				return
			}
			if err = unix.Truncate(proc, int64(le.Uint64(body[16:]))); err != nil {
				return
			}
		}
		if valid&fattrMode != 0 {
			if isLink {
				err = unix.EOPNOTSUPP
				return
			}
			if err = unix.Chmod(proc, le.Uint32(body[68:])&0o7777); err != nil {
				return
			}
		}
		if valid&(fattrUID|fattrGID) != 0 {
			uid, gid := -1, -1
			if valid&fattrUID != 0 {
				uid = int(le.Uint32(body[76:]))
			}
			if valid&fattrGID != 0 {
				gid = int(le.Uint32(body[80:]))
			}
			if err = unix.Fchownat(n.fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return
			}
		}
		if valid&(fattrAtime|fattrMtime) != 0 && !isLink {
			ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
			if valid&fattrAtime != 0 {
				ts[0] = unix.Timespec{Sec: int64(le.Uint64(body[32:])), Nsec: int64(le.Uint32(body[56:]))}
				if valid&fattrAnow != 0 {
					ts[0] = unix.Timespec{Nsec: unix.UTIME_NOW}
				}
			}
			if valid&fattrMtime != 0 {
				ts[1] = unix.Timespec{Sec: int64(le.Uint64(body[40:])), Nsec: int64(le.Uint32(body[60:]))}
				if valid&fattrMnow != 0 {
					ts[1] = unix.Timespec{Nsec: unix.UTIME_NOW}
				}
			}
			err = unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts, 0)
		}
	})
	if err != nil {
		return nil, errnoOf(err)
	}
	return s.getattr(n)
}

func errnoOf0(err error) unix.Errno {
	if err == nil {
		return 0
	}
	return errnoOf(err)
}
