package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExecOptions configure Exec. The zero value runs the tool on the
// process's own stdio as the calling user.
type ExecOptions struct {
	// Stdin, Stdout and Stderr of the tool; nil means the process's own.
	// An *os.File is handed to the tool as is (a terminal stays a
	// terminal).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env of the tool; nil means os.Environ().
	Env []string
	// Logger for the stack ("rejecting unknown loopback …"); nil means
	// slog.Default().
	Logger *slog.Logger
	// TunDevice is the TUN clone device; empty means /dev/net/tun.
	TunDevice string
	// Self is the executable re-run as the namespace helper; empty means
	// /proc/self/exe. Its main must call Child first.
	Self string
	// Credential, when set, is who creates the namespace: the helper
	// first drops to it, then makes the user namespace, so the namespace
	// is owned by that unprivileged user even when the CLI runs as root
	// (the tests use nobody to prove the rootless path).
	Credential *syscall.Credential
	// KillDelay is how long a tool gets between SIGTERM (ctx canceled)
	// and SIGKILL; zero means 5 s.
	KillDelay time.Duration

	// started, if set, is called with the helper's pid once the stack
	// serves it (tests enter the namespace through it).
	started func(pid int)
}

// Environment of the hidden helper modes (see Child).
const (
	envHelper = "NANODEMS_NETSTACK_HELPER" // "ns": make the namespace; "hop": drop to Credential first
	envTunDev = "NANODEMS_NETSTACK_TUNDEV"
	helperArg = "nanodems-tunnel-netns" // argv[0] of the helper, for ps
	reportFD  = 3                       // the helper's end of the socketpair
)

// Exit codes of Exec when the tool never ran, as env(1) and shells use
// them: 125 the namespace could not be made, 126 the tool could not be
// executed, 127 it was not found.
const (
	ExitSetup       = 125
	ExitCannotExec  = 126
	ExitNotFound    = 127
	defaultKillWait = 5 * time.Second
)

// ErrUserNamespaces marks a system where an unprivileged user cannot make
// a user namespace; the wrapping error names the sysctl.
var ErrUserNamespaces = errors.New("unprivileged user namespaces are disabled")

// Exec runs argv in a private user and network namespace whose loopback
// addresses, except 127.0.0.1, lead into a TUN interface served by a
// Stack in this process: the tool connects to 127.0.0.X:port as if the
// camera were local, without admin rights, OS binds, or clashes with the
// machine's own services. It returns the tool's exit status (128+signal
// if a signal ended it) once the tool has exited and the stack is torn
// down. Canceling ctx sends the tool SIGTERM, then SIGKILL after
// KillDelay.
//
// How: the CLI re-runs itself (Self) as a helper in new user and network
// namespaces, mapping the caller's uid and gid to themselves and keeping
// CAP_NET_ADMIN as an ambient capability so that it survives the exec. The
// helper brings lo up, makes the TUN interface, routes 127.0.0.0/8 into it
// (divertLoopback), hands the TUN descriptor back over a socketpair, waits
// for the go-ahead, drops its capabilities and execs the tool, which so
// runs as the caller with no privilege, in a namespace where it is the
// caller's uid as before.
func Exec(ctx context.Context, dial Dialer, plan Planner, argv []string, opt ExecOptions) (int, error) {
	if len(argv) == 0 || argv[0] == "" {
		return ExitNotFound, errors.New("exec: no tool to run")
	}
	if dial == nil {
		return ExitSetup, errors.New("exec: nil Dialer")
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ExitSetup, fmt.Errorf("exec: socketpair: %w", err)
	}
	parentEnd := os.NewFile(uintptr(pair[0]), "netstack-report")
	childEnd := os.NewFile(uintptr(pair[1]), "netstack-report-child")
	rc, err := net.FileConn(parentEnd)
	parentEnd.Close()
	if err != nil {
		childEnd.Close()
		return ExitSetup, fmt.Errorf("exec: report socket: %w", err)
	}
	report := rc.(*net.UnixConn)
	defer report.Close()

	self := opt.Self
	if self == "" {
		self = "/proc/self/exe"
	}
	dev := opt.TunDevice
	if dev == "" {
		dev = DefaultTunDevice
	}
	env := opt.Env
	if env == nil {
		env = os.Environ()
	}
	mode := "ns"
	if opt.Credential != nil {
		mode = "hop"
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Args = append([]string{helperArg}, argv...)
	cmd.Env = append(withoutHelperEnv(env), envHelper+"="+mode, envTunDev+"="+dev)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opt.Stdin, opt.Stdout, opt.Stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.ExtraFiles = []*os.File{childEnd}
	if opt.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opt.Credential, Pdeathsig: syscall.SIGTERM}
	} else {
		cmd.SysProcAttr = namespaceAttr(os.Getuid(), os.Getgid(), syscall.SIGTERM)
	}
	// execd is closed once the tool runs (the helper's report socket hits
	// close-on-exec) or will never run; Cancel signals only then, since a
	// signal the Go helper takes during its own execve is lost.
	execd := make(chan struct{})
	var execdOnce sync.Once
	markExecd := func() { execdOnce.Do(func() { close(execd) }) }
	cmd.Cancel = func() error {
		<-execd
		return cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.WaitDelay = opt.KillDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = defaultKillWait
	}

	started, waited := startLocked(cmd)
	err = <-started
	childEnd.Close()
	if err != nil {
		markExecd()
		return ExitSetup, explainNamespaceError(err)
	}
	// From here on the helper runs: every return path waits for it.
	exitCode := func() (int, error) {
		werr := <-waited
		return exitStatus(cmd, werr)
	}

	fd, rep, err := readReport(ctx, report)
	if err != nil {
		markExecd()
		cmd.Process.Kill()
		code, _ := exitCode()
		if ctx.Err() != nil {
			return code, ctx.Err()
		}
		return ExitSetup, err
	}
	if rep.Err != "" {
		markExecd()
		code, _ := exitCode()
		if strings.HasPrefix(rep.Err, "exec: ") {
			return code, errors.New(rep.Err)
		}
		return ExitSetup, errors.New(rep.Err)
	}
	st, err := NewStack(fd, dial, plan, Options{Logger: opt.Logger, MTU: rep.MTU})
	if err != nil {
		markExecd()
		cmd.Process.Kill()
		exitCode()
		return ExitSetup, err
	}
	defer st.Close()
	if ctx.Err() != nil {
		// No go-ahead: the helper sees EOF and exits without running
		// the tool.
		markExecd()
		report.Close()
		code, _ := exitCode()
		return code, ctx.Err()
	}
	if _, err := report.Write([]byte{reportGo}); err != nil {
		// The helper died between its report and now; its status says why.
		markExecd()
		return exitCode()
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var b [1]byte
		report.Read(b[:]) // EOF at the tool's execve, or the helper's death
		markExecd()
	}()
	if opt.started != nil {
		<-execd
		opt.started(cmd.Process.Pid)
	}
	code, err := exitCode()
	<-readerDone
	return code, err
}

// namespaceAttr makes the helper's user and network namespaces. The
// caller's uid and gid map to themselves (one line each: all an
// unprivileged user may write), so the tool keeps its identity and the
// caller's files stay the caller's; CAP_NET_ADMIN, which every process
// holds in the user namespace it was created in, is made ambient so that
// it survives the helper's exec of itself (a non-zero uid loses permitted
// capabilities at execve otherwise).
func namespaceAttr(uid, gid int, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
		AmbientCaps:                []uintptr{unix.CAP_NET_ADMIN},
		Pdeathsig:                  deathSig,
	}
}

// startLocked starts cmd from a goroutine locked to its OS thread and
// reaps it there. Pdeathsig fires when the *thread* that forked the child
// exits, and Go may retire threads: keeping that thread busy until the
// child is gone means the tool is signaled only when the CLI really dies.
func startLocked(cmd *exec.Cmd) (started, waited <-chan error) {
	s := make(chan error, 1)
	w := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			s <- err
			w <- err
			return
		}
		s <- nil
		w <- cmd.Wait()
	}()
	return s, w
}

// exitStatus turns Wait's outcome into a shell-style exit status.
func exitStatus(cmd *exec.Cmd, err error) (int, error) {
	ps := cmd.ProcessState
	if ps == nil {
		return ExitSetup, err
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		return ps.ExitCode(), err
	}
	return ps.ExitCode(), nil
}

// readReport waits for the helper's report and its TUN descriptor. A
// helper that dies first closes its end: EOF, reported as such.
func readReport(ctx context.Context, c *net.UnixConn) (int, Report, error) {
	// The watcher is joined before returning, so no deadline it sets can
	// land on the socket's later use (the wait for the tool's execve).
	done, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			c.SetReadDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	defer func() { close(done); <-watched }()
	buf := make([]byte, MaxReportSize+1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		if ctx.Err() != nil {
			return -1, Report{}, ctx.Err()
		}
		return -1, Report{}, fmt.Errorf("exec: reading the namespace helper's report: %w", err)
	}
	fds, ferr := parseRights(oob[:oobn])
	if n == 0 {
		closeAll(fds)
		return -1, Report{}, errors.New("exec: the namespace helper exited before setting up the namespace")
	}
	rep, err := ParseReport(buf[:n])
	if err == nil && ferr != nil {
		err = ferr
	}
	if err == nil && rep.Err == "" && len(fds) != 1 {
		err = fmt.Errorf("%w: %d descriptors attached", errBadReport, len(fds))
	}
	if err != nil || rep.Err != "" {
		closeAll(fds)
		return -1, rep, err
	}
	return fds[0], rep, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_RIGHTS {
			f, err := unix.ParseUnixRights(&m)
			if err != nil {
				closeAll(fds)
				return nil, err
			}
			fds = append(fds, f...)
		}
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func withoutHelperEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, envHelper+"=") || strings.HasPrefix(kv, envTunDev+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// explainNamespaceError turns a failed clone(CLONE_NEWUSER|CLONE_NEWNET)
// into the sentence an operator can act on.
func explainNamespaceError(err error) error {
	const sysctl = "/proc/sys/user/max_user_namespaces"
	limit := "unreadable"
	if b, rerr := os.ReadFile(sysctl); rerr == nil {
		limit = strings.TrimSpace(string(b))
	}
	alt := "or use `nanodems-tunnel run --tun` as admin"
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EUSERS):
		if limit == "0" {
			return fmt.Errorf("exec: %w: %s is 0; an admin can run `sysctl -w user.max_user_namespaces=15000`, %s (%v)", ErrUserNamespaces, sysctl, alt, err)
		}
		return fmt.Errorf("exec: %w: the limit in %s (%s) is reached; an admin can raise it, %s (%v)", ErrUserNamespaces, sysctl, limit, alt, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("exec: %w: creating a user namespace was refused (%v; %s is %s; on Debian also check /proc/sys/kernel/unprivileged_userns_clone, and containers often forbid them), %s", ErrUserNamespaces, err, sysctl, limit, alt)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("exec: %w: this kernel has no user or network namespaces (%v), %s", ErrUserNamespaces, err, alt)
	}
	return fmt.Errorf("exec: starting the namespace helper: %w", err)
}
