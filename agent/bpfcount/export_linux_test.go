package bpfcount

// TakeInTwo makes c's Take read and delete in two calls, as on a kernel
// without lookup-and-delete for hash maps.
func TakeInTwo(c *Counter) { c.k.noTake.Store(true) }

// TookInTwo says whether c's Take has fallen back to two calls.
func TookInTwo(c *Counter) bool { return c.k.noTake.Load() }
