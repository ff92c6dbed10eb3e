package bpfcount

// The programs are compiled ahead and committed, so that building the
// agent needs no clang; scripts/bpfgen.sh (run by .ci/run) checks that
// regenerating gives the committed objects. Regenerate with
// `go generate ./agent/bpfcount` (Debian: clang, llvm, libbpf-dev).
//go:generate go tool bpf2go -tags linux -target bpfel,bpfeb count bpf/count.c -- -I./bpf/include
