// Package testpg runs a real PostgreSQL for tests: the server of Debian's
// postgresql package (its initdb and postgres), in a temporary directory, on
// a free loopback port, as an unprivileged user. A test binary starts one
// server, on first use, and every test gets a fresh database of its own,
// so tests neither see each other's rows nor pay for a server each.
//
// A package's TestMain calls Stop after m.Run. Where PostgreSQL is not
// installed, tests that ask for a database are skipped, and fail with CI
// set: CI must run them.
package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// ErrNotInstalled is Start's error where no initdb and postgres are found.
var ErrNotInstalled = errors.New("PostgreSQL is not installed (Debian package postgresql: /usr/lib/postgresql/*/bin/initdb)")

// Server is a running PostgreSQL.
type Server struct {
	dir  string // holds data/, the socket and the log
	bin  string
	port int
	cred *syscall.Credential // who runs the server; nil: this process's user
	dbs  atomic.Int64

	cmd    *exec.Cmd
	exited chan struct{} // closed when the server has exited
}

// Start initialises a cluster in a new temporary directory and starts it.
// As root it runs the server as the postgres system user (initdb refuses
// root), or nobody where there is none.
func Start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if s.cred, err = unprivileged(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Trust on loopback and the socket: the server is this test's alone.
	// C collation orders text by bytes, as SQLite does.
	if err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust",
		"--no-sync", "--locale=C", "--encoding=UTF8"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// startTimeout bounds the wait for a starting server to accept
// connections; it keeps a broken installation from hanging the tests.
const startTimeout = 60 * time.Second

// start runs the postmaster as a child of this process, not daemonized by
// pg_ctl: if the test binary dies (a panic, go test's timeout) the kernel
// sends the server SIGINT, PostgreSQL's fast shutdown, so no server
// outlives its tests.
func (s *Server) start() error {
	logf, err := os.Create(filepath.Join(s.dir, "log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data(),
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=" + s.dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGINT}
	// Pdeathsig fires when the thread that forked exits, not the process,
	// and Go retires threads (a goroutine that ends locked takes its
	// thread along): fork from a locked thread and keep it, locked and
	// waiting, until the server is gone.
	started := make(chan error, 1)
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		s.cmd, s.exited = nil, nil
		return fmt.Errorf("testpg: postgres: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
			return fmt.Errorf("testpg: postgres exited while starting: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("testpg: postgres did not accept connections within %v: %w", startTimeout, err)
		}
	}
}

// stop asks the server for a fast shutdown (it ends open sessions) and
// waits for it to exit, killing it if it does not.
func (s *Server) stop() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(startTimeout):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// run runs one of the server's programs as the server's user.
func (s *Server) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=" + s.dir}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testpg: %s: %w\n%s", name, err, out)
	}
	return nil
}

// Stop stops the server (fast shutdown: open sessions are ended) and
// removes its directory.
func (s *Server) Stop() error {
	if s.cmd != nil {
		s.stop()
	}
	return os.RemoveAll(s.dir)
}

// DSN is the address of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// CreateDatabase creates a new, empty database and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("testpg: %w", err)
	}
	defer c.Close(context.Background())
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	if _, err := c.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0`); err != nil {
		return "", fmt.Errorf("testpg: create database: %w", err)
	}
	return s.DSN(name), nil
}

var (
	once     sync.Once
	shared   *Server
	startErr error
)

// DSN returns the address of a fresh database on the test binary's server,
// starting the server on first use. Without PostgreSQL it skips t, or
// fails it when CI is set.
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, startErr = Start() })
	if startErr != nil {
		if errors.Is(startErr, ErrNotInstalled) && os.Getenv("CI") == "" {
			t.Skipf("testpg: %v", startErr)
		}
		t.Fatalf("testpg: PostgreSQL tests cannot run: %v", startErr)
	}
	dsn, err := shared.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Stop stops the server DSN started, if it did. TestMain calls it after
// m.Run.
func Stop() {
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		shared = nil
	}
}

// Main is a TestMain for a package whose tests use DSN: it runs the
// tests, stops the server, and then fails the run if goroutines were left
// running (goleak), in that order, as the database driver's goroutines
// end only with the server.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Down stops the test binary's server (fast shutdown: every open session
// ends) without removing it, so that a test can see what its clients do
// while the database is away; Up starts it again on the same port, with
// the same data.
func Down(t testing.TB) {
	t.Helper()
	if shared == nil || shared.cmd == nil {
		t.Fatal("testpg: Down before DSN started a server")
	}
	shared.stop()
	shared.cmd = nil
}

// Up starts the server Down stopped.
func Up(t testing.TB) {
	t.Helper()
	if shared == nil || shared.cmd != nil {
		t.Fatal("testpg: Up of a server that is not down")
	}
	if err := shared.start(); err != nil {
		t.Fatal(err)
	}
}

// binDir is the newest /usr/lib/postgresql/<version>/bin with initdb and
// postgres.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// unprivileged is the user the server runs as when the tests run as root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil && uid != 0 {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("testpg: running as root and there is no postgres or nobody user to run the server as")
}

// freePort is a loopback TCP port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
