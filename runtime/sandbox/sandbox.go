// Package sandbox is a booted microVM with its agent: it starts the VM,
// waits (bounded) for the agent to report ready, and shuts the VM down
// through the agent, tearing it down by force when the guest does not
// cooperate. Errors about a guest that died or hung carry what its console
// last printed.
package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/agent/control"
	"github.com/novm/novm/hypervisor/vmm"
)

// DefaultReadyTimeout bounds the wait for the agent. Boot takes well under
// a second on a real KVM host and 30-45 s on a nested, emulating one
// (kvm_pvm), longer when several guests share its CPUs.
const DefaultReadyTimeout = 3 * time.Minute

// Config describes a sandbox.
type Config struct {
	VM           vmm.Config
	ReadyTimeout time.Duration
	// VsockSocket, if set, is a Unix socket path where guest vsock ports
	// can be reached by hand ("CONNECT <port>" handshake).
	VsockSocket string
}

// Timings are the phases of a sandbox's life, as measured on the host.
type Timings struct {
	Setup            time.Duration // vmm.New: KVM, memory, kernel, devices
	FirstInstruction time.Duration // from Boot's start to the first KVM_RUN
	Ready            time.Duration // from Start to the agent's ready line
	Shutdown         time.Duration
}

// Sandbox is a running microVM whose agent has reported ready.
type Sandbox struct {
	m       *vmm.Machine
	agentW  *io.PipeWriter
	unixL   net.Listener
	unixP   string
	rpc     *ttrpc.Client
	agent   api.AgentService
	log     *logrus.Entry
	msgs    chan control.Message
	Ready   control.Message
	Timings Timings
}

// Boot creates and starts the VM and waits for its agent.
func Boot(ctx context.Context, cfg Config) (*Sandbox, error) {
	began := time.Now()
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	log := cfg.VM.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
		cfg.VM.Log = log
	}
	pr, pw := io.Pipe()
	cfg.VM.AgentOut = pw
	s := &Sandbox{log: log, agentW: pw, msgs: make(chan control.Message, 16)}
	go s.readAgent(pr)
	m, err := vmm.New(cfg.VM)
	if err != nil {
		pw.Close()
		return nil, err
	}
	s.m = m
	s.Timings.Setup = time.Since(began)
	start := time.Now()
	m.Start()
	select {
	case t := <-m.FirstRun():
		s.Timings.FirstInstruction = t.Sub(began)
	case <-m.Done():
	}
	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	for {
		select {
		case msg := <-s.msgs:
			if msg.Verb != control.VerbReady {
				continue
			}
			s.Ready = msg
			if err := s.connectAgent(ctx); err != nil {
				s.Close()
				return nil, err
			}
			s.Timings.Ready = time.Since(start)
			if cfg.VsockSocket != "" {
				if err := s.serveVsockSocket(cfg.VsockSocket); err != nil {
					s.Close()
					return nil, err
				}
			}
			go func() {
				// A stopped VM fails every connection at once.
				<-m.Done()
				m.Vsock().ResetAll(errors.New("the VM stopped"))
			}()
			return s, nil
		case <-m.Done():
			err := s.exitError("before the agent was ready")
			s.Close()
			return nil, err
		case <-timer.C:
			s.Close()
			return nil, fmt.Errorf("agent not ready after %v; VM torn down%s", cfg.ReadyTimeout, s.consoleSuffix())
		case <-ctx.Done():
			s.Close()
			return nil, fmt.Errorf("waiting for agent: %w", ctx.Err())
		}
	}
}

// serveVsockSocket exposes guest vsock ports on a Unix socket.
func (s *Sandbox) serveVsockSocket(path string) error {
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("vsock socket: %w", err)
	}
	s.unixL, s.unixP = l, path
	go s.m.Vsock().ServeUnix(l, s.log)
	return nil
}

// readAgent turns the virtio-console byte stream into agent messages.
func (s *Sandbox) readAgent(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if msg, ok := control.Parse(sc.Text()); ok {
			select {
			case s.msgs <- msg:
			default:
				s.log.Warnf("agent message dropped: %q", sc.Text())
			}
		} else {
			s.log.Debugf("guest hvc0: %s", sc.Text())
		}
	}
}

// exitError describes a VM that ended unexpectedly.
func (s *Sandbox) exitError(when string) error {
	e := s.m.Wait()
	if e.Reason == vmm.ExitError {
		return fmt.Errorf("guest failed %s: %w%s", when, e.Err, s.consoleSuffix())
	}
	return fmt.Errorf("guest stopped (%s) %s%s", e.Reason, when, s.consoleSuffix())
}

func (s *Sandbox) consoleSuffix() string {
	tail := strings.TrimSpace(s.m.ConsoleTail())
	if tail == "" {
		return "; the guest console printed nothing"
	}
	lines := strings.Split(tail, "\n")
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	return "; guest console ended with:\n  " + strings.Join(lines, "\n  ")
}

// Machine is the underlying VM.
func (s *Sandbox) Machine() *vmm.Machine { return s.m }

// Ping asks the agent for a pong over the control channel.
func (s *Sandbox) Ping(ctx context.Context) error {
	if _, err := s.m.Console().Write([]byte(control.CmdPing + "\n")); err != nil {
		return err
	}
	return s.await(ctx, control.VerbPong)
}

func (s *Sandbox) await(ctx context.Context, verb string) error {
	for {
		select {
		case msg := <-s.msgs:
			if msg.Verb == verb {
				return nil
			}
		case <-s.m.Done():
			return s.exitError("while waiting for the agent")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Shutdown asks the agent to power off and waits for the VM to end. If the
// guest does not stop within timeout, the VM is stopped by force and an
// error says so. The sandbox is closed either way.
func (s *Sandbox) Shutdown(timeout time.Duration) error {
	defer s.Close()
	start := time.Now()
	if _, err := s.m.Console().Write([]byte(control.CmdPoweroff + "\n")); err != nil {
		return err
	}
	select {
	case <-s.m.Done():
	case <-time.After(timeout):
		s.m.Stop()
		<-s.m.Done()
		return fmt.Errorf("guest did not power off within %v; VM stopped by force%s", timeout, s.consoleSuffix())
	}
	s.Timings.Shutdown = time.Since(start)
	switch e := s.m.Wait(); e.Reason {
	case vmm.ExitReset, vmm.ExitPoweroff:
		return nil
	case vmm.ExitError:
		return fmt.Errorf("guest failed during shutdown: %w", e.Err)
	default:
		return errors.New("VM stopped during shutdown")
	}
}

// Close stops the VM if still running and releases it.
func (s *Sandbox) Close() error {
	defer s.agentW.Close() // ends readAgent
	if s.unixL != nil {
		s.unixL.Close()
		os.Remove(s.unixP)
	}
	if s.rpc != nil {
		s.rpc.Close()
	}
	if s.m == nil {
		return nil
	}
	return s.m.Close()
}
