// Package virtiofs is the FUSE server behind novm's virtio-fs device. The
// guest is hostile: requests are parsed from private copies with explicit
// bounds checks (no unsafe casts of guest bytes), files are reached only
// through file descriptors one validated name at a time, and node ids are
// the server's own numbers.
//
// This file is the FUSE wire format (protocol 7.38) that the server uses.
package virtiofs

import (
	"encoding/binary"
	"errors"
)

// FUSE opcodes.
const (
	opLookup        = 1
	opForget        = 2
	opGetattr       = 3
	opSetattr       = 4
	opReadlink      = 5
	opSymlink       = 6
	opMknod         = 8
	opMkdir         = 9
	opUnlink        = 10
	opRmdir         = 11
	opRename        = 12
	opLink          = 13
	opOpen          = 14
	opRead          = 15
	opWrite         = 16
	opStatfs        = 17
	opRelease       = 18
	opFsync         = 20
	opSetxattr      = 21
	opGetxattr      = 22
	opListxattr     = 23
	opRemovexattr   = 24
	opFlush         = 25
	opInit          = 26
	opOpendir       = 27
	opReaddir       = 28
	opReleasedir    = 29
	opFsyncdir      = 30
	opAccess        = 34
	opCreate        = 35
	opInterrupt     = 36
	opDestroy       = 38
	opBatchForget   = 42
	opFallocate     = 43
	opReaddirplus   = 44
	opRename2       = 45
	opLseek         = 46
	opCopyFileRange = 47
	opSyncfs        = 50
)

// fopenKeepCache in open_out: the guest keeps the file's page cache
// across opens instead of dropping it.
const fopenKeepCache = 1 << 1

const (
	inHeaderSize  = 40
	outHeaderSize = 16
	attrSize      = 88
	entryOutSize  = 40 + attrSize
	attrOutSize   = 16 + attrSize
	direntSize    = 24 // before the name

	kernelVersion = 7
	// minorVersion is the FUSE minor the server speaks (Linux 6.1's).
	minorVersion = 38
)

var le = binary.LittleEndian

// inHeader is struct fuse_in_header.
type inHeader struct {
	Len    uint32
	Opcode uint32
	Unique uint64
	NodeID uint64
	UID    uint32
	GID    uint32
	PID    uint32
}

var errShort = errors.New("fuse: request shorter than its header says")

// parseIn splits a request into its header and body, checking that the
// length the header claims is the length that arrived.
func parseIn(b []byte) (inHeader, []byte, error) {
	if len(b) < inHeaderSize {
		return inHeader{}, nil, errShort
	}
	h := inHeader{
		Len: le.Uint32(b[0:]), Opcode: le.Uint32(b[4:]), Unique: le.Uint64(b[8:]),
		NodeID: le.Uint64(b[16:]), UID: le.Uint32(b[24:]), GID: le.Uint32(b[28:]), PID: le.Uint32(b[32:]),
	}
	if h.Len < inHeaderSize || int(h.Len) > len(b) {
		return h, nil, errShort
	}
	return h, b[inHeaderSize:h.Len], nil
}

// attr is struct fuse_attr.
type attr struct {
	Ino, Size, Blocks, Atime, Mtime, Ctime uint64
	AtimeNs, MtimeNs, CtimeNs              uint32
	Mode, Nlink, UID, GID, Rdev, Blksize   uint32
}

func (a attr) put(b []byte) {
	le.PutUint64(b[0:], a.Ino)
	le.PutUint64(b[8:], a.Size)
	le.PutUint64(b[16:], a.Blocks)
	le.PutUint64(b[24:], a.Atime)
	le.PutUint64(b[32:], a.Mtime)
	le.PutUint64(b[40:], a.Ctime)
	le.PutUint32(b[48:], a.AtimeNs)
	le.PutUint32(b[52:], a.MtimeNs)
	le.PutUint32(b[56:], a.CtimeNs)
	le.PutUint32(b[60:], a.Mode)
	le.PutUint32(b[64:], a.Nlink)
	le.PutUint32(b[68:], a.UID)
	le.PutUint32(b[72:], a.GID)
	le.PutUint32(b[76:], a.Rdev)
	le.PutUint32(b[80:], a.Blksize)
	le.PutUint32(b[84:], 0)
}

// entryOut is struct fuse_entry_out.
func putEntryOut(b []byte, nodeID uint64, entryValid, attrValid uint64, a attr) {
	le.PutUint64(b[0:], nodeID)
	le.PutUint64(b[8:], 0) // generation
	le.PutUint64(b[16:], entryValid)
	le.PutUint64(b[24:], attrValid)
	le.PutUint32(b[32:], 0)
	le.PutUint32(b[36:], 0)
	a.put(b[40:])
}

// validName reports whether a guest-supplied name is a single path
// component the server will resolve: not empty, not . or .., no '/' or
// NUL, at most 255 bytes.
func validName(name []byte) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	if string(name) == "." || string(name) == ".." {
		return false
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return false
		}
	}
	return true
}

// cString takes a NUL-terminated string from the front of b.
func cString(b []byte) ([]byte, bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], true
		}
	}
	return nil, false
}
