package bpfcount

// The programs are compiled ahead and the objects committed, so that
// building the agent needs no clang. Regenerate with
// `go generate ./agent/bpfcount` (Debian: clang, llvm, libbpf-dev);
// TestGeneratedUpToDate checks that doing so gives the committed files.
// bpf/include holds the asm/ headers Debian ships only per architecture.
//go:generate go tool bpf2go -tags linux -target bpfel,bpfeb count bpf/count.c -- -I./bpf/include
