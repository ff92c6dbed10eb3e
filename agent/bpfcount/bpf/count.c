// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Counts the TCP payload bytes of the agent's LAN sockets, per socket
// cookie. The agent adds a socket's cookie to `sockets` before the socket
// connects and deletes it once the tunnel has ended; packets of any other
// socket in the cgroup cost one hash lookup and are let through untouched.
// Both programs always return 1 (let the packet pass): they count, they
// never filter.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// counts is one socket's bytes: in, from the device to the agent; out,
// from the agent to the device. Each way counts the TCP sequence space
// the payload covered past the highest byte already counted (in_next,
// out_next), so that a segment seen twice (a retransmission, or a packet
// the socket dropped after this hook saw it and the peer sent again) is
// counted once, as the application sees its bytes once. The lock makes
// the read-compare-add one step: packets of one socket may pass the
// ingress hook on several CPUs at once.
struct counts {
	__u64 in;
	__u64 out;
	__u32 in_next;
	__u32 out_next;
	__u32 seen; // SEEN_IN, SEEN_OUT: *_next holds a sequence number
	struct bpf_spin_lock lock;
};

#define SEEN_IN 1
#define SEEN_OUT 2

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); // socket cookie (SO_COOKIE)
	__type(value, struct counts);
} sockets SEC(".maps");

// segment is what counting needs of a TCP packet.
struct segment {
	__u32 seq; // sequence number of its first payload byte (or of the SYN)
	__u32 len; // payload bytes
	__u32 syn;
};

// parse reads skb's TCP segment; skb's data starts at its IP header in
// both cgroup_skb hooks. A GSO or GRO packet carries one header for all
// its segments, so len is the payload of all of them. IPv6 extension
// headers are not walked: a TCP socket's packets carry none in practice,
// and any other next header is not counted. It returns 0 for a packet
// that is not TCP.
static __always_inline int parse(struct __sk_buff *skb, struct segment *s)
{
	__u8 ip[10], tcp[14];
	__u32 l3;

	// Two loads: the IP header's first bytes, then the TCP header's.
	if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)) < 0)
		return 0;
	switch (ip[0] >> 4) {
	case 4:
		if (ip[9] != 6) // IPPROTO_TCP
			return 0;
		l3 = (__u32)(ip[0] & 0xf) * 4;
		break;
	case 6:
		if (ip[6] != 6)
			return 0;
		l3 = 40;
		break;
	default:
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l3, tcp, sizeof(tcp)) < 0)
		return 0;
	s->seq = (__u32)tcp[4] << 24 | (__u32)tcp[5] << 16 | (__u32)tcp[6] << 8 | tcp[7];
	s->syn = tcp[13] & 0x02;
	l3 += (__u32)(tcp[12] >> 4) * 4;
	s->len = skb->len > l3 ? skb->len - l3 : 0;
	return 1;
}

// add counts segment s against one direction: bytes, its total, and
// next, the sequence number after the highest byte counted.
static __always_inline void add(__u64 *bytes, __u32 *next, __u32 *seen, __u32 bit, struct segment *s)
{
	__u32 end = s->seq + s->len;

	if (s->syn) {
		// The SYN takes one sequence number; the payload starts after.
		*next = s->seq + 1;
		*seen |= bit;
		return;
	}
	if (!s->len)
		return;
	if (!(*seen & bit)) {
		// Tracked after the handshake: count from this segment on.
		*bytes += s->len;
		*next = end;
		*seen |= bit;
		return;
	}
	// Ahead of next (with wrap-around): new bytes, including a gap
	// that a lost segment leaves and its retransmission fills later.
	if ((__s32)(end - *next) > 0) {
		*bytes += end - *next;
		*next = end;
	}
}

static __always_inline int count(struct __sk_buff *skb, int ingress)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct counts *c = bpf_map_lookup_elem(&sockets, &cookie);
	struct segment s;

	if (!c)
		return 1;
	if (!parse(skb, &s))
		return 1;
	bpf_spin_lock(&c->lock);
	if (ingress)
		add(&c->in, &c->in_next, &c->seen, SEEN_IN, &s);
	else
		add(&c->out, &c->out_next, &c->seen, SEEN_OUT, &s);
	bpf_spin_unlock(&c->lock);
	return 1;
}

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	return count(skb, 1);
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	return count(skb, 0);
}

char __license[] SEC("license") = "Dual BSD/GPL";
