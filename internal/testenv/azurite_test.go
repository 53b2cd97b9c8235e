package testenv

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// endpoint extracts host:port from a connection string built by TablesConnectionString.
func endpoint(t *testing.T, conn string) string {
	t.Helper()
	m := regexp.MustCompile(`TableEndpoint=https?://([^/;]+)`).FindStringSubmatch(conn)
	if m == nil {
		t.Fatalf("no TableEndpoint in %q", conn)
	}
	return m[1]
}

func TestAzuriteServesTables(t *testing.T) {
	conn := Azurite(t)
	if again := Azurite(t); again != conn {
		t.Fatalf("second Azurite call = %q, want the shared %q", again, conn)
	}
	resp, err := http.Get("http://" + endpoint(t, conn) + "/devstoreaccount1/Tables")
	if err != nil {
		t.Fatalf("GET Tables: %v", err)
	}
	resp.Body.Close()
	// Unauthenticated requests are refused, which proves an Azurite Table server answered.
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET Tables status = %d, want 403 or 401", resp.StatusCode)
	}
}

func TestStartAzuriteStopReleasesPort(t *testing.T) {
	if os.Getenv(EnvTables) != "" {
		t.Fatalf("%s is set: this test checks the local Azurite and must run without it", EnvTables)
	}
	conn, stop, err := StartAzurite()
	if err != nil {
		t.Fatal(err)
	}
	addr := endpoint(t, conn)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		stop()
		t.Fatalf("dial running Azurite: %v", err)
	}
	c.Close()
	stop()
	stop() // idempotent
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("Azurite still accepts connections on %s after stop", addr)
	}
}

func TestClosedPortTablesRefuses(t *testing.T) {
	conn := ClosedPortTables()
	if !strings.Contains(conn, "AccountName=devstoreaccount1") {
		t.Fatalf("connection string %q lacks the development account", conn)
	}
	c, err := net.DialTimeout("tcp", endpoint(t, conn), time.Second)
	if err == nil {
		c.Close()
		t.Fatal("closed-port endpoint accepted a connection")
	}
}

func TestRepoRootHoldsGoMod(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot() = %s without go.mod: %v", root, err)
	}
}

func TestMissingAzuriteNamesTheFix(t *testing.T) {
	saved := azuriteBin
	azuriteBin = filepath.Join("node_modules", ".bin", "no-such-azurite")
	t.Cleanup(func() { azuriteBin = saved })
	t.Setenv(EnvTables, "")
	_, _, err := StartAzurite()
	if err == nil || !strings.Contains(err.Error(), "npm ci") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("StartAzurite without Azurite: err = %v, want a not-exist error that says to run `npm ci`", err)
	}
}

func TestTableNameIsValidAndUnique(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)
	a, b := TableName(t), TableName(t)
	if !valid.MatchString(a) || a == b {
		t.Fatalf("TableName gave %q and %q, want two distinct valid names", a, b)
	}
}
