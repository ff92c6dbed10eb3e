package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("ab"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab", 800) {
		t.Fatalf("%d bytes, want 1600 of \"ab\"", len(got))
	}
	if got := b.Tail(3); got != "bab" {
		t.Fatalf("Tail(3) = %q", got)
	}
	if got := b.Tail(5000); len(got) != 1600 {
		t.Fatalf("Tail(5000) has %d bytes, want all 1600", len(got))
	}
}
