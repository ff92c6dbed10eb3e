package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/acceptloop"
)

// proc is one subprocess of the benchmark: relay, agent or echo target.
// Every proc is in its own process group (so a terminal's Ctrl-C reaches
// only the harness, which stops them in order) and gets SIGKILL if the
// harness dies first (Pdeathsig), so nothing outlives a run.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding its stderr (and stdout unless captured)
	done chan struct{}
	err  error // exit status, valid after done

	mu    sync.Mutex
	lines []string // stderr lines matching a watch, see watchLine
	watch []string
	seen  chan struct{} // poked on every matched line
}

// procs is every subprocess started; stopAll ends them.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

var children procs

// start runs path with args. stderr goes to dir/name.log; lines that
// contain one of watch are also kept in memory for waitLine.
func (ps *procs) start(dir, name, path string, args, env []string, watch ...string) (*proc, error) {
	return ps.startIn(-1, dir, name, path, args, env, watch...)
}

// startIn is start with the process born into the cgroup v2 directory
// open as cgroupFD (-1: this process's own).
func (ps *procs) startIn(cgroupFD int, dir, name, path string, args, env []string, watch ...string) (*proc, error) {
	// A restarted process (the relay and agent are restarted between
	// phases) keeps its earlier logs: relay.log, relay-2.log, ...
	logPath := filepath.Join(dir, name+".log")
	for i := 2; ; i++ {
		if _, err := os.Stat(logPath); err != nil {
			break
		}
		logPath = filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, i))
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = lf
	pr, pw, err := os.Pipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cgroupFD >= 0 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cgroupFD
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{}), watch: watch, seen: make(chan struct{}, 1)}
	if err := cmd.Start(); err != nil {
		lf.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, line)
			for _, w := range p.watch {
				if strings.Contains(line, w) {
					p.mu.Lock()
					p.lines = append(p.lines, line)
					p.mu.Unlock()
					select {
					case p.seen <- struct{}{}:
					default:
					}
					break
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		<-copied
		pr.Close()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// waitLine returns the first kept stderr line containing s.
func (p *proc) waitLine(ctx context.Context, s string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				p.mu.Unlock()
				return l, nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.seen:
		case <-p.done:
			return "", fmt.Errorf("%s exited (%v) before printing %q; see %s:\n%s", p.name, p.err, s, p.log, tail(p.log, 20))
		case <-t.C:
			return "", fmt.Errorf("%s did not print %q within %v; see %s", p.name, s, timeout, p.log)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// count is how many kept stderr lines contain s.
func (p *proc) count(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// alive reports an error if the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited unexpectedly (%v); last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 20))
	default:
		return nil
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stopAll stops every subprocess, the last started first (agent before
// relay before targets).
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(3 * time.Second)
	}
}

// killAll is the last resort of a second Ctrl-C.
func (ps *procs) killAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		p.cmd.Process.Kill()
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// execCommand is exec.CommandContext for a short-lived helper that must
// not outlive the harness either.
func execCommand(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// build compiles the three programs into dir with go build.
func build(ctx context.Context, root, dir string) error {
	args := []string{"build", "-o", dir + string(os.PathSeparator), "./cmd/nanodems-relay", "./cmd/nanodems-agent", "./cmd/nanodems-tunnel"}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// moduleRoot finds the directory of this module's go.mod from the working
// directory upward.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/nanodems/connector") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the github.com/nanodems/connector module (go run ./perf)")
		}
		dir = parent
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// raiseNofile lifts the soft file-descriptor limit to the hard one; the
// subprocesses inherit it. It returns the new soft limit.
func raiseNofile() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
	}
	return rl.Cur
}

// pinOf computes the API certificate pin the way the relay prints it:
// "sha256:" + hex of SHA-256 over the leaf's SubjectPublicKeyInfo.
func pinOf(certFile string) (string, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s: no PEM block", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ---- /proc readings ----

// clkTck is USER_HZ, 100 on every Linux ABI Go supports.
const clkTck = 100

// cpuSeconds is utime+stime of pid from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	// after comm: state(3) ppid(4) ... utime is field 14, stime 15 (1-based)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / clkTck, nil
}

// othersCPU reads the CPU seconds of every process not in ours.
func othersCPU(ours map[int]bool) map[int]float64 {
	m := map[int]float64{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return m
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ours[pid] {
			continue
		}
		if v, err := cpuSeconds(pid); err == nil {
			m[pid] = v
		}
	}
	return m
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// rssBytes is VmRSS of pid from /proc/PID/status.
func rssBytes(pid int) (int64, error) {
	return statusField(pid, "VmRSS:")
}

func statusField(pid int, key string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			if len(f) > 1 && f[1] == "kB" {
				n <<= 10
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// threads is the thread count of pid.
func threads(pid int) int64 {
	n, _ := statusField(pid, "Threads:")
	return n
}

// ---- hidden mode: the echo target ----

// serveEcho runs demo's echo target on addr in this process until
// SIGTERM, printing "listening ADDR" on stderr first.
func serveEcho(addr string) error {
	e, err := demo.StartEcho(addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", e.Addr())
	waitSignal()
	return e.Close()
}

// serveForward runs a plain TCP forwarder, LISTEN>TARGET: each accepted
// connection is dialled on to TARGET and copied both ways with io.Copy
// (half-close kept), with TCP_NODELAY as Go sets it. It is the simplest
// process a byte can cross, the floor the relay and agent are compared with.
func serveForward(spec string) error {
	from, to, ok := strings.Cut(spec, ">")
	if !ok {
		return fmt.Errorf("want LISTEN>TARGET, got %q", spec)
	}
	ln, err := net.Listen("tcp", from)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	go acceptloop.Serve(context.Background(), ln, slog.Default(), func(c net.Conn) {
		go hop(c, func() (net.Conn, error) { return net.Dial("tcp", to) })
	})
	waitSignal()
	return ln.Close()
}

// waitSignal blocks until SIGINT or SIGTERM.
func waitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	<-c
}

// ---- perf stat (-perfstat) ----

// perfEvents are counted per process with -perfstat: every system call,
// and context switches.
var perfEvents = []string{"raw_syscalls:sys_enter", "context-switches"}

// perfCounter is a `perf stat -p PID` running beside a measurement.
type perfCounter struct {
	name string
	cmd  *exec.Cmd
	out  string
}

func startPerfStat(dir, name string, pid int) (*perfCounter, error) {
	path, err := exec.LookPath("perf")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, fmt.Sprintf("perfstat-%s-%d.csv", name, time.Now().UnixNano()))
	cmd := exec.Command(path, "stat", "-x", ",", "-o", out, "-e", strings.Join(perfEvents, ","), "-p", strconv.Itoa(pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &perfCounter{name: name, cmd: cmd, out: out}, nil
}

// stop ends perf stat and returns its counts by short event name
// ("syscalls", "context-switches").
func (p *perfCounter) stop() map[string]float64 {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	m := map[string]float64{}
	b, err := os.ReadFile(p.out)
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 3 || strings.HasPrefix(l, "#") {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		ev := f[2]
		if ev == "raw_syscalls:sys_enter" {
			ev = "syscalls"
		}
		ev = strings.TrimPrefix(ev, "syscalls:sys_enter_")
		m[ev] = v
	}
	return m
}

// ---- meters ----

// cpu reads the CPU seconds of each process of the benchmark, and of all
// other processes of the machine together ("other": a busy neighbour
// makes every figure of a 2-core run worse, so the report shows it).
func (e *env) cpu() map[string]float64 {
	m := map[string]float64{"harness": selfCPU()}
	ours := map[int]bool{os.Getpid(): true}
	for _, p := range e.procs() {
		v, _ := cpuSeconds(p.pid())
		m[p.name] = v
		ours[p.pid()] = true
	}
	e.omu.Lock()
	defer e.omu.Unlock()
	now := othersCPU(ours)
	for pid, v := range now {
		e.othersAcc += v - e.others[pid] // a new process counts from 0
	}
	e.others = now
	m["other"] = e.othersAcc
	return m
}

type nopMeter struct{}

func (nopMeter) start()                   {}
func (nopMeter) stop() map[string]float64 { return nil }

// cpuMeter is the meter of a run: CPU from /proc, and perf stat
// counters of every process with -perfstat.
type cpuMeter struct {
	e      *env
	before map[string]float64
	perf   []*perfCounter
}

func (e *env) meter() meter { return &cpuMeter{e: e} }

func (m *cpuMeter) start() {
	if m.e.cfg.perfstat {
		for _, p := range m.e.procs() {
			if pc, err := startPerfStat(m.e.tmp, p.name, p.pid()); err == nil {
				m.perf = append(m.perf, pc)
			} else {
				logf("perf stat %s: %v", p.name, err)
			}
		}
		if pc, err := startPerfStat(m.e.tmp, "harness", os.Getpid()); err == nil {
			m.perf = append(m.perf, pc)
		}
		time.Sleep(100 * time.Millisecond) // perf attaches asynchronously
	}
	m.before = m.e.cpu()
}

func (m *cpuMeter) stop() map[string]float64 {
	after := m.e.cpu()
	out := map[string]float64{}
	for k, v := range after {
		out[k] = v - m.before[k]
	}
	for _, pc := range m.perf {
		for ev, v := range pc.stop() {
			out[pc.name+" "+ev] = v
		}
	}
	return out
}
