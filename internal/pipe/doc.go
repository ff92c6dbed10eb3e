// Package pipe is the copy loop of every tunnel: it joins two connections
// both ways with half-close preserved, through pooled buffers that an idle
// tunnel does not hold. The relay, the agent, the CLI, the netstack and
// the demo all move tunnel bytes with it.
//
// It knows no wire protocol. A destination that frames its writes (the
// mux's tunnel stream) implements FrameWriter, and Copy then reads straight
// into a frame's payload; a source that can wait for data without a buffer
// implements ReadWaiter; a source that can call back when it has data
// implements Notifier, and its direction then holds a goroutine only
// while bytes move (pump.go). JoinAsync joins two Notifiers with no
// goroutine at all while the tunnel is idle.
package pipe
