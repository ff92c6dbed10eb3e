package bpfcount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// kernel is the loaded programs, their map and their attachments.
type kernel struct {
	objs   countObjects
	links  []link.Link
	cgroup string // the cgroup v2 directory the programs are attached to

	// noTake is set once the kernel refused a lookup-and-delete on the
	// map (before Linux 5.14): take then reads and deletes apart.
	noTake atomic.Bool
}

// openKernel loads the programs and attaches them to the process's
// cgroup v2 (see the package doc for why there).
func openKernel() (*kernel, error) {
	cg, err := ownCgroup()
	if err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later
	// ones to the memory cgroup, where this does nothing. A failure here
	// shows again, with its real cause, in the load below.
	_ = rlimit.RemoveMemlock()
	k := &kernel{cgroup: cg}
	if err := loadCountObjects(&k.objs, nil); err != nil {
		return nil, fmt.Errorf("load BPF programs: %w", explain(err))
	}
	for _, a := range []struct {
		typ  ebpf.AttachType
		prog *ebpf.Program
	}{
		{ebpf.AttachCGroupInetIngress, k.objs.CountIngress},
		{ebpf.AttachCGroupInetEgress, k.objs.CountEgress},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: a.typ, Program: a.prog})
		if err != nil {
			k.close()
			return nil, fmt.Errorf("attach BPF program to cgroup %s: %w", cg, explain(err))
		}
		k.links = append(k.links, l)
	}
	return k, nil
}

// explain turns a permission error into what the agent lacks. The
// library's own text for it guesses at RLIMIT_MEMLOCK, which newer
// kernels no longer use: the usual cause is missing capabilities.
func explain(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (needs root, or CAP_BPF and CAP_NET_ADMIN)", unix.EPERM)
	}
	return err
}

// ownCgroup returns the directory of the process's cgroup v2: its path
// in /proc/self/cgroup (the "0::" line) under the cgroup2 mount.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("no cgroup v2: %w", err)
	}
	rel, found := "", false
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = p, true
			break
		}
	}
	if !found {
		return "", errors.New("no cgroup v2: the process is in no unified hierarchy (/proc/self/cgroup has no 0:: line)")
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(mnt, rel)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("no cgroup v2: the process's cgroup %s is not under %s", rel, mnt)
	}
	return dir, nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid
// one).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("no cgroup v2: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [tags] - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) >= 5 {
				return f[4], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("no cgroup v2: read mountinfo: %w", err)
	}
	return "", errors.New("no cgroup v2: no cgroup2 file system is mounted")
}

func (k *kernel) track(rc syscall.RawConn) (Key, error) {
	key, err := cookie(rc)
	if err != nil {
		return 0, err
	}
	if err := k.objs.Sockets.Update(uint64(key), countCounts{}, ebpf.UpdateNoExist); err != nil {
		return 0, fmt.Errorf("bpfcount: track socket %d: %w", key, err)
	}
	return key, nil
}

func (k *kernel) read(key Key) (in, out uint64, err error) {
	var c countCounts
	if err := k.objs.Sockets.LookupWithFlags(uint64(key), &c, ebpf.LookupLock); err != nil {
		return 0, 0, fmt.Errorf("bpfcount: read socket %d: %w", key, err)
	}
	return c.In, c.Out, nil
}

// readBatch is how many entries one BPF_MAP_LOOKUP_BATCH call returns at
// most: a sweep over 1,000 tunnels is one call instead of 1,000.
const readBatch = 1024

func (k *kernel) readAll(into map[Key]Counts) error {
	keys := make([]uint64, readBatch)
	vals := make([]countCounts, readBatch)
	var cursor ebpf.MapBatchCursor
	opts := &ebpf.BatchOptions{ElemFlags: uint64(ebpf.LookupLock)}
	for {
		n, err := k.objs.Sockets.BatchLookup(&cursor, keys, vals, opts)
		for i := range n {
			into[Key(keys[i])] = Counts{In: vals[i].In, Out: vals[i].Out}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end of the map
		}
		if err != nil {
			return fmt.Errorf("bpfcount: read all sockets: %w", err)
		}
	}
}

func (k *kernel) take(key Key) (in, out uint64, err error) {
	if !k.noTake.Load() {
		var c countCounts
		err := k.objs.Sockets.LookupAndDeleteWithFlags(uint64(key), &c, ebpf.LookupLock)
		if err == nil {
			return c.In, c.Out, nil
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, 0, fmt.Errorf("bpfcount: take socket %d: %w", key, err)
		}
		if !errors.Is(err, ebpf.ErrNotSupported) && !errors.Is(err, unix.EINVAL) {
			k.forget(key)
			return 0, 0, fmt.Errorf("bpfcount: take socket %d: %w", key, err)
		}
		k.noTake.Store(true)
	}
	in, out, err = k.read(key)
	k.forget(key)
	return in, out, err
}

func (k *kernel) forget(key Key) {
	k.objs.Sockets.Delete(uint64(key)) // already gone is as good
}

func (k *kernel) close() error {
	var errs []error
	for _, l := range k.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, k.objs.Close())
	return errors.Join(errs...)
}

// cookie reads the socket's cookie (SO_COOKIE): a number the kernel gives
// each socket once and never reuses before it reboots.
func cookie(rc syscall.RawConn) (Key, error) {
	var c uint64
	var serr error
	if err := rc.Control(func(fd uintptr) {
		c, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("bpfcount: SO_COOKIE: %w", serr)
	}
	return Key(c), nil
}
