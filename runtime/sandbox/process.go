package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/virtio/vsock"
)

// Exit codes a shell uses when it cannot run a command.
const (
	ExitNotFound      = 127
	ExitNotExecutable = 126
)

// Stdio is where a process's streams go on the host. A nil Stdin means the
// process reads /dev/null; with a terminal, Stderr is unused.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Process is a process running in the guest.
type Process struct {
	ID     string
	Pid    uint32
	sb     *Sandbox
	copies sync.WaitGroup
	stdin  *vsock.Conn
	// OOMKilled is set by Wait when the guest's OOM killer ended it.
	OOMKilled bool
}

// StartError is a process that could not be started, with the exit status
// a shell would give (127 not found, 126 not executable).
type StartError struct {
	ExitStatus int
	Err        error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// connectAgent opens the ttrpc client over vsock.
func (s *Sandbox) connectAgent(ctx context.Context) error {
	c, err := s.m.Vsock().Dial(ctx, api.AgentPort)
	if err != nil {
		return fmt.Errorf("connect to agent API: %w", err)
	}
	s.rpc = ttrpc.NewClient(c)
	s.agent = api.NewAgentClient(s.rpc)
	return nil
}

// Agent is the ttrpc client of the guest agent.
func (s *Sandbox) Agent() api.AgentService { return s.agent }

// Start creates and starts a process with its stdio streamed on separate
// vsock connections, attached before the process runs so no output is
// lost however fast it exits.
func (s *Sandbox) Start(ctx context.Context, req *api.CreateProcessRequest, stdio Stdio) (*Process, error) {
	req.Stdin = stdio.Stdin != nil
	if _, err := s.agent.CreateProcess(ctx, req); err != nil {
		return nil, s.agentError("create process", err)
	}
	p := &Process{ID: req.Id, sb: s}
	type stream struct {
		name string
		w    io.Writer
	}
	streams := []stream{{api.StreamStdout, stdio.Stdout}}
	if !req.Terminal {
		streams = append(streams, stream{api.StreamStderr, stdio.Stderr})
	}
	var conns []*vsock.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for _, st := range streams {
		c, err := s.openStream(ctx, req.Id, st.name)
		if err != nil {
			closeAll()
			return nil, err
		}
		conns = append(conns, c)
		w := st.w
		if w == nil {
			w = io.Discard
		}
		p.copies.Add(1)
		go func() {
			defer p.copies.Done()
			io.Copy(w, c)
			c.Close()
		}()
	}
	if stdio.Stdin != nil {
		c, err := s.openStream(ctx, req.Id, api.StreamStdin)
		if err != nil {
			closeAll()
			return nil, err
		}
		p.stdin = c
		go func() {
			io.Copy(c, stdio.Stdin)
			c.CloseWrite() // EOF reaches the process
		}()
	}
	resp, err := s.agent.StartProcess(ctx, &api.StartProcessRequest{Id: req.Id})
	if err != nil {
		closeAll()
		if p.stdin != nil {
			p.stdin.Close()
		}
		s.agent.DeleteProcess(context.Background(), &api.DeleteProcessRequest{Id: req.Id})
		switch status.Code(err) {
		case codes.NotFound:
			return nil, &StartError{ExitNotFound, errors.New(status.Convert(err).Message())}
		case codes.PermissionDenied, codes.InvalidArgument:
			return nil, &StartError{ExitNotExecutable, errors.New(status.Convert(err).Message())}
		}
		return nil, s.agentError("start process", err)
	}
	p.Pid = resp.Pid
	return p, nil
}

func (s *Sandbox) openStream(ctx context.Context, id, name string) (*vsock.Conn, error) {
	c, err := s.m.Vsock().Dial(ctx, api.StdioPort)
	if err != nil {
		return nil, s.agentError("open "+name, err)
	}
	if _, err := fmt.Fprintf(c, "%s %s\n", id, name); err != nil {
		c.Close()
		return nil, s.agentError("open "+name, err)
	}
	return c, nil
}

// agentError explains an agent failure, saying so when the VM is gone.
func (s *Sandbox) agentError(what string, err error) error {
	select {
	case <-s.m.Done():
		return s.exitError(fmt.Sprintf("while the agent was asked to %s", what))
	default:
	}
	return fmt.Errorf("agent: %s: %w", what, err)
}

// Wait returns the exit status (128+N for signal N) once the process
// exited and all its output reached the host writers.
func (p *Process) Wait(ctx context.Context) (int, time.Time, error) {
	resp, err := p.sb.agent.WaitProcess(ctx, &api.WaitProcessRequest{Id: p.ID})
	if err != nil {
		return 0, time.Time{}, p.sb.agentError("wait for process "+p.ID, err)
	}
	p.OOMKilled = resp.OomKilled
	p.copies.Wait()
	if p.stdin != nil {
		p.stdin.Close()
	}
	p.sb.agent.DeleteProcess(ctx, &api.DeleteProcessRequest{Id: p.ID})
	return int(resp.ExitStatus), time.Unix(0, resp.ExitedAtUnixNano), nil
}

// Signal sends sig to the process (or its process group).
func (p *Process) Signal(ctx context.Context, sig int, group bool) error {
	_, err := p.sb.agent.SignalProcess(ctx, &api.SignalProcessRequest{Id: p.ID, Signal: uint32(sig), Group: group})
	return err
}

// Resize sets the process's terminal size.
func (p *Process) Resize(ctx context.Context, width, height int) error {
	_, err := p.sb.agent.ResizePty(ctx, &api.ResizePtyRequest{Id: p.ID, Width: uint32(width), Height: uint32(height)})
	return err
}
