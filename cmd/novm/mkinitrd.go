package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/novm/novm/guest/initramfs"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runMkinitrd(args []string) error {
	fs := flag.NewFlagSet("novm mkinitrd", flag.ContinueOnError)
	agentPath := fs.String("agent", "", "the static novm-agent binary (becomes /init)")
	out := fs.String("o", "", "output file")
	var adds stringList
	fs.Var(&adds, "initrd-add", "copy this directory's tree into the initramfs root (repeatable)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *agentPath == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "novm mkinitrd: -agent and -o are required")
		return errUsage
	}
	agent, err := os.ReadFile(*agentPath)
	if err != nil {
		return err
	}
	a, err := initramfs.Base(agent)
	if err != nil {
		return err
	}
	for _, dir := range adds {
		if err := a.AddTree(dir); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(*out), "."+filepath.Base(*out)+".tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}
