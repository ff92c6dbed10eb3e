// Package netstack serves the operator's plan addresses (127.0.0.X:port)
// from a gVisor TCP/IP stack inside the CLI, reached through a TUN device
// (`nanodems-tunnel exec`). A tool connects to 127.0.0.2:554 as if the camera
// were on the machine; the packets go kernel → TUN → gVisor, and each
// connection to a plan address is dialed through the CLI's tunnel
// (Dialer, i.e. cli.Tunnel.DialPlan) and piped with half-close
// (pipe.Join). Connections to anything outside the plan are answered with
// RST and logged once: "rejecting unknown loopback 127.0.0.X:Y".
//
// Two ways to put the stack in a tool's path, both Linux:
//
//   - Exec, rootless (`nanodems-tunnel exec -- TOOL ARGS`): the tool runs
//     in its own user and network namespace, as the same user, where
//     127.0.0.0/8 except 127.0.0.1 is routed into the TUN interface. No
//     admin right, no OS bind, no clash with the machine's services on the
//     same ports. Needs unprivileged user namespaces
//     (/proc/sys/user/max_user_namespaces > 0) and a world-usable
//     /dev/net/tun (crw-rw-rw-), the default of common distributions;
//     where either is missing Exec says which, in one sentence.
//   - ServeTUN, as admin (`--tun`): the TUN interface lives in the host
//     namespace with one /32 route per plan address, so every program of
//     the machine reaches the plan.
//
// Wiring in a main: call Child first (Exec re-runs the binary as its
// namespace helper), then Main(args, dial, plan) for the `exec` and `tun`
// subcommands.
//
// Figures (docs/perf-netstack.md; a shared 2-vCPU VM, so CPU per MiB is
// the steady measure): the netstack path costs about 1.3–1.5× the CPU per
// byte of a plain OS listener that pipes to the same Dialer, i.e. 65–75 %
// of its efficiency; a 64-byte round trip takes ~50 µs against ~37 µs.
// The choices that got there, each measured: MTU 65535 (at 1500 the
// stack needs 7× the CPU per byte, at 9000 2.2×), checksums left out on
// both sides through the TUN's virtio header, and delivery on the reading
// goroutine (tunLink: −35 % round-trip time against fdbased).
package netstack
