package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/novm/novm/agent/api"
)

// service implements api.AgentService over the process table.
type service struct {
	reaper *reaper

	mu    sync.Mutex
	procs map[string]*process
}

func newService(r *reaper) *service {
	return &service{reaper: r, procs: map[string]*process{}}
}

func (s *service) get(id string) (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.procs[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "process %q not found", id)
	}
	return p, nil
}

func (s *service) MountShare(ctx context.Context, req *api.MountShareRequest) (*api.Empty, error) {
	if _, err := mountShares(req.Rootfs, []*api.ShareMount{req.Mount}); err != nil {
		return nil, err
	}
	return &api.Empty{}, nil
}

func (s *service) UnmountShare(ctx context.Context, req *api.UnmountShareRequest) (*api.Empty, error) {
	if err := unbindShare(req.Rootfs, req.Target); err != nil {
		return nil, err
	}
	return &api.Empty{}, nil
}

func (s *service) PrepareRootfs(ctx context.Context, req *api.PrepareRootfsRequest) (*api.Empty, error) {
	if err := prepareRootfs(req); err != nil {
		return nil, err
	}
	return &api.Empty{}, nil
}

func (s *service) SignalAll(ctx context.Context, req *api.SignalAllRequest) (*api.Empty, error) {
	if err := signalAll(req.Rootfs, syscall.Signal(req.Signal)); err != nil {
		return nil, err
	}
	return &api.Empty{}, nil
}

func (s *service) Stats(ctx context.Context, _ *api.StatsRequest) (*api.StatsResponse, error) {
	return guestStats(), nil
}

func (s *service) Ping(ctx context.Context, _ *api.PingRequest) (*api.PingResponse, error) {
	return &api.PingResponse{Version: Version}, nil
}

func (s *service) CreateProcess(ctx context.Context, req *api.CreateProcessRequest) (*api.Empty, error) {
	if req.Id == "" || strings.ContainsAny(req.Id, " \n") {
		return nil, status.Errorf(codes.InvalidArgument, "bad process id %q", req.Id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.procs[req.Id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "process %q exists", req.Id)
	}
	s.procs[req.Id] = newProcess(req)
	return &api.Empty{}, nil
}

func (s *service) StartProcess(ctx context.Context, req *api.StartProcessRequest) (*api.StartProcessResponse, error) {
	p, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	pid, err := p.start(ctx, s.reaper)
	if err != nil {
		return nil, err
	}
	return &api.StartProcessResponse{Pid: uint32(pid)}, nil
}

func (s *service) SignalProcess(ctx context.Context, req *api.SignalProcessRequest) (*api.Empty, error) {
	p, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	pid, started := p.pid, p.started
	p.mu.Unlock()
	if !started || p.hasExited() {
		return nil, status.Errorf(codes.NotFound, "process %q is not running", req.Id)
	}
	target := pid
	if req.Group {
		target = -pid // the process leads its own group (Setpgid / Setsid)
	}
	if err := unix.Kill(target, syscall.Signal(req.Signal)); err != nil {
		return nil, status.Errorf(codes.Internal, "kill %d: %v", target, err)
	}
	return &api.Empty{}, nil
}

func (s *service) WaitProcess(ctx context.Context, req *api.WaitProcessRequest) (*api.WaitProcessResponse, error) {
	p, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var code int
	var at time.Time
	go func() {
		code, at = p.wait()
		close(done)
	}()
	select {
	case <-done:
		p.mu.Lock()
		oom := p.oomKilled
		p.mu.Unlock()
		return &api.WaitProcessResponse{ExitStatus: uint32(code), ExitedAtUnixNano: at.UnixNano(), OomKilled: oom}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *service) CloseStdin(ctx context.Context, req *api.CloseStdinRequest) (*api.Empty, error) {
	p, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stdin != nil:
		p.stdin.Close()
	case p.pty != nil:
		p.pty.Write([]byte{4}) // ^D: EOF for a terminal in canonical mode
	}
	return &api.Empty{}, nil
}

func (s *service) ResizePty(ctx context.Context, req *api.ResizePtyRequest) (*api.Empty, error) {
	p, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pty == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q has no terminal", req.Id)
	}
	ws := &unix.Winsize{Col: uint16(req.Width), Row: uint16(req.Height)}
	if err := unix.IoctlSetWinsize(int(p.pty.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return nil, status.Errorf(codes.Internal, "resize: %v", err)
	}
	return &api.Empty{}, nil
}

func (s *service) ListProcesses(ctx context.Context, _ *api.ListProcessesRequest) (*api.ListProcessesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &api.ListProcessesResponse{}
	for id, p := range s.procs {
		p.mu.Lock()
		resp.Processes = append(resp.Processes, &api.ProcessInfo{Id: id, Pid: uint32(p.pid), Exited: p.hasExited()})
		p.mu.Unlock()
	}
	return resp, nil
}

func (s *service) DeleteProcess(ctx context.Context, req *api.DeleteProcessRequest) (*api.Empty, error) {
	p, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	running := p.started && !p.hasExited()
	p.mu.Unlock()
	if running {
		return nil, status.Errorf(codes.FailedPrecondition, "process %q is still running", req.Id)
	}
	s.mu.Lock()
	delete(s.procs, req.Id)
	s.mu.Unlock()
	return &api.Empty{}, nil
}

// serveStdio accepts stdio streams: each starts with "<id> <stream>\n".
func (s *service) serveStdio(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			if err := s.attach(c); err != nil {
				fmt.Fprintf(c, "ERR %v\n", err)
				c.Close()
			}
		}()
	}
}

func (s *service) attach(c net.Conn) error {
	nc, ok := c.(net_conn)
	if !ok {
		return fmt.Errorf("stream cannot half-close")
	}
	// One read takes the header (the host sends it in one write); stdin
	// bytes that came with it stay buffered in front of the stream.
	br := bufio.NewReaderSize(c, 256)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	id, stream, _ := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
	p, err := s.get(id)
	if err != nil {
		return err
	}
	return p.attach(stream, &bufferedConn{net_conn: nc, r: br})
}

// bufferedConn reads what the header reader buffered before the conn.
type bufferedConn struct {
	net_conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
