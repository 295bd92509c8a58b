// Command novm-agent is PID 1 inside a novm microVM (installed as /init in
// the initramfs). It is a static binary with no dependencies on the guest.
package main

import (
	"fmt"
	"os"

	"github.com/novm/novm/agent"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "novm-agent runs as PID 1 inside a novm guest; it is not meant to be started by hand")
		os.Exit(2)
	}
	agent.Main()
}
