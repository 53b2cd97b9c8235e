// Package funcpkg builds and checks the deployment package of the function app: a zip with host.json, one
// folder per function holding its function.json, and the linux/amd64 custom handler binary at the root.
//
// The zip is written here rather than by a zip tool so that it is the same on every machine: entries are
// sorted, timestamps fixed, and each entry carries Unix permissions, the handler's with the execute bits. A
// zip made on Windows, or by a tool that stores no Unix modes, extracts the handler without +x on Linux and the
// Functions host cannot start it ("permission denied"); Check refuses such a zip before it is uploaded.
package funcpkg

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrPackage is wrapped by every error about the package's content or layout.
var ErrPackage = errors.New("funcpkg: invalid package")

// modTime is the timestamp of every entry, so that the same input gives the same zip (zip cannot store dates
// before 1980).
var modTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure Build. Zero fields mean the defaults.
type Options struct {
	// Root is the repository root holding host.json, functions/ and the handler's main package. Default ".".
	Root string
	// Stage is the folder the package is staged in (emptied first). Default "bin/package".
	Stage string
	// Zip is the zip written from Stage. Default "bin/holdfast.zip".
	Zip string
	// MainPackage is the handler's main package, relative to Root. Default "./handler".
	MainPackage string
	// Go is the go command. Default "go".
	Go string
	// Stderr receives the compiler's output. Default os.Stderr.
	Stderr io.Writer
}

func (o *Options) withDefaults() Options {
	v := Options{}
	if o != nil {
		v = *o
	}
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&v.Root, ".")
	def(&v.Stage, filepath.Join("bin", "package"))
	def(&v.Zip, filepath.Join("bin", "holdfast.zip"))
	def(&v.MainPackage, "./handler")
	def(&v.Go, "go")
	if v.Stderr == nil {
		v.Stderr = os.Stderr
	}
	return v
}

// Build stages host.json, functions/*/function.json and the handler (built for linux/amd64 with CGO disabled,
// static), writes the zip and checks it.
func Build(ctx context.Context, opts *Options) error {
	o := opts.withDefaults()
	if err := os.RemoveAll(o.Stage); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Stage, 0o755); err != nil {
		return err
	}
	hostJSON, err := os.ReadFile(filepath.Join(o.Root, "host.json"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPackage, err)
	}
	exe, err := executablePath(hostJSON)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Stage, "host.json"), hostJSON, 0o644); err != nil {
		return err
	}
	fns, err := filepath.Glob(filepath.Join(o.Root, "functions", "*", "function.json"))
	if err != nil {
		return err
	}
	if len(fns) == 0 {
		return fmt.Errorf("%w: no functions/*/function.json under %s", ErrPackage, o.Root)
	}
	for _, fn := range fns {
		b, err := os.ReadFile(fn)
		if err != nil {
			return err
		}
		dir := filepath.Join(o.Stage, filepath.Base(filepath.Dir(fn)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "function.json"), b, 0o644); err != nil {
			return err
		}
	}
	out, err := filepath.Abs(filepath.Join(o.Stage, filepath.FromSlash(exe)))
	if err != nil {
		return err
	}
	// The host runs the Linux x64 binary; CGO disabled makes it static, so it needs no libc on the worker.
	cmd := exec.CommandContext(ctx, o.Go, "build", "-trimpath", "-ldflags=-s -w", "-o", out, o.MainPackage)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdout, cmd.Stderr = o.Stderr, o.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("funcpkg: building %s for linux/amd64: %w", o.MainPackage, err)
	}
	if err := WriteZip(o.Stage, o.Zip); err != nil {
		return err
	}
	return Check(o.Zip)
}

// executablePath returns customHandler.description.defaultExecutablePath from host.json, slash-separated and
// relative to the app root.
func executablePath(hostJSON []byte) (string, error) {
	var h struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
				WorkingDirectory      string `json:"workingDirectory"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(hostJSON, &h); err != nil {
		return "", fmt.Errorf("%w: host.json: %w", ErrPackage, err)
	}
	d := h.CustomHandler.Description
	if d.DefaultExecutablePath == "" {
		return "", fmt.Errorf("%w: host.json has no customHandler.description.defaultExecutablePath", ErrPackage)
	}
	p := path.Clean(path.Join(strings.ReplaceAll(d.WorkingDirectory, `\`, "/"), strings.ReplaceAll(d.DefaultExecutablePath, `\`, "/")))
	if path.IsAbs(p) || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%w: defaultExecutablePath %q is outside the app root", ErrPackage, p)
	}
	return p, nil
}

// WriteZip writes the files under dir to zipPath with paths relative to dir (no top-level folder), in sorted
// order, with fixed timestamps and Unix permissions: 0755 for folders and for the handler named by dir/host.json,
// 0644 for everything else, whatever the modes on disk.
func WriteZip(dir, zipPath string) error {
	hostJSON, err := os.ReadFile(filepath.Join(dir, "host.json"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPackage, err)
	}
	exe, err := executablePath(hostJSON)
	if err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s is a symbolic link", ErrPackage, p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range names {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modTime}
		switch {
		case strings.HasSuffix(name, "/"):
			h.Method = zip.Store
			h.SetMode(fs.ModeDir | 0o755)
		case name == exe:
			h.SetMode(0o755)
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if strings.HasSuffix(name, "/") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(zipPath), 0o755); err != nil {
		return err
	}
	return os.WriteFile(zipPath, buf.Bytes(), 0o644)
}

// Check verifies a package zip: host.json at the root (no top-level folder), at least one <Function>/function.json,
// and the handler named by host.json present, stored with Unix execute permission, and a static linux/amd64 ELF
// executable. Each problem is reported, wrapping ErrPackage.
func Check(zipPath string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPackage, err)
	}
	defer zr.Close()
	files := map[string]*zip.File{}
	functions := 0
	for _, f := range zr.File {
		files[f.Name] = f
		if parts := strings.Split(f.Name, "/"); len(parts) == 2 && parts[1] == "function.json" {
			functions++
		}
	}
	hj, ok := files["host.json"]
	if !ok {
		return fmt.Errorf("%w: %s has no host.json at its root (a zip of the folder instead of its contents?)", ErrPackage, zipPath)
	}
	hostJSON, err := readAll(hj)
	if err != nil {
		return err
	}
	exe, err := executablePath(hostJSON)
	if err != nil {
		return err
	}
	var errs []error
	if functions == 0 {
		errs = append(errs, fmt.Errorf("%w: %s has no <Function>/function.json", ErrPackage, zipPath))
	}
	h, ok := files[exe]
	if !ok {
		return errors.Join(append(errs, fmt.Errorf("%w: %s has no %s (host.json's defaultExecutablePath)", ErrPackage, zipPath, exe))...)
	}
	if h.CreatorVersion>>8 != 3 { // 3 = Unix: only then are the high 16 bits of ExternalAttrs a Unix mode
		errs = append(errs, fmt.Errorf("%w: %s: %s stores no Unix permissions (made by host %d); it would extract without +x", ErrPackage, zipPath, exe, h.CreatorVersion>>8))
	} else if h.Mode()&0o111 != 0o111 {
		errs = append(errs, fmt.Errorf("%w: %s: %s has mode %v, not executable", ErrPackage, zipPath, exe, h.Mode()))
	}
	bin, err := readAll(h)
	if err != nil {
		return err
	}
	if err := checkELF(bin); err != nil {
		errs = append(errs, fmt.Errorf("%w: %s: %s: %w", ErrPackage, zipPath, exe, err))
	}
	return errors.Join(errs...)
}

// checkELF verifies a Linux x86-64 executable without a dynamic loader (static, as CGO_ENABLED=0 gives).
func checkELF(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	switch {
	case f.Machine != elf.EM_X86_64:
		return fmt.Errorf("built for %v, want EM_X86_64 (GOARCH=amd64)", f.Machine)
	case f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX:
		return fmt.Errorf("OS ABI %v, want Linux (GOOS=linux)", f.OSABI)
	case f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN:
		return fmt.Errorf("ELF type %v is not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (has an ELF interpreter); build with CGO_ENABLED=0")
		}
	}
	return nil
}

func readAll(f *zip.File) ([]byte, error) {
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPackage, f.Name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPackage, f.Name, err)
	}
	return b, nil
}
