package vsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/novm/novm/hypervisor/virtio"
)

const (
	rxQueue = 0 // device → guest
	txQueue = 1 // guest → device
	evQueue = 2 // device events (transport reset)

	queueSize = 256

	// bufAlloc is the receive buffer each host-side connection
	// advertises: the most the guest may have in flight to it.
	bufAlloc = 256 << 10
	// sendBuf bounds what a host writer can queue before it blocks.
	sendBuf = 256 << 10
	// maxPayload bounds one guest packet, whatever its header claims.
	maxPayload = 64 << 10

	eventTransportReset = 0
)

type connKey struct {
	local uint32 // host port
	peer  uint32 // guest port
}

// control is a packet without payload waiting for an rx buffer.
type control struct {
	key   connKey
	op    uint16
	flags uint32
}

// Device is the virtio-vsock device. All connection state is guarded by
// mu; queues are served inline by whichever goroutine kicked them.
type Device struct {
	guestCID uint64
	log      *logrus.Entry

	mu        sync.Mutex
	rx, tx    *virtio.Queue
	ev        *virtio.Queue
	irq       virtio.Interrupt
	active    bool
	broken    bool
	conns     map[connKey]*Conn
	listeners map[uint32]*Listener
	ctrl      []control
	ready     []*Conn // connections with data or a shutdown to send
	nextPort  uint32
}

// New returns a device giving the guest context ID guestCID.
func New(guestCID uint64, log *logrus.Entry) *Device {
	return &Device{guestCID: guestCID, log: log, conns: map[connKey]*Conn{}, listeners: map[uint32]*Listener{}, nextPort: 1 << 30}
}

// GuestCID is the guest's context ID.
func (d *Device) GuestCID() uint64 { return d.guestCID }

// Type implements virtio.Device.
func (d *Device) Type() uint32 { return virtio.IDVsock }

// Features implements virtio.Device: stream sockets only.
func (d *Device) Features() uint64 { return 0 }

// QueueMaxSizes implements virtio.Device.
func (d *Device) QueueMaxSizes() []uint16 { return []uint16{queueSize, queueSize, queueSize} }

// ReadConfig implements virtio.Device: the config space is the guest CID.
func (d *Device) ReadConfig(offset uint64, data []byte) {
	var cfg [8]byte
	binary.LittleEndian.PutUint64(cfg[:], d.guestCID)
	clear(data)
	if offset < 8 {
		copy(data, cfg[offset:])
	}
}

// WriteConfig implements virtio.Device; the config space is read-only.
func (d *Device) WriteConfig(offset uint64, data []byte) {}

// Activate implements virtio.Device.
func (d *Device) Activate(mem virtio.Memory, features uint64, queues []*virtio.Queue, irq virtio.Interrupt) error {
	if queues[rxQueue] == nil || queues[txQueue] == nil {
		return errors.New("vsock: driver did not set up the rx and tx queues")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rx, d.tx, d.ev, d.irq = queues[rxQueue], queues[txQueue], queues[evQueue], irq
	d.active, d.broken = true, false
	return nil
}

// Reset implements virtio.Device: every connection is reset.
func (d *Device) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = false
	d.rx, d.tx, d.ev, d.irq = nil, nil, nil, nil
	d.resetAllLocked(errors.New("vsock: device reset by the guest"))
}

func (d *Device) resetAllLocked(err error) {
	for _, c := range d.conns {
		c.resetLocked(err)
	}
	d.conns = map[connKey]*Conn{}
	d.ctrl, d.ready = nil, nil
}

// TransportReset tells the guest that every connection is gone (as after a
// snapshot restore) and resets them on the host side too.
func (d *Device) TransportReset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resetAllLocked(errors.New("vsock: transport reset"))
	if d.ev == nil || d.broken {
		return
	}
	c, err := d.ev.Pop()
	if err != nil || c == nil {
		return
	}
	n := 0
	if w := c.Writable(); len(w) > 0 && len(w[0].Buf) >= 4 {
		binary.LittleEndian.PutUint32(w[0].Buf, eventTransportReset)
		n = 4
	}
	d.ev.Push(c.Head, uint32(n))
	d.irq.UsedBuffers()
}

// QueueNotify implements virtio.Device.
func (d *Device) QueueNotify(index int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active || d.broken {
		return
	}
	if index == txQueue {
		d.processTxLocked()
	}
	d.fillRxLocked()
}

// fail stops the device after the guest handed it a broken ring.
func (d *Device) failLocked(err error) {
	d.log.WithError(err).Warn("vsock: bad queue from guest, device stopped")
	d.broken = true
	d.resetAllLocked(fmt.Errorf("vsock: device stopped: %w", err))
}

// processTxLocked handles every packet the guest sent.
func (d *Device) processTxLocked() {
	used := false
	for {
		c, err := d.tx.Pop()
		if err != nil {
			d.failLocked(err)
			return
		}
		if c == nil {
			break
		}
		hdr, payload, err := readPacket(c.Readable())
		if err != nil {
			d.log.WithError(err).Debug("vsock: dropping malformed packet")
		} else {
			d.handleLocked(hdr, payload)
		}
		if err := d.tx.Push(c.Head, 0); err != nil {
			d.failLocked(err)
			return
		}
		used = true
	}
	if used {
		d.irq.UsedBuffers()
	}
}

// readPacket copies a packet out of guest memory: header first, then as
// much payload as the header claims, which must be present in full.
func readPacket(bufs []virtio.Descriptor) (header, []byte, error) {
	var hb [hdrSize]byte
	n, rest := gather(hb[:], bufs, 0)
	if n < hdrSize {
		return header{}, nil, errShortHeader
	}
	h, _ := decodeHeader(hb[:])
	if h.Len > maxPayload {
		return h, nil, fmt.Errorf("vsock: payload of %d bytes exceeds %d", h.Len, maxPayload)
	}
	payload := make([]byte, h.Len)
	if m, _ := gather(payload, bufs, rest); m != len(payload) {
		return h, nil, fmt.Errorf("vsock: header claims %d payload bytes, buffers hold %d", h.Len, m)
	}
	return h, payload, nil
}

// gather copies from a descriptor list into dst starting skip bytes in,
// returning the bytes copied and the position after them.
func gather(dst []byte, bufs []virtio.Descriptor, skip int) (int, int) {
	n, pos := 0, 0
	for _, b := range bufs {
		if n == len(dst) {
			break
		}
		buf := b.Buf
		if pos+len(buf) <= skip {
			pos += len(buf)
			continue
		}
		if skip > pos {
			buf = buf[skip-pos:]
			pos = skip
		}
		k := copy(dst[n:], buf)
		n += k
		pos += k
	}
	return n, pos
}

// handleLocked acts on one packet from the guest.
func (d *Device) handleLocked(h header, payload []byte) {
	if h.DstCID != HostCID || h.SrcCID != d.guestCID {
		return // not addressed to us, or spoofed: drop
	}
	key := connKey{local: h.DstPort, peer: h.SrcPort}
	if h.Type != typeStream {
		if h.Op != opRST {
			d.queueControlLocked(key, opRST, 0)
		}
		return
	}
	c := d.conns[key]
	if c != nil {
		c.peerBufAlloc, c.peerFwdCnt = h.BufAlloc, h.FwdCnt
	}
	switch h.Op {
	case opRequest:
		l := d.listeners[h.DstPort]
		if c != nil || l == nil {
			d.queueControlLocked(key, opRST, 0)
			return
		}
		c = newConn(d, key, true)
		c.peerBufAlloc, c.peerFwdCnt = h.BufAlloc, h.FwdCnt
		select {
		case l.accept <- c:
			d.conns[key] = c
			d.queueControlLocked(key, opResponse, 0)
		default:
			d.queueControlLocked(key, opRST, 0) // backlog full
		}
	case opResponse:
		if c == nil || c.established {
			d.queueControlLocked(key, opRST, 0)
			return
		}
		c.established = true
		c.dialDone <- nil
	case opRST:
		if c != nil {
			c.resetLocked(errConnReset)
			d.removeLocked(c)
		}
	case opShutdown:
		if c == nil {
			return
		}
		c.peerShutRecv = c.peerShutRecv || h.Flags&shutdownRcv != 0
		c.peerShutSend = c.peerShutSend || h.Flags&shutdownSend != 0
		c.cond.Broadcast()
		if c.peerShutRecv && c.peerShutSend {
			// The peer closed: acknowledge with RST, as Linux expects.
			d.queueControlLocked(key, opRST, 0)
			c.closedByPeer = true
			d.removeLocked(c)
		}
	case opRW:
		if c == nil || !c.established {
			d.queueControlLocked(key, opRST, 0)
			return
		}
		if len(c.recv)+len(payload) > bufAlloc {
			// The guest ignored the credit we gave it.
			d.log.Warnf("vsock: guest port %d overran its credit, connection reset", key.peer)
			c.resetLocked(errConnReset)
			d.removeLocked(c)
			d.queueControlLocked(key, opRST, 0)
			return
		}
		c.recv = append(c.recv, payload...)
		c.cond.Broadcast()
	case opCreditUpdate:
		if c != nil {
			c.cond.Broadcast()
			d.markReadyLocked(c)
		}
	case opCreditRequest:
		if c != nil {
			d.queueControlLocked(key, opCreditUpdate, 0)
		}
	default:
		if c != nil {
			d.queueControlLocked(key, opRST, 0)
		}
	}
}

func (d *Device) removeLocked(c *Conn) {
	if d.conns[c.key] == c {
		delete(d.conns, c.key)
	}
}

func (d *Device) queueControlLocked(key connKey, op uint16, flags uint32) {
	d.ctrl = append(d.ctrl, control{key: key, op: op, flags: flags})
}

func (d *Device) markReadyLocked(c *Conn) {
	if !c.inReady {
		c.inReady = true
		d.ready = append(d.ready, c)
	}
}

// fillRxLocked moves control packets, then connection data (round robin,
// within each connection's credit) into the guest's receive buffers. A
// connection without credit is skipped, so it cannot hold up the others.
func (d *Device) fillRxLocked() {
	if d.rx == nil || d.broken {
		return
	}
	used := false
	for d.rx.Pending() {
		var h header
		var data []byte
		var conn *Conn
		switch {
		case len(d.ctrl) > 0:
			p := d.ctrl[0]
			d.ctrl = d.ctrl[1:]
			h = d.headerLocked(p.key, p.op, p.flags)
		default:
			conn = d.nextReadyLocked()
			if conn == nil {
				goto done
			}
		}
		c, err := d.rx.Pop()
		if err != nil {
			d.failLocked(err)
			return
		}
		bufs := c.Writable()
		room := 0
		for _, b := range bufs {
			room += len(b.Buf)
		}
		if room < hdrSize {
			d.log.Warn("vsock: guest rx buffer smaller than a packet header")
			d.rx.Push(c.Head, 0)
			used = true
			continue
		}
		if conn != nil {
			h, data = conn.takeLocked(room - hdrSize)
		}
		var hb [hdrSize]byte
		h.Len = uint32(len(data))
		h.encode(hb[:])
		n := scatter(bufs, hb[:], 0)
		n += scatter(bufs, data, n)
		if err := d.rx.Push(c.Head, uint32(n)); err != nil {
			d.failLocked(err)
			return
		}
		used = true
	}
done:
	if used {
		d.irq.UsedBuffers()
	}
}

// nextReadyLocked picks the next connection able to send something.
func (d *Device) nextReadyLocked() *Conn {
	for len(d.ready) > 0 {
		c := d.ready[0]
		d.ready = d.ready[1:]
		c.inReady = false
		if c.canSendLocked() {
			// Back of the line if it will still have more.
			return c
		}
	}
	return nil
}

// headerLocked fills a header for key with the connection's credit.
func (d *Device) headerLocked(key connKey, op uint16, flags uint32) header {
	h := header{SrcCID: HostCID, DstCID: d.guestCID, SrcPort: key.local, DstPort: key.peer,
		Type: typeStream, Op: op, Flags: flags, BufAlloc: bufAlloc}
	if c := d.conns[key]; c != nil {
		h.FwdCnt = c.fwdCnt
		c.fwdSent = c.fwdCnt
	}
	return h
}

// scatter copies src into the descriptor list starting at byte offset off.
func scatter(bufs []virtio.Descriptor, src []byte, off int) int {
	n, pos := 0, 0
	for _, b := range bufs {
		if n == len(src) {
			break
		}
		buf := b.Buf
		if pos+len(buf) <= off {
			pos += len(buf)
			continue
		}
		if off > pos {
			buf = buf[off-pos:]
			pos = off
		}
		k := copy(buf, src[n:])
		n += k
		pos += k
	}
	return n
}
