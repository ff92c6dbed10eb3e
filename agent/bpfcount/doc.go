// Package bpfcount counts the bytes of the agent's LAN sockets in the
// kernel, so that counting costs the tunnel copy loop nothing.
//
// Two cgroup_skb programs, one on ingress and one on egress, add the TCP
// payload of every packet of a tracked socket to that socket's entry in a
// BPF hash map keyed by socket cookie (SO_COOKIE). The agent tracks a LAN
// socket from the dialer's Control hook, before it connects, so that not
// even a device's first bytes (a banner sent on accept) are missed; it
// reads the entry while the tunnel is open (heartbeats, the rate watch)
// and deletes it when the tunnel ends. Packets of untracked sockets cost
// one hash lookup and pass untouched: the programs never drop.
//
// # Attach point
//
// The programs are attached to the cgroup v2 the agent runs in
// (/proc/self/cgroup), not to a child cgroup the agent would create and
// move into. Under systemd that cgroup is the agent's service unit, and in
// a container the container's own: in both it holds the agent alone. A
// child cgroup would mean writing to a tree the service manager owns
// (without Delegate= systemd moves the process back) and, for a process in
// a cgroup with enabled controllers, breaking cgroup v2's rule that such a
// cgroup holds no processes. Where the agent shares its cgroup (a plain
// host where it runs in the root cgroup), the cookie map already keeps
// the count to the agent's tunnels; the other sockets pay the lookup,
// which docs/perf.md measures.
//
// # What it needs
//
// Loading and attaching needs root, or CAP_BPF with CAP_NET_ADMIN, and a
// mounted cgroup v2 hierarchy. The programs read only the UAPI
// __sk_buff context and call bpf_get_socket_cookie and
// bpf_skb_load_bytes, so they need no kernel BTF (no CO-RE relocation)
// and load on any kernel from 5.7 on (bpf_link for cgroups; older ones
// take the multi-attach fallback). When any of that is missing Open says
// why, once, and the Counter works in userspace mode: the agent then
// counts in its copy loop, and its heartbeat says "userspace".
//
// Both modes count the same quantity, TCP payload bytes, once each: the
// programs count the sequence space a segment covers past the highest
// byte already counted, so a retransmission, or a packet the socket
// dropped after the hook saw it (a full backlog) and the peer sent
// again, adds nothing.
package bpfcount
