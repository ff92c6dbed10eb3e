/* BPF is a 64-bit target: the generic definition applies. */
#include <asm-generic/bitsperlong.h>
