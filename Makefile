# novm build. `make` builds the binaries, the default guest kernel (cached
# outside the tree, see guest/kernel/build.sh) and the initramfs.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN      := bin
PREFIX   ?= /usr/local
GOFLAGS_AGENT := -trimpath -ldflags "-s -w -X github.com/novm/novm/agent.Version=$(VERSION)"
BUSYBOX  ?= /bin/busybox

GO_SOURCES := $(shell find . -name '*.go' -not -path './.git/*') go.mod go.sum
KERNEL_INPUTS := $(wildcard guest/kernel/*) $(wildcard guest/kernel/patches/*)

.PHONY: all test bench demo setup install clean fuzz proto

all: $(BIN)/novm $(BIN)/containerd-shim-novm-v2 $(BIN)/busybox-image.tar $(BIN)/novm-agent $(BIN)/vmlinux $(BIN)/initramfs.cpio $(BIN)/initramfs-busybox.cpio $(BIN)/rootfs/bin/busybox

$(BIN)/novm: $(GO_SOURCES)
	$(GO) build -trimpath -o $@ ./cmd/novm

# The containerd shim: found by containerd on its PATH; finds the guest
# kernel and initramfs beside itself or in $(PREFIX)/share/novm.
$(BIN)/containerd-shim-novm-v2: $(GO_SOURCES)
	$(GO) build -trimpath -o $@ ./cmd/containerd-shim-novm-v2

# A busybox image for `ctr images import` (no registry needed).
$(BIN)/busybox-image.tar: $(BIN)/novm $(BUSYBOX)
	$(BIN)/novm mkimage -busybox $(BUSYBOX) -o $@

# The agent is PID 1 in the guest: static, no cgo, stripped.
$(BIN)/novm-agent: $(GO_SOURCES)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_AGENT) -o $@ ./cmd/novm-agent

$(BIN)/vmlinux: $(KERNEL_INPUTS)
	guest/kernel/build.sh $@

$(BIN)/initramfs.cpio: $(BIN)/novm $(BIN)/novm-agent
	$(BIN)/novm mkinitrd -agent $(BIN)/novm-agent -o $@

# Test initramfs: the agent plus Debian's static busybox.
$(BIN)/initramfs-busybox.cpio: $(BIN)/novm $(BIN)/novm-agent $(BUSYBOX)
	rm -rf $(BIN)/busybox-root && mkdir -p $(BIN)/busybox-root/bin
	cp $(BUSYBOX) $(BIN)/busybox-root/bin/busybox
	ln -s busybox $(BIN)/busybox-root/bin/sh
	$(BIN)/novm mkinitrd -agent $(BIN)/novm-agent -initrd-add $(BIN)/busybox-root -o $@

# Regenerates the agent API's Go code (committed). Needs protoc (Debian's
# protobuf-compiler) and the two Go plugins at the versions below.
proto:
	GOBIN=$(abspath $(BIN)/tools) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(abspath $(BIN)/tools) $(GO) install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@v1.2.10
	PATH=$(abspath $(BIN)/tools):$$PATH protoc -I agent/api --go_out=agent/api --go_opt=paths=source_relative \
		--go-ttrpc_out=agent/api --go-ttrpc_opt=paths=source_relative agent/api/agent.proto

# A busybox root filesystem for `novm run --rootfs`: every applet linked,
# the directories the agent mounts on.
$(BIN)/rootfs/bin/busybox: $(BUSYBOX)
	rm -rf $(BIN)/rootfs && mkdir -p $(BIN)/rootfs/bin $(BIN)/rootfs/proc $(BIN)/rootfs/sys $(BIN)/rootfs/dev $(BIN)/rootfs/tmp $(BIN)/rootfs/etc $(BIN)/rootfs/root
	cp $(BUSYBOX) $(BIN)/rootfs/bin/busybox
	for a in $$($(BUSYBOX) --list); do [ -e $(BIN)/rootfs/bin/$$a ] || ln -s busybox $(BIN)/rootfs/bin/$$a; done

# Installs the Debian packages and Go tools the build and tests need.
setup:
	.ci/setup

demo: all
	$(BIN)/novm check
	$(BIN)/novm boot --cpus 2
	$(BIN)/novm run -- /bin/busybox sh -c 'echo "hello from $$(/bin/busybox uname -r) on $$(/bin/busybox nproc) vCPU"'

test: all
	$(GO) vet ./...
	NOVM_BIN=$(abspath $(BIN)) $(GO) test -count=1 -parallel 3 -timeout 40m ./...
	$(MAKE) fuzz FUZZTIME=10s

# Short runs of every fuzz target (parsers of guest-controlled memory).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzQueue$$' -fuzztime $(FUZZTIME) ./hypervisor/virtio/
	$(GO) test -run '^$$' -fuzz '^FuzzTxPacket$$' -fuzztime $(FUZZTIME) ./hypervisor/virtio/vsock/
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime $(FUZZTIME) ./virtiofs/

bench: all
	$(GO) test -count=1 -run '^$$' -bench RequestCost ./virtiofs/
	NOVM_BIN=$(abspath $(BIN)) $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/integration/

install: all
	install -D -m 0755 $(BIN)/novm $(DESTDIR)$(PREFIX)/bin/novm
	install -D -m 0755 $(BIN)/containerd-shim-novm-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-novm-v2
	install -D -m 0644 $(BIN)/vmlinux $(DESTDIR)$(PREFIX)/share/novm/vmlinux
	install -D -m 0644 $(BIN)/initramfs.cpio $(DESTDIR)$(PREFIX)/share/novm/initramfs.cpio
	install -D -m 0644 $(BIN)/initramfs-busybox.cpio $(DESTDIR)$(PREFIX)/share/novm/initramfs-busybox.cpio

clean:
	rm -rf $(BIN)
