// Package task is the shim's containerd Task API (task v3 over ttrpc):
// each call maps onto the container's microVM and the agent inside it.
// Process bookkeeping is in process.go, the VM side in container.go.
package task

import (
	"context"
	"os"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	taskapi "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/novm/novm/bundle"
	"github.com/novm/novm/runtime/options"
)

// Service implements containerd's task service for one container.
type Service struct {
	ctx      context.Context
	ns       string
	log      *logrus.Entry
	shutdown shutdown.Service
	debug    bool

	evMu     sync.Mutex
	events   chan any
	evClosed bool // after shutdown: later events are dropped

	mu sync.Mutex
	c  *container // nil before Create and after Delete
}

// NewService starts the event forwarder and returns the service.
func NewService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service, debug bool) (*Service, error) {
	ns, _ := namespaces.Namespace(ctx)
	s := &Service{ctx: ctx, ns: ns, log: log.G(ctx), shutdown: sd, events: make(chan any, 128), debug: debug}
	go s.forward(publisher)
	sd.RegisterCallback(func(context.Context) error {
		s.mu.Lock()
		c := s.c
		s.mu.Unlock()
		if c != nil {
			c.teardown()
		}
		s.evMu.Lock()
		s.evClosed = true
		close(s.events)
		s.evMu.Unlock()
		return nil
	})
	return s, nil
}

// RegisterTTRPC registers the task service with the shim's server.
func (s *Service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

// forward publishes events in the order they happened.
func (s *Service) forward(p shim.Publisher) {
	ctx := namespaces.WithNamespace(context.Background(), s.ns)
	for e := range s.events {
		if err := p.Publish(ctx, runtime.GetTopic(e), e); err != nil {
			s.log.WithError(err).Error("publish event")
		}
	}
	p.Close()
}

// send queues an event for the forwarder.
func (s *Service) send(e any) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if !s.evClosed {
		s.events <- e
	}
}

// container returns the container with the given id.
func (s *Service) container(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil || s.c.id != id {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s not found", id)
	}
	return s.c, nil
}

func (s *Service) process(id, execID string) (*container, *process, error) {
	c, err := s.container(id)
	if err != nil {
		return nil, nil, err
	}
	p, ok := c.process(execID)
	if !ok {
		return nil, nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "process %s not found in container %s", execID, id)
	}
	return c, p, nil
}

// exited publishes a process's exit (and an OOM event before it).
func (s *Service) exited(c *container, p *process) {
	_, pid, status, at := p.state()
	p.mu.Lock()
	oom := p.oomKilled
	p.mu.Unlock()
	if oom {
		s.send(&eventstypes.TaskOOM{ContainerID: c.id})
	}
	s.send(&eventstypes.TaskExit{ContainerID: c.id, ID: execOr(c.id, p.id), Pid: pid, ExitStatus: status,
		ExitedAt: protobuf.ToTimestamp(at)})
}

func execOr(id, execID string) string {
	if execID == "" {
		return id
	}
	return execID
}

func (s *Service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	s.mu.Lock()
	busy := s.c
	s.mu.Unlock()
	if busy != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "this shim already runs container %s (one container per VM; pods come later)", busy.id)
	}
	var ro *runtimeoptions.Options
	if r.Options != nil && r.Options.GetTypeUrl() != "" {
		v, err := typeurl.UnmarshalAny(r.Options)
		if err != nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "runtime options: %v", err)
		}
		var ok bool
		if ro, ok = v.(*runtimeoptions.Options); !ok {
			return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "runtime options of type %s: novm takes runtimeoptions.v1.Options (config_path, or the options table in containerd's config)", r.Options.GetTypeUrl())
		}
	}
	cfg, err := options.Load(ro)
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "%v", err)
	}
	log := s.log.WithField("id", r.ID)
	c, err := createContainer(ctx, createRequest{ID: r.ID, Bundle: r.Bundle, Namespace: s.ns, Rootfs: r.Rootfs,
		Stdio:  stdioPaths{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Config: cfg, Debug: s.debug}, log, s.exited)
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "novm: %v", err)
	}
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
	s.send(&eventstypes.TaskCreate{ContainerID: r.ID, Bundle: r.Bundle, Rootfs: r.Rootfs,
		IO: &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}})
	return &taskAPI.CreateTaskResponse{}, nil
}

func (s *Service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := c.notPaused(); err != nil {
		return nil, err
	}
	began := time.Now()
	pid, err := c.start(ctx, p)
	c.log.WithFields(logrus.Fields{"exec_id": r.ExecID, "start_ms": ms(time.Since(began))}).Debug("process started")
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "start: %v", err)
	}
	if r.ExecID == "" {
		s.send(&eventstypes.TaskStart{ContainerID: c.id, Pid: pid})
	} else {
		s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: r.ExecID, Pid: pid})
	}
	return &taskAPI.StartResponse{Pid: pid}, nil
}

func (s *Service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if p.running() {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "process %s is still running", execOr(r.ID, r.ExecID))
	}
	_, pid, status, at := p.state()
	if r.ExecID != "" {
		c.mu.Lock()
		delete(c.execs, r.ExecID)
		c.mu.Unlock()
		p.io.Close()
	} else {
		began := time.Now()
		c.teardown()
		c.log.WithField("teardown_ms", ms(time.Since(began))).Info("container deleted")
		s.mu.Lock()
		s.c = nil
		s.mu.Unlock()
		s.send(&eventstypes.TaskDelete{ContainerID: c.id, Pid: pid, ExitStatus: status, ExitedAt: protobuf.ToTimestamp(at)})
	}
	return &taskAPI.DeleteResponse{Pid: pid, ExitStatus: status, ExitedAt: protobuf.ToTimestamp(at)}, nil
}

func (s *Service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if _, ok := c.process(r.ExecID); ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "exec %s already exists", r.ExecID)
	}
	if !c.init.running() {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is not running", r.ID)
	}
	var sp specs.Process
	if err := typeurl.UnmarshalTo(r.Spec, &sp); err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec spec: %v", err)
	}
	req, err := bundle.MapProcess(&sp)
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec spec: %v", err)
	}
	req.Id = c.agentID(r.ExecID)
	stdio := stdioPaths{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	pio, err := openIO(ctx, r.ID, s.ns, stdio)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	c.mu.Lock()
	c.execs[r.ExecID] = newProcess(r.ExecID, req, stdio, pio)
	c.mu.Unlock()
	s.send(&eventstypes.TaskExecAdded{ContainerID: c.id, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

func (s *Service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	st, pid, status, at := p.state()
	c.mu.Lock()
	if c.paused && st == taskapi.Status_RUNNING {
		st = taskapi.Status_PAUSED
	}
	c.mu.Unlock()
	return &taskAPI.StateResponse{ID: execOr(r.ID, r.ExecID), Bundle: c.bundleDir, Pid: pid, Status: st,
		Stdin: p.stdio.Stdin, Stdout: p.stdio.Stdout, Stderr: p.stdio.Stderr, Terminal: p.stdio.Terminal,
		ExitStatus: status, ExitedAt: protobuf.ToTimestamp(at), ExecID: r.ExecID}, nil
}

func (s *Service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.wait(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	_, _, status, at := p.state()
	return &taskAPI.WaitResponse{ExitStatus: status, ExitedAt: protobuf.ToTimestamp(at)}, nil
}

func (s *Service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if c, err := s.container(r.ID); err == nil {
		_, resp.TaskPid, _, _ = c.init.state()
	}
	return resp, nil
}

func (s *Service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	live := s.c != nil
	s.mu.Unlock()
	if live {
		// containerd asks after every delete; a live container keeps
		// the shim.
		return &emptypb.Empty{}, nil
	}
	s.shutdown.Shutdown()
	return &emptypb.Empty{}, nil
}

func (s *Service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "novm cannot checkpoint a container yet")
}

// Update cannot resize a running VM: its RAM and vCPUs are fixed at boot.
func (s *Service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	if _, err := s.container(r.ID); err != nil {
		return nil, err
	}
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "novm cannot change a running container's resources: its VM's memory and vCPUs are fixed at boot; recreate the container")
}

var _ taskAPI.TTRPCTaskService = (*Service)(nil)
