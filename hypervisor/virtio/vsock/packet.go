// Package vsock is a virtio-vsock device implemented entirely in user
// space (no vhost-vsock): stream sockets between the guest and this
// process, with the spec's credit-based flow control in both directions.
// Host code gets a net.Conn per connection (Dial, Listen) and, for humans,
// a Unix socket speaking Firecracker's "CONNECT <port>" handshake.
package vsock

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Well-known CIDs.
const (
	HostCID         = 2
	DefaultGuestCID = 3
)

// Packet header (struct virtio_vsock_hdr, little endian, packed).
const hdrSize = 44

const (
	typeStream = 1

	opInvalid       = 0
	opRequest       = 1
	opResponse      = 2
	opRST           = 3
	opShutdown      = 4
	opRW            = 5
	opCreditUpdate  = 6
	opCreditRequest = 7

	shutdownRcv  = 1 // the sender will receive no more data
	shutdownSend = 2 // the sender will send no more data
)

var opNames = [...]string{"INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN", "RW", "CREDIT_UPDATE", "CREDIT_REQUEST"}

// header is a decoded packet header.
type header struct {
	SrcCID, DstCID   uint64
	SrcPort, DstPort uint32
	Len              uint32
	Type             uint16
	Op               uint16
	Flags            uint32
	BufAlloc         uint32
	FwdCnt           uint32
}

func (h header) String() string {
	op := fmt.Sprintf("op%d", h.Op)
	if int(h.Op) < len(opNames) {
		op = opNames[h.Op]
	}
	return fmt.Sprintf("%s %d:%d->%d:%d len=%d", op, h.SrcCID, h.SrcPort, h.DstCID, h.DstPort, h.Len)
}

var errShortHeader = errors.New("vsock: packet shorter than its header")

// decodeHeader reads a header from b, which must be a private copy (the
// guest can change its memory while the device reads it).
func decodeHeader(b []byte) (header, error) {
	if len(b) < hdrSize {
		return header{}, errShortHeader
	}
	le := binary.LittleEndian
	return header{
		SrcCID: le.Uint64(b[0:]), DstCID: le.Uint64(b[8:]),
		SrcPort: le.Uint32(b[16:]), DstPort: le.Uint32(b[20:]),
		Len: le.Uint32(b[24:]), Type: le.Uint16(b[28:]), Op: le.Uint16(b[30:]),
		Flags: le.Uint32(b[32:]), BufAlloc: le.Uint32(b[36:]), FwdCnt: le.Uint32(b[40:]),
	}, nil
}

func (h header) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], h.SrcCID)
	le.PutUint64(b[8:], h.DstCID)
	le.PutUint32(b[16:], h.SrcPort)
	le.PutUint32(b[20:], h.DstPort)
	le.PutUint32(b[24:], h.Len)
	le.PutUint16(b[28:], h.Type)
	le.PutUint16(b[30:], h.Op)
	le.PutUint32(b[32:], h.Flags)
	le.PutUint32(b[36:], h.BufAlloc)
	le.PutUint32(b[40:], h.FwdCnt)
}
