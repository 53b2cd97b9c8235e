package funcpkg

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testHostJSON = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler","workingDirectory":""}}}`

// stage writes a function app folder whose handler is an arbitrary file with mode 0644 on disk, as it is after
// a checkout or a build on Windows: the zip must mark it executable anyway.
func stage(t *testing.T, handler []byte) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"host.json":                   []byte(testHostJSON),
		"ProcessQueue/function.json":  []byte(`{"bindings":[]}`),
		"DrainDeferred/function.json": []byte(`{"bindings":[]}`),
		"handler":                     handler,
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// entries reads a zip's entries by name.
func entries(t *testing.T, zipPath string) map[string]*zip.File {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zr.Close() })
	out := map[string]*zip.File{}
	for _, f := range zr.File {
		out[f.Name] = f
	}
	return out
}

// The external attributes carry Unix modes: the handler 0755 whatever its mode on disk, files 0644, folders 0755.
func TestWriteZipStoresUnixModes(t *testing.T) {
	dir := stage(t, []byte("not a binary"))
	zipPath := filepath.Join(t.TempDir(), "app.zip")
	if err := WriteZip(dir, zipPath); err != nil {
		t.Fatal(err)
	}
	files := entries(t, zipPath)
	want := map[string]fs.FileMode{
		"host.json": 0o644, "handler": 0o755, "ProcessQueue/": fs.ModeDir | 0o755, "ProcessQueue/function.json": 0o644,
		"DrainDeferred/": fs.ModeDir | 0o755, "DrainDeferred/function.json": 0o644,
	}
	if len(files) != len(want) {
		t.Errorf("zip has %d entries, want %d: %v", len(files), len(want), files)
	}
	for name, mode := range want {
		f, ok := files[name]
		if !ok {
			t.Errorf("no entry %s", name)
			continue
		}
		if f.CreatorVersion>>8 != 3 {
			t.Errorf("%s: made by host %d, want 3 (Unix), else the mode bits are ignored", name, f.CreatorVersion>>8)
		}
		if got := fs.FileMode(f.ExternalAttrs >> 16); got&0o777 != mode&0o777 {
			t.Errorf("%s: external attributes give mode %o, want %o", name, got&0o777, mode&0o777)
		}
		if got := f.Mode(); got != mode {
			t.Errorf("%s: mode %v, want %v", name, got, mode)
		}
		if !f.Modified.Equal(modTime) {
			t.Errorf("%s: modified %v, want the fixed %v", name, f.Modified, modTime)
		}
	}
	// The same input gives the same bytes.
	again := filepath.Join(t.TempDir(), "again.zip")
	if err := WriteZip(dir, again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(zipPath)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two zips of the same folder differ")
	}
}

// Check refuses a zip whose handler would extract without +x, a zip of the folder rather than its contents, and
// a handler that is not a static linux/amd64 executable.
func TestCheckRefuses(t *testing.T) {
	write := func(t *testing.T, entries map[string]fs.FileMode, creator uint16, handler []byte) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "app.zip")
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for name, mode := range entries {
			h := &zip.FileHeader{Name: name, Method: zip.Deflate}
			h.SetMode(mode)
			h.CreatorVersion = creator<<8 | 20
			w, err := zw.CreateHeader(h)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasSuffix(name, "host.json"):
				w.Write([]byte(testHostJSON))
			case strings.HasSuffix(name, "handler"):
				w.Write(handler)
			default:
				w.Write([]byte(`{}`))
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self, err := os.ReadFile("/proc/self/exe") // this test binary: a linux/amd64 ELF on the CI machine, yet not static
	if err != nil {
		t.Skip("no /proc/self/exe")
	}
	layout := map[string]fs.FileMode{"host.json": 0o644, "ProcessQueue/function.json": 0o644, "handler": 0o755}
	tests := []struct {
		name    string
		entries map[string]fs.FileMode
		creator uint16
		handler []byte
		want    string
	}{
		{"no execute bit", map[string]fs.FileMode{"host.json": 0o644, "ProcessQueue/function.json": 0o644, "handler": 0o644}, 3, self, "not executable"},
		// The platform may run the handler as another user than the files' owner (a read-only package mount).
		{"execute bit for the owner only", map[string]fs.FileMode{"host.json": 0o644, "ProcessQueue/function.json": 0o644, "handler": 0o744}, 3, self, "not executable"},
		{"made on a host without Unix modes", layout, 0, self, "no Unix permissions"},
		{"folder zipped, not its contents", map[string]fs.FileMode{"app/host.json": 0o644, "app/handler": 0o755}, 3, self, "no host.json at its root"},
		{"no function", map[string]fs.FileMode{"host.json": 0o644, "handler": 0o755}, 3, self, "no <Function>/function.json"},
		{"not an executable", layout, 3, []byte("#!/bin/sh\n"), "not an ELF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(write(t, tt.entries, tt.creator, tt.handler))
			if !errors.Is(err, ErrPackage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want ErrPackage mentioning %q", err, tt.want)
			}
		})
	}
}

// The package `make package` builds: host.json and the function folders at the root, and the handler a static
// linux/amd64 executable whose zip entry carries the execute bits.
func TestBuildPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the handler for linux/amd64")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log bytes.Buffer
	opts := &Options{Root: "../..", Stage: filepath.Join(out, "stage"), Zip: filepath.Join(out, "holdfast.zip"), Stderr: &log}
	if err := Build(ctx, opts); err != nil {
		t.Fatalf("Build: %v\n%s", err, log.String())
	}
	files := entries(t, opts.Zip)
	h, ok := files["handler"]
	if !ok {
		t.Fatalf("no handler entry: %v", files)
	}
	if h.CreatorVersion>>8 != 3 || h.Mode()&0o111 != 0o111 {
		t.Errorf("handler entry: made by %d, mode %v; want Unix and executable", h.CreatorVersion>>8, h.Mode())
	}
	for _, name := range []string{"host.json", "ProcessQueue/function.json", "DrainDeferred/function.json"} {
		if _, ok := files[name]; !ok {
			t.Errorf("no %s at the zip root", name)
		}
	}
	for name := range files {
		if strings.HasPrefix(name, "/") || strings.Contains(name, "..") || strings.Contains(name, `\`) {
			t.Errorf("entry name %q is not a relative slash path", name)
		}
	}
	if err := Check(opts.Zip); err != nil {
		t.Error(err)
	}
}
