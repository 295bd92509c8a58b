package vmm

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/novm/novm/hypervisor/kvm"
)

// ExitReason says why a machine stopped.
type ExitReason int

const (
	// ExitStopped: the host called Stop.
	ExitStopped ExitReason = iota
	// ExitReset: the guest reset the machine (reboot via the keyboard
	// controller, a triple fault, or a reset system event).
	ExitReset
	// ExitPoweroff: the guest powered off (system event).
	ExitPoweroff
	// ExitError: the VM cannot continue; Err says why.
	ExitError
)

func (r ExitReason) String() string {
	return [...]string{"stopped", "reset", "poweroff", "error"}[r]
}

// Exit is how a machine ended.
type Exit struct {
	Reason ExitReason
	Err    error
}

// vcpu is a vCPU plus the OS thread that runs it.
type vcpu struct {
	*kvm.VCPU
	m   *Machine
	tid atomic.Int32
}

// stopSignal interrupts KVM_RUN on a vCPU thread. SIGURG is the Go
// runtime's own preemption signal: its handler is installed and harmless,
// so no extra signal disposition is needed in a library.
const stopSignal = unix.SIGURG

// Start runs every vCPU on its own locked OS thread.
func (m *Machine) Start() {
	m.startOnce.Do(func() {
		m.vcpuWait.Add(len(m.vcpus))
		for _, v := range m.vcpus {
			go v.loop()
		}
		go func() {
			m.vcpuWait.Wait()
			close(m.done)
		}()
	})
}

// Wait blocks until every vCPU has stopped and says why the machine ended.
func (m *Machine) Wait() Exit {
	<-m.done
	m.exitMu.Lock()
	defer m.exitMu.Unlock()
	return m.exit
}

// Done is closed when every vCPU has stopped.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Stop asks every vCPU to leave the guest; it does not wait (see Wait).
func (m *Machine) Stop() { m.finish(Exit{Reason: ExitStopped}) }

// finish records the first reason the machine ends and kicks every vCPU
// out of KVM_RUN: immediate_exit makes a KVM_RUN that has not entered the
// guest yet return at once, and the signal interrupts one that has.
func (m *Machine) finish(e Exit) {
	m.stopOnce.Do(func() {
		m.exitMu.Lock()
		m.exit = e
		m.exitMu.Unlock()
		close(m.stopping)
		m.wakeParked()
		for _, v := range m.vcpus {
			v.SetImmediateExit(true)
			if tid := v.tid.Load(); tid != 0 {
				unix.Tgkill(unix.Getpid(), int(tid), stopSignal)
			}
		}
	})
}

func (m *Machine) stopRequested() bool {
	select {
	case <-m.stopping:
		return true
	default:
		return false
	}
}

// loop runs one vCPU until the machine stops. The goroutine keeps its OS
// thread locked and exits without unlocking it, so the thread (which KVM
// associates with the vCPU) is discarded rather than reused by Go.
func (v *vcpu) loop() {
	defer v.m.vcpuWait.Done()
	runtime.LockOSThread()
	v.tid.Store(int32(unix.Gettid()))
	first := v.ID == 0
	for !v.m.stopRequested() {
		if v.park() {
			continue
		}
		if first {
			v.m.firstRun <- time.Now()
			first = false
		}
		err := v.Run()
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			// A signal (the stop kick, or Go's own preemption) or
			// immediate_exit: the loop condition decides.
			continue
		}
		if err != nil {
			v.m.finish(Exit{Reason: ExitError, Err: fmt.Errorf("vCPU %d: KVM_RUN: %w", v.ID, err)})
			return
		}
		if e, stop := v.handleExit(); stop {
			v.m.finish(e)
			return
		}
	}
}

// handleExit serves one exit; stop reports that the machine must end.
func (v *vcpu) handleExit() (e Exit, stop bool) {
	reason := v.ExitReason()
	switch reason {
	case kvm.ExitIO:
		io := v.IO()
		if io.Data == nil {
			return v.fatal(fmt.Errorf("malformed KVM_EXIT_IO"))
		}
		for i := 0; i < io.Count; i++ {
			d := io.Data[i*io.Size : (i+1)*io.Size]
			if io.Write {
				v.m.pio.Write(uint64(io.Port), d)
			} else {
				v.m.pio.Read(uint64(io.Port), d)
			}
		}
	case kvm.ExitMMIO:
		a := v.MMIO()
		if a.Write {
			if !v.m.mmio.Write(a.Addr, a.Data) {
				v.m.cfg.Log.Tracef("unclaimed MMIO write at %#x", a.Addr)
			}
		} else if !v.m.mmio.Read(a.Addr, a.Data) {
			v.m.cfg.Log.Tracef("unclaimed MMIO read at %#x", a.Addr)
		}
	case kvm.ExitShutdown:
		// A triple fault: how x86 resets when nothing else works.
		return Exit{Reason: ExitReset}, true
	case kvm.ExitHLT:
		// With an in-kernel LAPIC, HLT never exits unless the guest
		// halted for good (interrupts off).
		return Exit{Reason: ExitPoweroff}, true
	case kvm.ExitSystemEvent:
		switch v.SystemEvent() {
		case kvm.SystemEventShutdown:
			return Exit{Reason: ExitPoweroff}, true
		case kvm.SystemEventReset:
			return Exit{Reason: ExitReset}, true
		default:
			return v.fatal(fmt.Errorf("guest crash (system event %d)", v.SystemEvent()))
		}
	case kvm.ExitInternalError:
		sub, data := v.InternalError()
		what := fmt.Sprintf("suberror %d", sub)
		if sub == 1 {
			what = "emulation failure"
		}
		return v.fatal(fmt.Errorf("KVM_EXIT_INTERNAL_ERROR (%s, data % x)", what, data))
	case kvm.ExitFailEntry:
		return v.fatal(fmt.Errorf("KVM_EXIT_FAIL_ENTRY (hardware reason %#x)", v.FailEntryReason()))
	case kvm.ExitIntr:
		// Interrupted by a signal between exits: nothing to do.
	default:
		return v.fatal(fmt.Errorf("unhandled %s", kvm.ExitName(reason)))
	}
	return Exit{}, false
}

// fatal builds the error for an exit the VM cannot survive, naming the
// vCPU, RIP and the instruction bytes there.
func (v *vcpu) fatal(err error) (Exit, bool) {
	rip, insn := instructionBytes(v.m.mem, v.VCPU)
	return Exit{Reason: ExitError, Err: fmt.Errorf("vCPU %d: %w at RIP %#x (instruction bytes: %s)", v.ID, err, rip, insn)}, true
}
