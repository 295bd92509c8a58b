package task

// This file is the bookkeeping of one process (a container's init or an
// exec): its state as containerd sees it (created, running, stopped), its
// stdio, and its exit. The guest side is a sandbox.Process.

import (
	"context"
	"sync"
	"time"

	taskapi "github.com/containerd/containerd/api/types/task"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/runtime/sandbox"
)

type process struct {
	id     string // exec ID; "" for the init process
	req    *api.CreateProcessRequest
	stdio  stdioPaths
	io     *processIO
	exited chan struct{} // closed once the exit is recorded

	mu         sync.Mutex
	status     taskapi.Status
	pid        uint32
	guest      *sandbox.Process
	exitStatus uint32
	exitedAt   time.Time
	oomKilled  bool
}

func newProcess(id string, req *api.CreateProcessRequest, stdio stdioPaths, pio *processIO) *process {
	return &process{id: id, req: req, stdio: stdio, io: pio, exited: make(chan struct{}), status: taskapi.Status_CREATED}
}

// setExited records the exit once; it reports whether this call did.
func (p *process) setExited(status uint32, at time.Time, oom bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status == taskapi.Status_STOPPED {
		return false
	}
	p.status, p.exitStatus, p.exitedAt, p.oomKilled = taskapi.Status_STOPPED, status, at, oom
	close(p.exited)
	return true
}

// state returns the containerd status and exit details.
func (p *process) state() (taskapi.Status, uint32, uint32, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.pid, p.exitStatus, p.exitedAt
}

func (p *process) running() bool {
	s, _, _, _ := p.state()
	return s == taskapi.Status_RUNNING || s == taskapi.Status_PAUSED
}

// wait blocks until the process exited or ctx ends.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// guestProcess returns the guest process of a started process.
func (p *process) guestProcess() *sandbox.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.guest
}
