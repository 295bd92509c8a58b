// Package control is the boot-time line protocol between the host and the
// novm agent over the virtio console (/dev/hvc0): the agent announces that
// it is ready, the host tells it to power off. It is shared by both sides
// and holds nothing else; the process API (ttrpc over vsock) comes on top.
package control

import (
	"fmt"
	"sort"
	"strings"
)

// Lines are "novm-agent <verb> [key=value...]\n" from the guest and
// "<command>\n" from the host.
const (
	Prefix      = "novm-agent"
	VerbReady   = "ready"
	VerbBye     = "poweroff" // the agent is about to reset the VM on purpose
	VerbError   = "error"
	CmdPoweroff = "poweroff"
	CmdPing     = "ping"
	VerbPong    = "pong"
)

// Message is one line from the agent.
type Message struct {
	Verb   string
	Fields map[string]string
}

// Format renders a message as one line, fields in key order.
func Format(verb string, fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(Prefix + " " + verb)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, strings.ReplaceAll(fields[k], " ", "_"))
	}
	b.WriteString("\n")
	return b.String()
}

// Parse reads one line from the agent; ok is false for lines that are not
// agent messages (anything else a guest prints on hvc0).
func Parse(line string) (m Message, ok bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != Prefix {
		return Message{}, false
	}
	m = Message{Verb: f[1], Fields: map[string]string{}}
	for _, kv := range f[2:] {
		if k, v, found := strings.Cut(kv, "="); found {
			m.Fields[k] = v
		}
	}
	return m, true
}
