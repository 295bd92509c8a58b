// Package ociimage writes a small OCI image archive around a static
// busybox, for `ctr images import` where no registry is reachable (tests,
// demos, air-gapped hosts). Several tagged images can share its one layer
// and differ in their config (environment, working directory, command).
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Image is one tagged image in the archive.
type Image struct {
	// Name is the full reference, e.g. docker.io/library/busybox:latest.
	Name       string
	Env        []string
	WorkingDir string
	Cmd        []string
}

// DefaultPath is the PATH images get when Env sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch keeps the archive reproducible.
var epoch = time.Unix(0, 0)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

// Write writes an OCI image-layout tar with the images to w. busybox is
// the path of a static busybox binary; every applet it lists is linked.
func Write(w io.Writer, busybox string, images []Image) error {
	layer, diffID, err := busyboxLayer(busybox)
	if err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(b []byte) string {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		blobs[d] = b
		return d
	}
	layerDigest := add(layer)
	var manifests []descriptor
	for _, im := range images {
		env := im.Env
		if !hasPath(env) {
			env = append([]string{DefaultPath}, env...)
		}
		cfg, _ := json.Marshal(map[string]any{
			"architecture": "amd64", "os": "linux", "created": epoch.UTC().Format(time.RFC3339),
			"config": map[string]any{"Env": env, "Cmd": im.Cmd, "WorkingDir": im.WorkingDir},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		})
		cfgDigest := add(cfg)
		man, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfgDigest, Size: int64(len(cfg))},
			"layers": []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: layerDigest, Size: int64(len(layer))}},
		})
		tag := im.Name[strings.LastIndex(im.Name, ":")+1:]
		manifests = append(manifests, descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest: add(man), Size: int64(len(man)),
			Annotations: map[string]string{"io.containerd.image.name": im.Name, "org.opencontainers.image.ref.name": tag},
			Platform:    map[string]string{"architecture": "amd64", "os": "linux"}})
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", index}}
	for _, d := range slices.Sorted(maps.Keys(blobs)) {
		files = append(files, struct {
			name string
			data []byte
		}{"blobs/sha256/" + strings.TrimPrefix(d, "sha256:"), blobs[d]})
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

// busyboxLayer builds the gzipped layer and its uncompressed digest.
func busyboxLayer(busybox string) (gz []byte, diffID string, err error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, "", err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, "", fmt.Errorf("%s --list: %w", busybox, err)
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Name: name + "/", Mode: mode, ModTime: epoch, Typeflag: tar.TypeDir})
	}
	file := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "run", "sys", "tmp", "usr", "var"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		dir(d, mode)
	}
	file("bin/busybox", 0o755, bin)
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			tw.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch, Typeflag: tar.TypeSymlink})
		}
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID = fmt.Sprintf("sha256:%x", sha256.Sum256(raw.Bytes()))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return z.Bytes(), diffID, nil
}
