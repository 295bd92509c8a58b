package vmm

// This file parks the vCPU threads outside KVM_RUN (containerd's task
// pause): the guest makes no progress while its memory, devices and host
// connections stay as they are, and it resumes where it stopped.

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// pauseState is shared by Pause, Resume and the vCPU loops.
type pauseState struct {
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	parked int // vCPUs waiting in park
}

// ErrNotRunning is returned when pausing a machine that stopped.
var ErrNotRunning = errors.New("the VM is not running")

// Pause stops every vCPU and returns once none is in the guest. Pausing a
// paused machine does nothing.
func (m *Machine) Pause() error {
	p := &m.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.stopRequested() {
		return ErrNotRunning
	}
	if p.paused {
		return nil
	}
	p.paused = true
	for _, v := range m.vcpus {
		v.SetImmediateExit(true)
		if tid := v.tid.Load(); tid != 0 {
			unix.Tgkill(unix.Getpid(), int(tid), stopSignal)
		}
	}
	for p.parked < len(m.vcpus) {
		if m.stopRequested() {
			return ErrNotRunning
		}
		p.cond.Wait()
	}
	return nil
}

// Resume lets paused vCPUs run again.
func (m *Machine) Resume() error {
	p := &m.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.stopRequested() {
		return ErrNotRunning
	}
	p.paused = false
	p.cond.Broadcast()
	return nil
}

// park holds a vCPU thread while the machine is paused; it reports
// whether it did.
func (v *vcpu) park() bool {
	p := &v.m.pause
	p.mu.Lock()
	if !p.paused {
		p.mu.Unlock()
		return false
	}
	p.parked++
	p.cond.Broadcast()
	for p.paused && !v.m.stopRequested() {
		p.cond.Wait()
	}
	p.parked--
	p.mu.Unlock()
	// Stop's close of stopping happens before it sets immediate_exit, so
	// clearing it here and then checking stopRequested cannot lose a stop.
	if !v.m.stopRequested() {
		v.SetImmediateExit(false)
	}
	return true
}

// wakeParked lets parked vCPUs see a stop.
func (m *Machine) wakeParked() {
	m.pause.mu.Lock()
	m.pause.cond.Broadcast()
	m.pause.mu.Unlock()
}
