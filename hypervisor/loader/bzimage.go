package loader

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Offsets in the bzImage real-mode header (Documentation/x86/boot.rst).
const (
	hdrSetupSects    = 0x1f1
	hdrMagic         = 0x202
	hdrVersion       = 0x206
	hdrPayloadOffset = 0x248
	hdrPayloadLength = 0x24c
	hdrEnd           = 0x268      // end of the 2.15 setup header
	bzMagic          = 0x53726448 // "HdrS"
)

// IsBzImage reports whether header (the first bytes of a file) looks like
// a bzImage with a payload the host can unpack (boot protocol >= 2.08).
func IsBzImage(header []byte) bool {
	return len(header) >= hdrEnd &&
		binary.LittleEndian.Uint32(header[hdrMagic:]) == bzMagic &&
		binary.LittleEndian.Uint16(header[hdrVersion:]) >= 0x208
}

// ExtractBzImage returns the ELF vmlinux inside a bzImage, unpacked on the
// host, and the bzImage's setup header. Results are cached in cacheDir
// (keyed by the bzImage's SHA-256) so a kernel is unpacked once.
func ExtractBzImage(image []byte, cacheDir string) (vmlinux []byte, setup []byte, err error) {
	if !IsBzImage(image) {
		return nil, nil, fmt.Errorf("%w: no bzImage header", ErrNotKernel)
	}
	setupSects := int(image[hdrSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	protStart := uint64(setupSects+1) * 512
	off := protStart + uint64(binary.LittleEndian.Uint32(image[hdrPayloadOffset:]))
	n := uint64(binary.LittleEndian.Uint32(image[hdrPayloadLength:]))
	if off+n > uint64(len(image)) || off+n < off {
		return nil, nil, fmt.Errorf("%w: bzImage payload [%#x,+%#x) lies outside the %d-byte file", ErrNotKernel, off, n, len(image))
	}
	setup = append([]byte(nil), image[hdrSetupSects:hdrEnd]...)
	sum := sha256.Sum256(image)
	cached := filepath.Join(cacheDir, "vmlinux-"+hex.EncodeToString(sum[:12]))
	if cacheDir != "" {
		if b, err := os.ReadFile(cached); err == nil {
			return b, setup, nil
		}
	}
	vmlinux, err = decompress(image[off : off+n])
	if err != nil {
		return nil, nil, fmt.Errorf("unpack bzImage payload: %w", err)
	}
	if cacheDir != "" {
		if err := writeFileAtomic(cached, vmlinux); err != nil {
			return nil, nil, fmt.Errorf("cache unpacked kernel: %w", err)
		}
	}
	return vmlinux, setup, nil
}

// decompress recognises the compressors Linux can use for its payload.
// gzip is unpacked in-process; the others go through the standard host
// tools, which the error names when one is missing.
func decompress(payload []byte) ([]byte, error) {
	magics := []struct {
		magic []byte
		tool  string
	}{
		{[]byte{0x1f, 0x8b}, ""},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz"},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"},
		{[]byte{'B', 'Z', 'h'}, "bzip2"},
		{[]byte{0x02, 0x21, 0x4c, 0x18}, "lz4"},
		{[]byte{0x89, 'L', 'Z', 'O'}, "lzop"},
		{[]byte{0x5d, 0x00, 0x00}, "lzma"},
	}
	for _, m := range magics {
		if !bytes.HasPrefix(payload, m.magic) {
			continue
		}
		if m.tool == "" {
			zr, err := gzip.NewReader(bytes.NewReader(payload))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		}
		path, err := exec.LookPath(m.tool)
		if err != nil {
			return nil, fmt.Errorf("payload is %s-compressed and %q is not installed (apt-get install %s)", m.tool, m.tool, debianPackage(m.tool))
		}
		cmd := exec.Command(path, "-dc")
		cmd.Stdin = bytes.NewReader(payload)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		// The payload is followed by padding some tools complain about;
		// what matters is whether the output is an ELF.
		runErr := cmd.Run()
		if !bytes.HasPrefix(out.Bytes(), []byte("\x7fELF")) {
			return nil, fmt.Errorf("%s -dc: %v: %s", m.tool, runErr, bytes.TrimSpace(stderr.Bytes()))
		}
		return out.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown compression (first bytes % x)", payload[:min(len(payload), 6)])
}

func debianPackage(tool string) string {
	switch tool {
	case "xz", "lzma":
		return "xz-utils"
	case "lz4":
		return "lz4"
	}
	return tool
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
