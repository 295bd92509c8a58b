// Package api is the agent's ttrpc API (agent.proto) and the constants
// both ends share. Regenerate the Go code with `make proto`.
package api

// Vsock ports the agent listens on.
const (
	// AgentPort serves the ttrpc Agent service.
	AgentPort = 1024
	// StdioPort accepts process stdio streams.
	StdioPort = 1025
)

// Stdio stream names, as sent in a stream's first line.
const (
	StreamStdin  = "stdin"
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// SharesTag is the virtio-fs tag of the host's file-system device (the
// VMM's vmm.FSTag): each share the host exports is an entry in its root.
const SharesTag = "novm"
