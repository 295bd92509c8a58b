package virtiofs

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Config tunes a server.
type Config struct {
	// MaxFDs bounds the descriptors the guest can make the server hold.
	MaxFDs int
}

// Options tune a share.
type Options struct {
	// ReadOnly refuses every mutating request with EROFS.
	ReadOnly bool
	// KeepCache lets the guest keep a file's cached pages across opens
	// (FOPEN_KEEP_CACHE); with the auto-invalidation negotiated at INIT,
	// a host-side change still reaches the guest once its attribute
	// timeout lets it see the new mtime or size.
	KeepCache bool
	// EntryTimeout and AttrTimeout (seconds) are how long the guest may
	// cache names and attributes: long for read-only layers, short for
	// shares the host may change.
	EntryTimeout, AttrTimeout uint64
}

// Server serves shares to the guest: the root of the mount is a virtual
// directory with one entry per share.
type Server struct {
	nodes   *nodeTable
	creds   *credWorker
	started time.Time

	// opMu is held shared by every request and exclusively while shares
	// are added or removed, so no request uses a descriptor that removal
	// closes (and the kernel could hand out again).
	opMu   sync.RWMutex
	shares map[string]*share

	mu      sync.Mutex
	handles map[uint64]*handle
	nextFH  uint64
}

// handle is an open file or a directory listing.
type handle struct {
	fd      int
	share   *share
	entries []dirEntry // directories: snapshot taken at OPENDIR
}

type dirEntry struct {
	name string
	ino  uint64
	typ  uint8
}

// New returns a server with no shares.
func New(cfg Config) *Server {
	if cfg.MaxFDs == 0 {
		cfg.MaxFDs = 65536
	}
	return &Server{nodes: newNodeTable(cfg.MaxFDs), creds: newCredWorker(), started: time.Now(),
		shares: map[string]*share{}, handles: map[uint64]*handle{}, nextFH: 1}
}

// Close releases every descriptor the server holds.
func (s *Server) Close() {
	s.mu.Lock()
	for fh, h := range s.handles {
		if h.fd >= 0 {
			unix.Close(h.fd)
		}
		delete(s.handles, fh)
	}
	s.mu.Unlock()
	s.nodes.closeAll()
	s.creds.close()
}

// Handle implements fs.Server.
func (s *Server) Handle(in []byte, out [][]byte) int {
	h, body, err := parseIn(in)
	if err != nil {
		return 0 // no trustworthy unique id to answer
	}
	s.opMu.RLock()
	defer s.opMu.RUnlock()
	switch h.Opcode {
	case opForget:
		if len(body) >= 8 {
			s.nodes.forget(h.NodeID, le.Uint64(body))
		}
		return 0
	case opBatchForget:
		s.batchForget(body)
		return 0
	case opInterrupt:
		return 0 // requests are answered synchronously: nothing to interrupt
	case opRead:
		return s.readInto(h.Unique, body, out)
	}
	payload, errno := s.dispatch(h, body)
	return writeReply(out, h.Unique, errno, payload)
}

func (s *Server) dispatch(h inHeader, body []byte) ([]byte, unix.Errno) {
	switch h.Opcode {
	case opInit:
		return s.init(body)
	case opDestroy:
		return nil, 0
	}
	n := s.nodes.get(h.NodeID)
	if n != nil {
		if n.share == nil {
			return s.rootOp(n, h, body)
		}
		if n.share.opts.ReadOnly && mutating(h.Opcode) {
			return nil, unix.EROFS
		}
	}
	// Requests that act on an open handle (or on nothing): the handle, not
	// the node in the header, says what they touch.
	switch h.Opcode {
	case opWrite:
		return s.write(h, body)
	case opFsync:
		return s.fsync(body)
	case opFallocate:
		return s.fallocate(h, body)
	case opLseek:
		return s.lseek(body)
	case opCopyFileRange:
		return s.copyFileRange(h, body)
	case opRelease, opReleasedir:
		return s.release(body)
	case opReaddir:
		return s.readdir(n, body, false)
	case opFlush, opFsyncdir, opSyncfs:
		return nil, 0
	}
	op, ok := nodeOps[h.Opcode]
	if !ok {
		return nil, unix.ENOSYS
	}
	if n == nil {
		return nil, unix.ENOENT
	}
	return op(s, n, h, body)
}

// nodeOp answers a request on the node in its header, which exists.
type nodeOp func(s *Server, n *node, h inHeader, body []byte) ([]byte, unix.Errno)

var nodeOps = map[uint32]nodeOp{
	opLookup:   func(s *Server, n *node, _ inHeader, b []byte) ([]byte, unix.Errno) { return s.lookup(n, b) },
	opGetattr:  func(s *Server, n *node, _ inHeader, _ []byte) ([]byte, unix.Errno) { return s.getattr(n) },
	opSetattr:  (*Server).setattr,
	opReadlink: func(s *Server, n *node, _ inHeader, _ []byte) ([]byte, unix.Errno) { return s.readlink(n) },
	opOpen:     func(s *Server, n *node, h inHeader, b []byte) ([]byte, unix.Errno) { return s.open(n, h, b, false) },
	opOpendir:  func(s *Server, n *node, h inHeader, b []byte) ([]byte, unix.Errno) { return s.open(n, h, b, true) },
	opReaddirplus: func(s *Server, n *node, _ inHeader, b []byte) ([]byte, unix.Errno) {
		return s.readdir(n, b, true)
	},
	opStatfs: func(s *Server, n *node, _ inHeader, _ []byte) ([]byte, unix.Errno) { return s.statfs(n) },
	// The guest kernel checks permissions itself (virtio-fs mounts with
	// default_permissions); existence is what is left to say.
	opAccess:      func(*Server, *node, inHeader, []byte) ([]byte, unix.Errno) { return nil, 0 },
	opMkdir:       (*Server).mkdir,
	opUnlink:      func(s *Server, n *node, h inHeader, b []byte) ([]byte, unix.Errno) { return s.remove(n, h, b, false) },
	opRmdir:       func(s *Server, n *node, h inHeader, b []byte) ([]byte, unix.Errno) { return s.remove(n, h, b, true) },
	opCreate:      (*Server).create,
	opRename:      func(s *Server, n *node, h inHeader, b []byte) ([]byte, unix.Errno) { return s.rename(n, h, b, false) },
	opRename2:     func(s *Server, n *node, h inHeader, b []byte) ([]byte, unix.Errno) { return s.rename(n, h, b, true) },
	opSymlink:     (*Server).symlink,
	opLink:        (*Server).link,
	opMknod:       (*Server).mknod,
	opGetxattr:    (*Server).getxattr,
	opListxattr:   (*Server).listxattr,
	opSetxattr:    (*Server).setxattr,
	opRemovexattr: (*Server).removexattr,
}

// writeReply scatters the out header and payload into the guest's buffers.
func writeReply(out [][]byte, unique uint64, errno unix.Errno, payload []byte) int {
	if errno != 0 {
		payload = nil
	}
	var hdr [outHeaderSize]byte
	le.PutUint32(hdr[0:], uint32(outHeaderSize+len(payload)))
	e := -int32(errno)
	le.PutUint32(hdr[4:], uint32(e))
	le.PutUint64(hdr[8:], unique)
	room := 0
	for _, o := range out {
		room += len(o)
	}
	if room < outHeaderSize+len(payload) {
		if room < outHeaderSize {
			return 0
		}
		// The guest's buffers cannot take the reply: say so instead.
		payload = nil
		le.PutUint32(hdr[0:], outHeaderSize)
		e = -int32(unix.ERANGE)
		le.PutUint32(hdr[4:], uint32(e))
	}
	return scatter(out, hdr[:], payload)
}

// scatter copies parts, back to back, into the buffers of out (which the
// caller has checked are large enough) and returns the bytes copied.
func scatter(out [][]byte, parts ...[]byte) int {
	n, i, at := 0, 0, 0
	for _, src := range parts {
		for len(src) > 0 {
			for at == len(out[i]) {
				i, at = i+1, 0
			}
			k := copy(out[i][at:], src)
			at, src = at+k, src[k:]
			n += k
		}
	}
	return n
}

func (s *Server) init(body []byte) ([]byte, unix.Errno) {
	if len(body) < 16 {
		return nil, unix.EINVAL
	}
	major, minor, readahead, flags := le.Uint32(body[0:]), le.Uint32(body[4:]), le.Uint32(body[8:]), le.Uint32(body[12:])
	if major != kernelVersion {
		return nil, unix.EPROTO
	}
	const (
		asyncRead    = 1 << 0
		atomicOTrunc = 1 << 3 // O_TRUNC comes with OPEN, no separate SETATTR
		bigWrites    = 1 << 5 // without it the guest sends one page per WRITE
		// autoInvalData: the guest drops a file's cached pages when it
		// sees the mtime or size change on revalidation, which makes
		// FOPEN_KEEP_CACHE safe for files the host may change.
		autoInvalData   = 1 << 12
		doReaddirplus   = 1 << 13
		readdirplusAuto = 1 << 14
		parallelDirops  = 1 << 18
		maxPages        = 1 << 22
	)
	out := make([]byte, 64)
	le.PutUint32(out[0:], kernelVersion)
	le.PutUint32(out[4:], min(minor, minorVersion))
	le.PutUint32(out[8:], readahead)
	le.PutUint32(out[12:], flags&(asyncRead|atomicOTrunc|bigWrites|autoInvalData|doReaddirplus|readdirplusAuto|parallelDirops|maxPages))
	le.PutUint16(out[16:], 64)    // max_background
	le.PutUint16(out[18:], 48)    // congestion_threshold
	le.PutUint32(out[20:], 1<<20) // max_write
	le.PutUint32(out[24:], 1)     // time_gran: nanoseconds
	le.PutUint16(out[28:], 256)   // max_pages
	return out, 0
}

func errnoOf(err error) unix.Errno {
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	if pe, ok := err.(*os.PathError); ok {
		return errnoOf(pe.Err)
	}
	return unix.EIO
}
