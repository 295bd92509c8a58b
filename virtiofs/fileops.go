package virtiofs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func (s *Server) fsync(body []byte) ([]byte, unix.Errno) {
	if len(body) < 12 {
		return nil, unix.EINVAL
	}
	hd := s.handle(le.Uint64(body))
	if hd == nil || hd.fd < 0 {
		return nil, 0 // directories: nothing buffered here
	}
	var err error
	if le.Uint32(body[8:])&1 != 0 {
		err = unix.Fdatasync(hd.fd)
	} else {
		err = unix.Fsync(hd.fd)
	}
	return nil, errnoOf0(err)
}

func (s *Server) fallocate(h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 28 {
		return nil, unix.EINVAL
	}
	hd := s.handle(le.Uint64(body))
	if hd == nil || hd.fd < 0 {
		return nil, unix.EBADF
	}
	off, length, mode := le.Uint64(body[8:]), le.Uint64(body[16:]), le.Uint32(body[24:])
	var err error
	s.creds.as(h.UID, h.GID, func() { err = unix.Fallocate(hd.fd, mode, int64(off), int64(length)) })
	return nil, errnoOf0(err)
}

func (s *Server) lseek(body []byte) ([]byte, unix.Errno) {
	if len(body) < 20 {
		return nil, unix.EINVAL
	}
	hd := s.handle(le.Uint64(body))
	if hd == nil || hd.fd < 0 {
		return nil, unix.EBADF
	}
	whence := int(le.Uint32(body[16:]))
	if whence != unix.SEEK_DATA && whence != unix.SEEK_HOLE && whence != unix.SEEK_SET && whence != unix.SEEK_END && whence != unix.SEEK_CUR {
		return nil, unix.EINVAL
	}
	off, err := unix.Seek(hd.fd, int64(le.Uint64(body[8:])), whence)
	if err != nil {
		return nil, errnoOf(err)
	}
	out := make([]byte, 8)
	le.PutUint64(out, uint64(off))
	return out, 0
}

func (s *Server) copyFileRange(h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 56 {
		return nil, unix.EINVAL
	}
	in, out := s.handle(le.Uint64(body[0:])), s.handle(le.Uint64(body[24:]))
	if in == nil || out == nil || in.fd < 0 || out.fd < 0 {
		return nil, unix.EBADF
	}
	offIn, offOut := int64(le.Uint64(body[8:])), int64(le.Uint64(body[32:]))
	length := int(min(le.Uint64(body[40:]), 1<<30))
	var n int
	var err error
	s.creds.as(h.UID, h.GID, func() { n, err = unix.CopyFileRange(in.fd, &offIn, out.fd, &offOut, length, 0) })
	if err != nil {
		return nil, errnoOf(err)
	}
	res := make([]byte, 8)
	le.PutUint32(res, uint32(n))
	return res, 0
}

// withXattrFD runs call, as the caller, on a descriptor of a regular file
// or directory node. Other file types get no xattrs: reaching a symlink's
// or a device's through /proc would follow it.
func (s *Server) withXattrFD(n *node, h inHeader, call func(fd int) error) unix.Errno {
	typ := n.mode & unix.S_IFMT
	if typ != unix.S_IFREG && typ != unix.S_IFDIR {
		return unix.EPERM
	}
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if typ == unix.S_IFDIR {
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", n.fd), flags, 0)
	if err != nil {
		return errnoOf(err)
	}
	defer unix.Close(fd)
	s.creds.as(h.UID, h.GID, func() { err = call(fd) })
	return errnoOf0(err)
}

// attrName takes a NUL-terminated xattr name from the front of b.
func attrName(b []byte) (string, bool) {
	n, ok := cString(b)
	return string(n), ok && len(n) > 0 && len(n) <= 255
}

// sizedReply answers GET/LISTXATTR: the size alone when the guest asked
// with size 0, else the data (ERANGE if it does not fit).
func sizedReply(size uint32, data []byte) ([]byte, unix.Errno) {
	if size == 0 {
		out := make([]byte, 8)
		le.PutUint32(out, uint32(len(data)))
		return out, 0
	}
	if uint32(len(data)) > size {
		return nil, unix.ERANGE
	}
	return data, 0
}

func (s *Server) getxattr(n *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.EINVAL
	}
	name, ok := attrName(body[8:])
	if !ok {
		return nil, unix.EINVAL
	}
	buf := make([]byte, 64<<10)
	var k int
	errno := s.withXattrFD(n, h, func(fd int) (err error) { k, err = unix.Fgetxattr(fd, name, buf); return })
	if errno != 0 {
		return nil, errno
	}
	return sizedReply(le.Uint32(body), buf[:k])
}

func (s *Server) listxattr(n *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.EINVAL
	}
	buf := make([]byte, 64<<10)
	var k int
	errno := s.withXattrFD(n, h, func(fd int) (err error) { k, err = unix.Flistxattr(fd, buf); return })
	if errno != 0 {
		return nil, errno
	}
	return sizedReply(le.Uint32(body), buf[:k])
}

func (s *Server) setxattr(n *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	if len(body) < 8 {
		return nil, unix.EINVAL
	}
	size, flags := le.Uint32(body), int(le.Uint32(body[4:]))
	name, ok := attrName(body[8:])
	if !ok {
		return nil, unix.EINVAL
	}
	value := body[8+len(name)+1:]
	if uint64(size) > uint64(len(value)) {
		return nil, unix.EINVAL
	}
	return nil, s.withXattrFD(n, h, func(fd int) error { return unix.Fsetxattr(fd, name, value[:size], flags) })
}

func (s *Server) removexattr(n *node, h inHeader, body []byte) ([]byte, unix.Errno) {
	name, ok := attrName(body)
	if !ok {
		return nil, unix.EINVAL
	}
	return nil, s.withXattrFD(n, h, func(fd int) error { return unix.Fremovexattr(fd, name) })
}
