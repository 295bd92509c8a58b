// Command fsprobe runs file-system checks and prints one line per fact,
// so the same checks can run in a guest on a novm share and on the host on
// a local directory and be compared line by line (the semantics suite),
// and so a guest root can try to leave a share (the escape suite). It is
// built and run by test/integration; it is not part of novm.
//
//	fsprobe semantics DIR [CHECK...]   facts about DIR's file semantics
//	fsprobe bench DIR MIB FILES  sequential I/O and a metadata storm
//	fsprobe escape DIR SECRET PATH
//	        escape attempts from DIR; SECRET is text only the host has, in
//	        a file beside the share, at host path PATH
package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	switch {
	case len(os.Args) >= 3 && os.Args[1] == "semantics":
		for _, c := range semanticChecks {
			if len(os.Args) > 3 && !slices.Contains(os.Args[3:], c.name) {
				continue
			}
			dir := os.Args[2] + "/" + c.name
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				fmt.Printf("%s: setup: %v\n", c.name, err)
				continue
			}
			f := &facts{check: c.name}
			began := time.Now()
			c.run(f, dir)
			f.print()
			fmt.Fprintf(os.Stderr, "fsprobe: %s took %v\n", c.name, time.Since(began).Round(time.Millisecond))
		}
	case len(os.Args) == 5 && os.Args[1] == "escape":
		for _, c := range escapeChecks {
			began := time.Now()
			r := c.run(os.Args[2], os.Args[3], os.Args[4])
			fmt.Fprintf(os.Stderr, "fsprobe: escape %s took %v\n", c.name, time.Since(began).Round(time.Millisecond))
			fmt.Printf("escape %s: %s\n", c.name, r)
		}
	case len(os.Args) == 5 && os.Args[1] == "bench":
		mib, err1 := strconv.Atoi(os.Args[3])
		files, err2 := strconv.Atoi(os.Args[4])
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, "fsprobe bench DIR MIB FILES")
			os.Exit(2)
		}
		if err := runBench(os.Args[2], mib, files); err != nil {
			fmt.Printf("bench failed: %v\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: fsprobe semantics DIR | fsprobe escape DIR SECRET PATH")
		os.Exit(2)
	}
}

// facts collects what one check observed.
type facts struct {
	check string
	lines []string
}

// add records a fact: a label and values, errors by errno name.
func (f *facts) add(label string, vals ...any) {
	parts := []string{label}
	for _, v := range vals {
		switch v := v.(type) {
		case error:
			parts = append(parts, errName(v))
		case nil:
			parts = append(parts, "ok")
		default:
			parts = append(parts, fmt.Sprint(v))
		}
	}
	f.lines = append(f.lines, strings.Join(parts, " "))
}

func (f *facts) print() {
	for _, l := range f.lines {
		fmt.Printf("%s: %s\n", f.check, l)
	}
}

// errName is the errno's name (ENOENT), "ok" for nil.
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno%d", int(errno))
	}
	return "error(" + err.Error() + ")"
}
