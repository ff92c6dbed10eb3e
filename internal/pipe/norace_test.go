//go:build !race

package pipe_test

const raceEnabled = false
