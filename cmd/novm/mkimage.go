package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/novm/novm/guest/ociimage"
)

// runMkimage writes a busybox OCI image archive for `ctr images import`.
func runMkimage(args []string) error {
	fs := flag.NewFlagSet("novm mkimage", flag.ContinueOnError)
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox binary")
	name := fs.String("name", "docker.io/library/busybox:latest", "image reference")
	out := fs.String("o", "", "output archive")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "novm mkimage: -o is required")
		return errUsage
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := ociimage.Write(f, *busybox, []ociimage.Image{{Name: *name, Cmd: []string{"sh"}, WorkingDir: "/"}}); err != nil {
		f.Close()
		os.Remove(*out)
		return err
	}
	return f.Close()
}
