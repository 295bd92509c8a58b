package vsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

var (
	errConnReset   = fmt.Errorf("vsock: %w", syscall.ECONNRESET)
	errConnRefused = fmt.Errorf("vsock: %w", syscall.ECONNREFUSED)
	errClosed      = net.ErrClosed
)

// Addr is a vsock address.
type Addr struct {
	CID  uint64
	Port uint32
}

// Network implements net.Addr.
func (a Addr) Network() string { return "vsock" }

func (a Addr) String() string { return fmt.Sprintf("vsock:%d:%d", a.CID, a.Port) }

// Conn is the host end of one stream connection. It implements net.Conn
// (plus CloseWrite); its buffers are bounded on both sides: reads return
// credit to the guest, writes wait for the guest's credit.
type Conn struct {
	d    *Device
	key  connKey
	cond *sync.Cond // on d.mu

	established  bool
	dialDone     chan error
	inReady      bool
	closedByPeer bool

	// guest → host
	recv         []byte
	fwdCnt       uint32 // bytes handed to the reader, ever
	fwdSent      uint32 // fwdCnt last reported to the guest
	peerShutSend bool   // guest sends no more: EOF after recv drains

	// host → guest
	send         []byte
	txCnt        uint32 // bytes sent to the guest, ever
	peerBufAlloc uint32
	peerFwdCnt   uint32
	peerShutRecv bool // guest receives no more: writes fail
	shutSend     bool // CloseWrite called: SHUTDOWN once send drains
	shutRecv     bool // Close called: also tell the guest we stop reading
	shutSent     bool

	closed        bool
	err           error
	readDeadline  deadline
	writeDeadline deadline
}

func newConn(d *Device, key connKey, established bool) *Conn {
	c := &Conn{d: d, key: key, established: established, dialDone: make(chan error, 1)}
	c.cond = sync.NewCond(&d.mu)
	c.readDeadline.c, c.writeDeadline.c = c.cond, c.cond
	return c
}

func (c *Conn) resetLocked(err error) {
	if c.err == nil {
		c.err = err
	}
	if !c.established {
		select {
		case c.dialDone <- errConnRefused:
		default:
		}
	}
	c.cond.Broadcast()
}

// credit is how many bytes the guest can take now.
func (c *Conn) creditLocked() uint32 {
	inFlight := c.txCnt - c.peerFwdCnt
	if inFlight >= c.peerBufAlloc {
		return 0
	}
	return c.peerBufAlloc - inFlight
}

func (c *Conn) canSendLocked() bool {
	if c.err != nil || !c.established {
		return false
	}
	if len(c.send) > 0 {
		return c.creditLocked() > 0 && !c.peerShutRecv
	}
	return (c.shutSend || c.shutRecv) && !c.shutSent
}

// takeLocked builds the next packet for this connection: data within
// credit and room, or the SHUTDOWN that follows the last data.
func (c *Conn) takeLocked(room int) (header, []byte) {
	d := c.d
	if len(c.send) > 0 {
		n := min(len(c.send), room, int(c.creditLocked()), maxPayload)
		data := c.send[:n:n]
		c.send = c.send[n:]
		c.txCnt += uint32(n)
		c.cond.Broadcast() // room for writers
		if c.canSendLocked() {
			d.markReadyLocked(c)
		}
		return d.headerLocked(c.key, opRW, 0), data
	}
	var flags uint32 = shutdownSend
	if c.shutRecv {
		flags |= shutdownRcv
	}
	c.shutSent = true
	return d.headerLocked(c.key, opShutdown, flags), nil
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(c.recv) == 0 {
		switch {
		case c.closed:
			return 0, errClosed
		case c.peerShutSend:
			return 0, io.EOF
		case c.err != nil:
			return 0, c.err
		case c.readDeadline.expired():
			return 0, os.ErrDeadlineExceeded
		}
		c.cond.Wait()
	}
	n := copy(p, c.recv)
	c.recv = c.recv[n:]
	if len(c.recv) == 0 {
		c.recv = nil // let the buffer go
	}
	c.fwdCnt += uint32(n)
	// Return credit once a quarter of the window was consumed, so the
	// guest never stalls on a full window while the host reads.
	if c.fwdCnt-c.fwdSent >= bufAlloc/4 && c.err == nil && !c.closedByPeer {
		d.queueControlLocked(c.key, opCreditUpdate, 0)
		d.fillRxLocked()
	}
	return n, nil
}

// Write implements net.Conn. It returns once p is queued; it blocks while
// the connection's send buffer is full (the guest is not reading).
func (c *Conn) Write(p []byte) (int, error) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	written := 0
	for written < len(p) {
		switch {
		case c.closed || c.shutSend:
			return written, errClosed
		case c.err != nil:
			return written, c.err
		case c.peerShutRecv:
			return written, fmt.Errorf("vsock: %w", syscall.EPIPE)
		case c.writeDeadline.expired():
			return written, os.ErrDeadlineExceeded
		}
		if room := sendBuf - len(c.send); room > 0 {
			n := min(room, len(p)-written)
			c.send = append(c.send, p[written:written+n]...)
			written += n
			d.markReadyLocked(c)
			d.fillRxLocked()
			continue
		}
		c.cond.Wait()
	}
	return written, nil
}

// CloseWrite tells the guest no more data comes (after what is queued).
func (c *Conn) CloseWrite() error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.closed || c.shutSend {
		return nil
	}
	c.shutSend = true
	d.markReadyLocked(c)
	d.fillRxLocked()
	return nil
}

// Close implements net.Conn: queued data is still delivered, then the
// guest is told both directions are shut; it answers with RST.
func (c *Conn) Close() error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.shutSend, c.shutRecv = true, true
	c.recv = nil
	c.cond.Broadcast()
	if c.err == nil && !c.closedByPeer && c.established {
		d.markReadyLocked(c)
		d.fillRxLocked()
	} else {
		d.removeLocked(c)
	}
	return nil
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return Addr{CID: HostCID, Port: c.key.local} }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return Addr{CID: c.d.guestCID, Port: c.key.peer} }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.readDeadline.set(t)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.writeDeadline.set(t)
	return nil
}

// deadline wakes a connection's waiters when it passes.
type deadline struct {
	c     *sync.Cond
	t     time.Time
	timer *time.Timer
}

func (dl *deadline) set(t time.Time) {
	if dl.timer != nil {
		dl.timer.Stop()
		dl.timer = nil
	}
	dl.t = t
	if t.IsZero() {
		return
	}
	if d := time.Until(t); d > 0 {
		dl.timer = time.AfterFunc(d, func() {
			dl.c.L.Lock()
			dl.c.Broadcast()
			dl.c.L.Unlock()
		})
	}
	dl.c.Broadcast()
}

func (dl *deadline) expired() bool { return !dl.t.IsZero() && !time.Now().Before(dl.t) }

// Dial connects to a port the guest listens on.
func (d *Device) Dial(ctx context.Context, port uint32) (*Conn, error) {
	c, err := d.startDial(port)
	if err != nil {
		return nil, err
	}
	return d.finishDial(ctx, c)
}

// startDial sends the connection request.
func (d *Device) startDial(port uint32) (*Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active || d.broken {
		return nil, errors.New("vsock: guest driver not ready")
	}
	key := connKey{local: d.allocPortLocked(), peer: port}
	c := newConn(d, key, false)
	d.conns[key] = c
	d.queueControlLocked(key, opRequest, 0)
	d.fillRxLocked()
	return c, nil
}

// finishDial waits for the guest's answer to startDial.
func (d *Device) finishDial(ctx context.Context, c *Conn) (*Conn, error) {
	port, key := c.key.peer, c.key
	select {
	case err := <-c.dialDone:
		if err != nil {
			d.mu.Lock()
			d.removeLocked(c)
			d.mu.Unlock()
			return nil, fmt.Errorf("connect to guest port %d: %w", port, err)
		}
		return c, nil
	case <-ctx.Done():
		d.mu.Lock()
		d.removeLocked(c)
		d.queueControlLocked(key, opRST, 0)
		d.fillRxLocked()
		d.mu.Unlock()
		return nil, fmt.Errorf("connect to guest port %d: %w", port, ctx.Err())
	}
}

func (d *Device) allocPortLocked() uint32 {
	for {
		p := d.nextPort
		d.nextPort++
		if d.nextPort == 0 {
			d.nextPort = 1 << 30
		}
		if _, used := d.listeners[p]; used {
			continue
		}
		free := true
		for k := range d.conns {
			if k.local == p {
				free = false
				break
			}
		}
		if free {
			return p
		}
	}
}

// Listener accepts connections the guest makes to a host port.
type Listener struct {
	d      *Device
	port   uint32
	accept chan *Conn
	done   chan struct{}
	once   sync.Once
}

// Listen accepts guest connections to host port.
func (d *Device) Listen(port uint32) (*Listener, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, used := d.listeners[port]; used {
		return nil, fmt.Errorf("vsock: host port %d: %w", port, syscall.EADDRINUSE)
	}
	l := &Listener{d: d, port: port, accept: make(chan *Conn, 16), done: make(chan struct{})}
	d.listeners[port] = l
	return l, nil
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, errClosed
	}
}

// Close implements net.Listener; pending connections are reset.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.d.mu.Lock()
		delete(l.d.listeners, l.port)
		l.d.mu.Unlock()
		close(l.done)
		for {
			select {
			case c := <-l.accept:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return Addr{CID: HostCID, Port: l.port} }

// ResetAll resets every connection with err, as when the VM stopped: their
// readers and writers fail at once instead of waiting for a dead guest.
func (d *Device) ResetAll(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resetAllLocked(err)
}
