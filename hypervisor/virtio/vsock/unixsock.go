package vsock

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// ServeUnix lets people and tools reach guest ports through a Unix socket,
// with Firecracker's handshake: the client writes "CONNECT <port>\n", gets
// "OK <host port>\n" back and then talks to the guest port. It returns
// when l is closed; connections in flight are closed too.
func (d *Device) ServeUnix(l net.Listener, log *logrus.Entry) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		uc, err := l.Accept()
		if err != nil {
			return err
		}
		mu.Lock()
		open[uc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(open, uc)
				mu.Unlock()
				uc.Close()
			}()
			if err := d.proxy(uc); err != nil {
				log.WithError(err).Debug("vsock unix socket connection ended")
			}
		}()
	}
}

func (d *Device) proxy(uc net.Conn) error {
	uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(io.LimitReader(uc, 64))
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	uc.SetReadDeadline(time.Time{})
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	port, perr := strconv.ParseUint(arg, 10, 32)
	if verb != "CONNECT" || perr != nil {
		fmt.Fprintf(uc, "ERR expected CONNECT <port>\n")
		return fmt.Errorf("bad handshake %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	vc, err := d.Dial(ctx, uint32(port))
	cancel()
	if err != nil {
		fmt.Fprintf(uc, "ERR %v\n", err)
		return err
	}
	defer vc.Close()
	fmt.Fprintf(uc, "OK %d\n", vc.key.local)
	done := make(chan struct{})
	go func() {
		// Bytes the handshake reader buffered belong to the stream.
		io.Copy(vc, io.MultiReader(br, uc))
		vc.CloseWrite()
		close(done)
	}()
	io.Copy(uc, vc)
	if cw, ok := uc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-done
	return nil
}
