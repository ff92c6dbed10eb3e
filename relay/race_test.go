//go:build race

package relay_test

// raceEnabled: the race detector shadows memory, so resident-set bounds
// scale (measured at 3.0 to 3.3 times the heap growth in the flood test).
const raceEnabled = true
