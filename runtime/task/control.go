package task

// This file holds the Task API calls that act on a running container:
// signals, process lists, pause and resume, terminal size, stdin, and
// metrics (the guest's own accounting, reported as cgroup v1 metrics,
// which `ctr task metrics` and the CRI understand).

import (
	"context"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1/stats"
	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	taskapi "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/novm/novm/bundle"
)

func (s *Service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	st, _, _, _ := p.state()
	switch st {
	case taskapi.Status_STOPPED:
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "process %s already finished", execOr(r.ID, r.ExecID))
	case taskapi.Status_CREATED:
		// Never started: it ends as if the signal had killed it.
		c.finish(p, 128+r.Signal, time.Now(), false)
		return &emptypb.Empty{}, nil
	}
	signal := func(ctx context.Context) error {
		if r.All && r.ExecID == "" {
			return c.sb.SignalAll(ctx, bundle.RootfsShare, int(r.Signal))
		}
		return p.guestProcess().Signal(ctx, int(r.Signal), false)
	}
	c.mu.Lock()
	paused := c.paused
	c.mu.Unlock()
	if paused {
		// The agent answers once the VM runs again; like a frozen
		// cgroup, the signal is pending until then.
		go signal(context.WithoutCancel(ctx))
		return &emptypb.Empty{}, nil
	}
	if err := signal(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	// From the shim's own books, so it answers while the VM is paused.
	c.mu.Lock()
	procs := c.processes()
	c.mu.Unlock()
	resp := &taskAPI.PidsResponse{}
	for _, p := range procs {
		if st, pid, _, _ := p.state(); st == taskapi.Status_RUNNING && pid != 0 {
			resp.Processes = append(resp.Processes, &taskapi.ProcessInfo{Pid: pid})
		}
	}
	return resp, nil
}

func (s *Service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	return s.setPaused(r.ID, true)
}

func (s *Service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	return s.setPaused(r.ID, false)
}

func (s *Service) setPaused(id string, pause bool) (*emptypb.Empty, error) {
	c, err := s.container(id)
	if err != nil {
		return nil, err
	}
	if !c.init.running() {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is not running", id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if pause {
		err = c.sb.Pause()
	} else {
		err = c.sb.Resume()
	}
	if err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "%v", err)
	}
	c.paused = pause
	if pause {
		s.send(&eventstypes.TaskPaused{ContainerID: id})
	} else {
		s.send(&eventstypes.TaskResumed{ContainerID: id})
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	gp := p.guestProcess()
	if gp == nil || !p.stdio.Terminal {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "process %s has no running terminal", execOr(r.ID, r.ExecID))
	}
	if err := gp.Resize(ctx, int(r.Width), int(r.Height)); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// CloseIO: the client closes its end of the stdin fifo before it calls
// this, so the copy into the guest reaches EOF on its own after the last
// bytes; closing the fifo here could drop them.
func (s *Service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	if _, _, err := s.process(r.ID, r.ExecID); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.notPaused(); err != nil {
		return nil, err
	}
	g, err := c.sb.Stats(ctx)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	m := &stats.Metrics{
		Pids: &stats.PidsStat{Current: uint64(g.Pids)},
		CPU: &stats.CPUStat{Usage: &stats.CPUUsage{Total: g.CpuUserNanos + g.CpuSystemNanos,
			User: g.CpuUserNanos, Kernel: g.CpuSystemNanos}},
		Memory:           &stats.MemoryStat{Usage: &stats.MemoryEntry{Usage: g.MemoryUsedBytes, Limit: g.MemoryTotalBytes}},
		MemoryOomControl: &stats.MemoryOomControl{OomKill: g.OomKills},
	}
	a, err := typeurl.MarshalAny(m)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.StatsResponse{Stats: typeurl.MarshalProto(a)}, nil
}
