package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A known byte layout: one file "a" with contents "hi", then the trailer.
func TestNewcLayout(t *testing.T) {
	a := New()
	if err := a.AddFile("a", 0o644, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := a.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000001" + "000081a4" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000002" + "00000000" + "00000000" + "00000000" + "00000000" + "00000002" + "00000000" +
		"a\x00" + "hi\x00\x00" +
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000b" + "00000000" +
		"TRAILER!!!\x00" + "\x00\x00\x00"
	if b.String() != want {
		t.Fatalf("archive bytes:\n%q\nwant\n%q", b.String(), want)
	}
	if b.Len()%4 != 0 {
		t.Fatalf("archive length %d not 4-aligned", b.Len())
	}
}

func TestRejectsEscapingNames(t *testing.T) {
	a := New()
	for _, n := range []string{"", "/", "../x", "a/../b", "a//b", "a\x00b"} {
		if err := a.AddFile(n, 0o644, nil); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}

// The archive is reproducible and GNU cpio reads back what was put in.
func TestReproducibleAndReadableByCpio(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("tool", filepath.Join(dir, "bin", "alias"))
	build := func() []byte {
		a, err := Base([]byte("agent"))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.AddTree(dir); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		a.WriteTo(&b)
		return b.Bytes()
	}
	one, two := build(), build()
	if !bytes.Equal(one, two) {
		t.Fatal("two builds differ")
	}
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Fatalf("cpio not installed (apt-get install cpio): %v", err)
	}
	cmd := exec.Command(cpio, "-t", "-v")
	cmd.Stdin = bytes.NewReader(one)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{"init", "dev/console", "bin/tool", "bin/alias -> tool", "tmp"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
}
