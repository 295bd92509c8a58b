package loader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// LoadFile loads the kernel at path, whatever its format, into mem. A
// bzImage is unpacked to its ELF vmlinux first (cached under cacheDir).
func LoadFile(mem Memory, path, cacheDir string) (Kernel, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Kernel{}, fmt.Errorf("kernel %s does not exist (build the default one with `make`, or pass --kernel)", path)
		}
		return Kernel{}, fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Kernel{}, fmt.Errorf("kernel %s: %w: not a regular file", path, ErrNotKernel)
	}
	head := make([]byte, hdrEnd)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return Kernel{}, fmt.Errorf("kernel %s: %w", path, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		k, err := LoadELF(mem, f)
		if err != nil {
			return Kernel{}, fmt.Errorf("kernel %s: %w", path, err)
		}
		return k, nil
	case IsBzImage(head):
		image, err := os.ReadFile(path)
		if err != nil {
			return Kernel{}, fmt.Errorf("kernel %s: %w", path, err)
		}
		vmlinux, setup, err := ExtractBzImage(image, cacheDir)
		if err != nil {
			return Kernel{}, fmt.Errorf("kernel %s: %w", path, err)
		}
		k, err := LoadELF(mem, bytes.NewReader(vmlinux))
		if err != nil {
			return Kernel{}, fmt.Errorf("kernel %s (unpacked bzImage): %w", path, err)
		}
		k.Setup = setup
		return k, nil
	}
	return Kernel{}, fmt.Errorf("kernel %s: %w", path, ErrNotKernel)
}
