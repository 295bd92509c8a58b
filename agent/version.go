// Package agent is the novm guest agent: PID 1 inside the microVM. It sets
// up the guest's minimal userland (mounts, zombie reaping), reports ready
// to the host and carries out the host's requests.
package agent

// Version is reported to the host in the ready message; set at link time
// with -ldflags "-X github.com/novm/novm/agent.Version=...".
var Version = "dev"
