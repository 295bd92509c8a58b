package loader

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/novm/novm/hypervisor/memory"
	"github.com/novm/novm/internal/testkernel"
)

func newMem(t *testing.T) *memory.Memory {
	m, err := memory.New(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestLoadELFWithPVHNote(t *testing.T) {
	mem := newMem(t)
	code := testkernel.PrintSerial("x")
	k, err := LoadELF(mem, bytes.NewReader(testkernel.ELF(code, true)))
	if err != nil {
		t.Fatal(err)
	}
	if k.PVHEntry != testkernel.LoadAddr || k.Entry64 != testkernel.LoadAddr || k.Start != testkernel.LoadAddr || k.End != testkernel.LoadAddr+uint64(len(code)) {
		t.Fatalf("kernel = %+v", k)
	}
	got, _ := mem.Slice(testkernel.LoadAddr, uint64(len(code)))
	if !bytes.Equal(got, code) {
		t.Fatal("segment not loaded at its physical address")
	}
}

func TestLoadELFWithoutPVHNote(t *testing.T) {
	k, err := LoadELF(newMem(t), bytes.NewReader(testkernel.ELF(testkernel.UD2, false)))
	if err != nil {
		t.Fatal(err)
	}
	if k.PVHEntry != 0 || k.Entry64 != testkernel.LoadAddr {
		t.Fatalf("kernel = %+v", k)
	}
}

func TestRejectsNonKernels(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"empty":   nil,
		"text":    []byte("#!/bin/sh\necho not a kernel\n"),
		"garbage": bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 100),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		if _, err := LoadFile(newMem(t), p, ""); !errors.Is(err, ErrNotKernel) {
			t.Errorf("%s: err = %v, want ErrNotKernel", name, err)
		}
	}
	if _, err := LoadFile(newMem(t), filepath.Join(dir, "missing"), ""); err == nil || !bytes.Contains([]byte(err.Error()), []byte("does not exist")) {
		t.Errorf("missing kernel: err = %v", err)
	}
	if _, err := LoadFile(newMem(t), dir, ""); !errors.Is(err, ErrNotKernel) {
		t.Errorf("directory: err = %v", err)
	}
}

func TestSegmentOutsideMemory(t *testing.T) {
	small, err := memory.New(1 << 20) // ends exactly at the load address
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if _, err := LoadELF(small, bytes.NewReader(testkernel.ELF(testkernel.UD2, true))); err == nil {
		t.Fatal("segment beyond RAM accepted")
	}
}

// fakeBzImage wraps an ELF into the parts of a bzImage the loader reads.
func fakeBzImage(t *testing.T, elf []byte) []byte {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(elf)
	zw.Close()
	const setupSects = 4
	img := make([]byte, (setupSects+1)*512)
	img[hdrSetupSects] = setupSects
	binary.LittleEndian.PutUint32(img[hdrMagic:], bzMagic)
	binary.LittleEndian.PutUint16(img[hdrVersion:], 0x20f)
	binary.LittleEndian.PutUint32(img[hdrPayloadOffset:], 0x40)
	binary.LittleEndian.PutUint32(img[hdrPayloadLength:], uint32(z.Len()))
	img = append(img, make([]byte, 0x40)...)
	return append(img, z.Bytes()...)
}

func TestBzImageUnpackedOnHostAndCached(t *testing.T) {
	elf := testkernel.ELF(testkernel.UD2, true)
	dir := t.TempDir()
	path := filepath.Join(dir, "bzImage")
	os.WriteFile(path, fakeBzImage(t, elf), 0o644)
	cache := filepath.Join(dir, "cache")
	k, err := LoadFile(newMem(t), path, cache)
	if err != nil {
		t.Fatal(err)
	}
	if k.PVHEntry != testkernel.LoadAddr || len(k.Setup) != hdrEnd-hdrSetupSects {
		t.Fatalf("kernel = %+v", k)
	}
	files, _ := os.ReadDir(cache)
	if len(files) != 1 {
		t.Fatalf("cache holds %d files, want 1", len(files))
	}
	cached, _ := os.ReadFile(filepath.Join(cache, files[0].Name()))
	if !bytes.Equal(cached, elf) {
		t.Fatal("cached vmlinux differs from the payload")
	}
}

func TestBzImagePayloadOutOfBounds(t *testing.T) {
	img := fakeBzImage(t, testkernel.ELF(testkernel.UD2, true))
	binary.LittleEndian.PutUint32(img[hdrPayloadLength:], 0xffffff00)
	if _, _, err := ExtractBzImage(img, ""); !errors.Is(err, ErrNotKernel) {
		t.Fatalf("err = %v", err)
	}
}
