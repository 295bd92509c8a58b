package task

// This file opens a process's stdio as containerd names it: fifo paths
// (ctr, CRI), binary:// (a logging driver started by the shim, given the
// output on fds 3 and 4 and a readiness pipe on fd 5) and file://
// (appended to a file). Output is copied here, on the host, from the
// guest's vsock streams.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/containerd/fifo"
)

// stdioPaths is a process's stdio as containerd passed it.
type stdioPaths struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// processIO is opened stdio: stdin may be nil (the process reads
// /dev/null); stdout and stderr are never nil.
type processIO struct {
	stdin          io.ReadCloser
	stdout, stderr io.Writer
	closers        []io.Closer
	logger         *exec.Cmd
}

// openIO opens the stdio of process id in namespace ns.
func openIO(ctx context.Context, id, ns string, p stdioPaths) (_ *processIO, err error) {
	pio := &processIO{stdout: io.Discard, stderr: io.Discard}
	defer func() {
		if err != nil {
			pio.Close()
		}
	}()
	if p.Stdin != "" {
		// Non-blocking open: the client opened its write end before it
		// asked for the task, and reads block in the poller.
		f, err := fifo.OpenFifo(ctx, p.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", p.Stdin, err)
		}
		pio.stdin = f
		pio.closers = append(pio.closers, f)
	}
	u, err := url.Parse(p.Stdout)
	if err != nil {
		return nil, fmt.Errorf("stdout %q: %w", p.Stdout, err)
	}
	switch u.Scheme {
	case "", "fifo":
		for _, s := range []struct {
			path string
			w    *io.Writer
		}{{p.Stdout, &pio.stdout}, {p.Stderr, &pio.stderr}} {
			if s.path == "" {
				continue
			}
			path := s.path
			if u.Scheme == "fifo" {
				path = (&url.URL{Path: s.path}).Path
			}
			// Read-write: the open does not wait for a reader, and output
			// is not lost (nor SIGPIPE raised) while a client reattaches.
			f, err := fifo.OpenFifo(ctx, path, syscall.O_RDWR, 0)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", path, err)
			}
			*s.w = f
			pio.closers = append(pio.closers, f)
		}
	case "file":
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		pio.stdout, pio.stderr = f, f
		pio.closers = append(pio.closers, f)
	case "binary", "binary-v2":
		if err := pio.startLogger(u, id, ns); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("stdout %q: unsupported scheme %q (fifo paths, file:// and binary:// are)", p.Stdout, u.Scheme)
	}
	return pio, nil
}

// startLogger runs a containerd logging binary: stdout on fd 3, stderr on
// fd 4, and fd 5 closed (or, for binary-v2, written to) once it is ready.
func (pio *processIO) startLogger(u *url.URL, id, ns string) error {
	var args []string
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 && vs[0] != "" {
			args = append(args, vs[0])
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
		return err
	}
	cmd := exec.Command(u.Path, args...)
	cmd.Env = append(os.Environ(), "CONTAINER_ID="+id, "CONTAINER_NAMESPACE="+ns)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	err = cmd.Start()
	outR.Close()
	errR.Close()
	readyW.Close()
	if err != nil {
		outW.Close()
		errW.Close()
		readyR.Close()
		return fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	pio.logger = cmd
	pio.stdout, pio.stderr = outW, errW
	pio.closers = append(pio.closers, outW, errW)
	b := make([]byte, 1)
	n, err := readyR.Read(b)
	readyR.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("logging binary %s: %w", u.Path, err)
	}
	if u.Scheme == "binary-v2" && n == 0 {
		return fmt.Errorf("logging binary %s exited before it was ready", u.Path)
	}
	return nil
}

// Stdin is the reader for the guest's stdin stream, or nil.
func (pio *processIO) Stdin() io.Reader {
	if pio.stdin == nil {
		return nil
	}
	return pio.stdin
}

// Close closes everything; a logging binary sees EOF and exits on its own.
func (pio *processIO) Close() {
	for _, c := range pio.closers {
		c.Close()
	}
	pio.closers = nil
	if pio.logger != nil {
		go pio.logger.Wait()
		pio.logger = nil
	}
}
