// Command novm runs microVMs without containerd: `novm check` tells whether
// this host can, `novm boot` boots the guest to its agent and back down,
// `novm mkinitrd` builds the guest's initramfs, `novm mkimage` a busybox
// OCI image archive for `ctr images import`.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
)

const usage = `usage: novm <command> [flags]

commands:
  check      check that this host can run novm microVMs
  boot       boot a microVM to its agent, then power it off
  run        run a command in a new microVM: novm run [-i] [-t] [-e K=V] [-w DIR] [--user UID:GID] -- CMD...
  share      add or remove a share of a running VM: novm share add|rm --vm NAME HOST GUEST
  mkinitrd   build an initramfs holding the novm agent
  mkimage    write a busybox OCI image archive for ctr images import: novm mkimage -o FILE

Run "novm <command> -h" for a command's flags.
`

func main() {
	logrus.SetOutput(os.Stderr)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: false, FullTimestamp: true})
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "check":
		err = runCheck(args)
	case "boot":
		err = runBoot(args)
	case "run":
		err = runRun(args)
	case "share":
		err = runShare(args)
	case "mkinitrd":
		err = runMkinitrd(args)
	case "mkimage":
		err = runMkimage(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "novm: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	var code exitCode
	if errors.As(err, &code) {
		os.Exit(int(code))
	}
	if err != nil {
		if err == errUsage {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "novm %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
