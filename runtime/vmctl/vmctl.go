// Package vmctl is the control socket of a VM started by `novm run`: other
// novm commands (`novm share add|rm`) reach the running VMM through it.
// One JSON request and one JSON reply per connection; the socket lives in
// the VM's state directory, reachable by root only.
package vmctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultStateDir holds one directory per running VM.
const DefaultStateDir = "/run/novm"

// Operations.
const (
	OpShareAdd = "share-add"
	OpShareRm  = "share-rm"
)

// Request is one control request.
type Request struct {
	Op       string `json:"op"`
	Host     string `json:"host,omitempty"`
	Guest    string `json:"guest,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

type reply struct {
	Error string `json:"error,omitempty"`
}

// Handler carries out requests.
type Handler func(Request) error

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// SocketPath is where the VM called name listens.
func SocketPath(stateDir, name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("VM name %q: want letters, digits, '_', '.', '-' (at most 64)", name)
	}
	return filepath.Join(stateDir, name, "control.sock"), nil
}

// Listen creates the control socket of VM name. A socket left by a VM
// that died is replaced; one that answers means the name is taken. The
// returned cleanup removes the socket and its directory.
func Listen(stateDir, name string) (net.Listener, func(), error) {
	path, err := SocketPath(stateDir, name)
	if err != nil {
		return nil, nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, nil, fmt.Errorf("a VM named %q is already running (%s)", name, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, err
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	cleanup := func() {
		l.Close()
		os.Remove(path)
		os.Remove(filepath.Dir(path))
	}
	return l, cleanup, nil
}

// Serve answers requests on l until it is closed.
func Serve(l net.Listener, h Handler, log *logrus.Entry) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var req Request
			var rep reply
			if err := json.NewDecoder(c).Decode(&req); err != nil {
				rep.Error = "bad request: " + err.Error()
			} else if err := h(req); err != nil {
				rep.Error = err.Error()
			}
			log.WithField("op", req.Op).WithField("error", rep.Error).Debug("control request")
			json.NewEncoder(c).Encode(rep)
		}()
	}
}

// Call sends req to the VM called name and returns its error, if any.
func Call(stateDir, name string, req Request) error {
	path, err := SocketPath(stateDir, name)
	if err != nil {
		return err
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no running VM named %q (no %s)", name, path)
		}
		return fmt.Errorf("VM %q: %w", name, err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return err
	}
	var rep reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return fmt.Errorf("VM %q did not answer: %w", name, err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return nil
}
