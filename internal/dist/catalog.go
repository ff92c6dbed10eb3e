package dist

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"
)

// SumsName is the checksum file a downloads directory offers beside its
// binaries, in the format `sha256sum --check` reads.
const SumsName = "SHA256SUMS"

// File is one binary of a downloads directory.
type File struct {
	Target
	Name    string
	Size    int64
	SHA256  string // hex
	ModTime time.Time
}

// ErrNotOffered is the answer for a name that is not a binary of the
// directory: unknown, not a regular file, or not named as FileName names.
var ErrNotOffered = errors.New("no such download")

// Catalog is a downloads directory: the files named as FileName names,
// with their sums. It hashes a file when it first sees it and again only
// when its size or modification time changes, so a request costs one
// directory read, not a hash, and a binary replaced in place (a rebuild,
// a deploy's rsync) is offered with its new sum without a restart. Files
// are opened through an os.Root: no name, symbolic link or ".." reaches
// outside the directory.
type Catalog struct {
	root *os.Root
	mu   sync.Mutex
	seen map[string]File // by name, as of the last scan
}

// OpenCatalog opens dir and hashes what it holds, so that a directory
// that cannot be read fails at start and the first request is not the
// one that pays for hashing.
func OpenCatalog(dir string) (*Catalog, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("downloads directory: %w", err)
	}
	c := &Catalog{root: root, seen: map[string]File{}}
	if _, err := c.Files(); err != nil {
		root.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the directory.
func (c *Catalog) Close() error { return c.root.Close() }

// Files is the directory's binaries, sorted by program, OS and
// architecture.
func (c *Catalog) Files() ([]File, error) {
	ents, err := fs.ReadDir(c.root.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("downloads directory: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := make(map[string]File, len(ents))
	for _, e := range ents {
		t, ok := ParseFileName(e.Name())
		if !ok {
			continue
		}
		f, err := c.current(t, e.Name())
		if errors.Is(err, ErrNotOffered) || errors.Is(err, fs.ErrNotExist) || (err != nil && e.Type()&fs.ModeSymlink != 0) {
			continue // a directory of that name, removed meanwhile, or a link out of the directory
		}
		if err != nil {
			return nil, err
		}
		now[f.Name] = f
	}
	c.seen = now
	out := make([]File, 0, len(now))
	for _, f := range now {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b File) int {
		return cmp.Or(cmp.Compare(a.Program, b.Program), cmp.Compare(a.OS, b.OS), cmp.Compare(a.Arch, b.Arch))
	})
	return out, nil
}

// current is name's entry, hashed again if it changed since it was last
// seen. c.mu is held.
func (c *Catalog) current(t Target, name string) (File, error) {
	fi, err := c.root.Stat(name)
	if err != nil {
		return File{}, fmt.Errorf("downloads directory: %w", err)
	}
	if old, ok := c.seen[name]; ok && old.Size == fi.Size() && old.ModTime.Equal(fi.ModTime()) {
		return old, nil
	}
	f, err := c.root.Open(name)
	if err != nil {
		return File{}, fmt.Errorf("downloads directory: %w", err)
	}
	defer f.Close()
	return hashFile(t, name, f)
}

// hashFile reads an open file whole. Size and time are the opened file's,
// taken before reading, so that a file being rewritten meanwhile is seen
// as changed at the next scan.
func hashFile(t Target, name string, f *os.File) (File, error) {
	fi, err := f.Stat()
	if err != nil {
		return File{}, fmt.Errorf("downloads directory: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return File{}, fmt.Errorf("%w: %s is not a regular file", ErrNotOffered, name)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return File{}, fmt.Errorf("downloads directory: hash %s: %w", name, err)
	}
	return File{Target: t, Name: name, Size: fi.Size(), ModTime: fi.ModTime(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Open opens one binary for reading and returns its entry, whose sum is
// that of the file as opened (hashed again if it changed since the last
// scan). The caller closes the file.
func (c *Catalog) Open(name string) (*os.File, File, error) {
	t, ok := ParseFileName(name)
	if !ok {
		return nil, File{}, fmt.Errorf("%w: %q", ErrNotOffered, name)
	}
	f, err := c.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, File{}, fmt.Errorf("%w: %q", ErrNotOffered, name)
	}
	if err != nil {
		return nil, File{}, fmt.Errorf("downloads directory: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, File{}, fmt.Errorf("downloads directory: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.seen[name]
	if !ok || e.Size != fi.Size() || !e.ModTime.Equal(fi.ModTime()) {
		if e, err = hashFile(t, name, f); err != nil {
			f.Close()
			return nil, File{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, File{}, fmt.Errorf("downloads directory: %w", err)
		}
		c.seen[name] = e
	}
	return f, e, nil
}

// Sums is the SHA256SUMS text of files: one "<hex>  <name>" line each, as
// sha256sum prints them.
func Sums(files []File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	return b.Bytes()
}
