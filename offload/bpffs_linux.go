package offload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// bpffsMount is where bpffs is mounted when no bpffs holds the pin root.
const bpffsMount = "/sys/fs/bpf"

// ensureBPFFS makes sure root lies on a bpffs (mounting one at /sys/fs/bpf if needed) and
// creates root/maps and root/links.
func ensureBPFFS(root string) error {
	if !onBPFFS(filepath.Dir(filepath.Clean(root))) {
		if !onBPFFS(bpffsMount) {
			if err := os.MkdirAll(bpffsMount, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", bpffsMount, err)
			}
			if err := unix.Mount("bpf", bpffsMount, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("mount bpffs at %s: %w", bpffsMount, err)
			}
		}
		if !onBPFFS(filepath.Dir(filepath.Clean(root))) {
			return fmt.Errorf("pin root %s is not on a bpffs: %w", root, ErrNotSupported)
		}
	}
	for _, d := range []string{root, filepath.Join(root, "maps"), filepath.Join(root, "links")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create pin dir: %w", err)
		}
	}
	return nil
}

func onBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && uint32(st.Type) == unix.BPF_FS_MAGIC
}
