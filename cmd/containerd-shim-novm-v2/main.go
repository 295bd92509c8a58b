package main

import (
	"context"

	_ "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/shim"
	_ "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	_ "github.com/pelletier/go-toml/v2"
)

func main() {
	shim.RunShim(context.Background(), nil)
}
