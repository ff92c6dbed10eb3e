package testpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/nanodems/connector/internal/testwait"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// TestDatabasesAreSeparate proves each DSN is a database of its own on a
// running server: a table made in one is absent from the other.
func TestDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := DSN(t), DSN(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE only_here (x int)`); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, `SELECT COUNT(*) FROM pg_tables WHERE tablename = 'only_here'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a table of one test's database is visible in another's")
	}
}

// childEnv makes the test binary a child that starts a server, prints its
// DSN and dies without stopping it.
const childEnv = "TESTPG_ORPHAN_CHILD"

// TestServerDiesWithTests proves that a test binary that dies without
// stopping its server (a panic, go test's timeout) takes the server with
// it: no PostgreSQL outlives its tests on a shared machine.
func TestServerDiesWithTests(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		s, err := Start()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(s.DSN("postgres"))
		fmt.Println(s.dir)
		os.Exit(0) // no Stop
	}
	if _, err := binDir(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTests$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "postgres://") {
		t.Fatalf("child printed %q", out)
	}
	dsn, dir := lines[0], lines[1]
	defer os.RemoveAll(dir)
	ctx := context.Background()
	if err := testwait.Until(30*time.Second, func() error {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil // gone
		}
		c.Close(ctx)
		return errors.New("the server of a dead test binary still accepts connections")
	}); err != nil {
		t.Fatal(err)
	}
}
