//go:build !linux

package bpfcount

import (
	"errors"
	"syscall"
)

// kernel is absent outside Linux: every Counter is in userspace mode.
type kernel struct{ cgroup string }

func openKernel() (*kernel, error) {
	return nil, errors.New("eBPF counting needs Linux")
}

func (k *kernel) track(syscall.RawConn) (Key, error) { return 0, ErrUserspace }
func (k *kernel) read(Key) (uint64, uint64, error)   { return 0, 0, ErrUserspace }
func (k *kernel) readAll(map[Key]Counts) error       { return ErrUserspace }
func (k *kernel) take(Key) (uint64, uint64, error)   { return 0, 0, ErrUserspace }
func (k *kernel) forget(Key)                         {}
func (k *kernel) close() error                       { return nil }
func cookie(syscall.RawConn) (Key, error)            { return 0, ErrUserspace }
