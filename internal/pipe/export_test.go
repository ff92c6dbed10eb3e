package pipe

// InlineChunks is how many chunks were written on the goroutine that
// delivered them (moveBuffered) since the process started.
func InlineChunks() uint64 { return inlineChunks.Load() }
