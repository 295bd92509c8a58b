package agent

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper is PID 1's wait loop: it collects every child that exits (orphans
// are re-parented to PID 1) and hands the statuses of processes the agent
// started to their owners. Starting a process holds mu until its PID is
// registered, so an exit can never be collected before its owner is known.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]func(unix.WaitStatus)
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]func(unix.WaitStatus){}}
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		fn := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if fn != nil {
			fn(ws)
		}
	}
}

// start runs startFn (which forks) with registration held off until the
// PID is known, then registers onExit for it.
func (r *reaper) start(startFn func() (int, error), onExit func(unix.WaitStatus)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := startFn()
	if err != nil {
		return 0, err
	}
	r.waiters[pid] = onExit
	return pid, nil
}
