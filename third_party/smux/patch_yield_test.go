package smux

import (
	"testing"
	"time"
)

// nanodems patch: a buffered write yields before its flush only when
// another writer is about: the session flushed less than yieldGap ago,
// or one of the last yieldWindow flushes found another writer's frames.
func TestPatchYieldOnlyWithCompany(t *testing.T) {
	var y yieldState
	y.last.Store(int64(time.Since(epoch) - time.Second))
	if y.before() {
		t.Fatal("a flush a second after the last one yields")
	}
	y.buffered.Add(1)
	y.after()
	if !y.before() {
		t.Fatal("a flush right after the last one does not yield")
	}
	time.Sleep(2 * yieldGap)
	if y.before() {
		t.Fatal("a lone writer's flush, well after the last one, yields")
	}
	// A flush that finds two writers' frames: the next yieldWindow
	// flushes yield however far apart they come.
	y.buffered.Add(2)
	y.after()
	for i := range yieldWindow {
		y.last.Store(int64(time.Since(epoch) - time.Second))
		if !y.before() {
			t.Fatalf("flush %d after one shared with another writer does not yield", i+1)
		}
		y.buffered.Add(1)
		y.after()
	}
	y.last.Store(int64(time.Since(epoch) - time.Second))
	if y.before() {
		t.Fatalf("still yielding %d lone flushes after the last shared one", yieldWindow)
	}
}
