package netstack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Child runs the hidden helper modes of Exec when this process is one,
// and then reports the exit code the process must end with (ok true);
// otherwise it returns at once with ok false. Call it first thing in main,
// before flags or signals are touched: the helper is this same binary,
// re-run with NANODEMS_NETSTACK_HELPER set.
//
//	if code, ok := netstack.Child(); ok {
//		os.Exit(code)
//	}
func Child() (code int, ok bool) {
	switch os.Getenv(envHelper) {
	case "":
		return 0, false
	case "ns":
		return namespaceHelper(), true
	case "hop":
		return hopHelper(), true
	default:
		fmt.Fprintf(os.Stderr, "nanodems-tunnel: unknown %s=%q\n", envHelper, os.Getenv(envHelper))
		return ExitSetup, true
	}
}

// sendReport writes the helper's one message; fd < 0 attaches nothing.
func sendReport(sock int, r Report, fd int) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	return unix.Sendmsg(sock, AppendReport(nil, r), oob, nil, 0)
}

// namespaceHelper runs inside the new user and network namespaces with
// CAP_NET_ADMIN. It sets the network up, hands the TUN descriptor to the
// CLI, waits for the go-ahead, and becomes the tool. Only failures return.
func namespaceHelper() int {
	argv := os.Args[1:]
	fail := func(code int, err error) int {
		if serr := sendReport(reportFD, Report{Err: err.Error()}, -1); serr != nil {
			fmt.Fprintln(os.Stderr, "nanodems-tunnel:", err)
		}
		return code
	}
	if len(argv) == 0 {
		return fail(ExitNotFound, errors.New("exec: no tool to run"))
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := ExitNotFound
		if !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
			code = ExitCannotExec
		}
		return fail(code, fmt.Errorf("exec: %w", err))
	}
	dev := os.Getenv(envTunDev)
	if dev == "" {
		dev = DefaultTunDevice
	}
	fd, name, err := setupNamespace(dev)
	if err != nil {
		return fail(ExitSetup, err)
	}
	if err := sendReport(reportFD, Report{MTU: MTU, Name: name}, fd); err != nil {
		fmt.Fprintln(os.Stderr, "nanodems-tunnel: handing over the TUN interface:", err)
		return ExitSetup
	}
	unix.Close(fd)
	var goAhead [1]byte
	if n, err := unix.Read(reportFD, goAhead[:]); err != nil || n != 1 || goAhead[0] != reportGo {
		// The CLI failed to start its stack and says why itself.
		return ExitSetup
	}
	// The socket stays open until the exec succeeds: its close-on-exec
	// EOF tells the CLI that the tool, not this Go helper, now runs, and
	// only then does the CLI signal it. A signal that reached the helper
	// during its execve would be taken by the old image's handler on
	// another thread and lost with it (seen: 1 in ~300 cancels under load).
	unix.CloseOnExec(reportFD)

	env := withoutHelperEnv(os.Environ())
	// Ambient capabilities are per thread and the exec happens on this
	// one: clear them here and the tool starts with none.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "nanodems-tunnel: dropping capabilities:", err)
		return ExitSetup
	}
	err = syscall.Exec(path, argv, env)
	fmt.Fprintf(os.Stderr, "nanodems-tunnel: exec %s: %v\n", argv[0], err)
	if errors.Is(err, unix.ENOENT) {
		return ExitNotFound
	}
	return ExitCannotExec
}

// setupNamespace is the network of the tool's namespace: lo up, the TUN
// interface at MTU with route_localnet, and 127.0.0.0/8 (but 127.0.0.1)
// routed into it.
func setupNamespace(dev string) (int, string, error) {
	if err := linkUp("lo", 0); err != nil {
		return -1, "", err
	}
	fd, name, err := openTun(dev, tunName)
	if err != nil {
		return -1, "", err
	}
	err = func() error {
		if err := linkUp(name, MTU); err != nil {
			return err
		}
		if err := setRouteLocalnet(name); err != nil {
			return err
		}
		idx, err := ifIndex(name)
		if err != nil {
			return err
		}
		return divertLoopback(idx)
	}()
	if err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	return fd, name, nil
}

// hopHelper runs as ExecOptions.Credential, outside any new namespace, and
// starts the namespace helper from there so that the user namespace
// belongs to that unprivileged user. It relays the tool's exit status.
func hopHelper() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = helperArg
	cmd.Env = append(withoutHelperEnv(os.Environ()), envHelper+"=ns", envTunDev+"="+os.Getenv(envTunDev))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sock := os.NewFile(reportFD, "netstack-report-child")
	cmd.ExtraFiles = []*os.File{sock}
	// SIGKILL: this hop only dies unasked if something killed it hard;
	// the tool must not outlive it.
	cmd.SysProcAttr = namespaceAttr(os.Getuid(), os.Getgid(), syscall.SIGKILL)

	// The terminal's ^C and ^\ reach the tool directly (same process
	// group); the hop must not die of them first. SIGTERM and SIGHUP come
	// from the CLI or a closing terminal and are passed on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	started, waited := startLocked(cmd)
	if err := <-started; err != nil {
		err = explainNamespaceError(err)
		if serr := sendReport(reportFD, Report{Err: err.Error()}, -1); serr != nil {
			fmt.Fprintln(os.Stderr, "nanodems-tunnel:", err)
		}
		return ExitSetup
	}
	sock.Close()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM || s == syscall.SIGHUP {
				cmd.Process.Signal(s)
			}
		case err := <-waited:
			code, _ := exitStatus(cmd, err)
			return code
		}
	}
}
