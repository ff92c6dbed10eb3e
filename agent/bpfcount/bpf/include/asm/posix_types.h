/* The generic definitions apply to the BPF target. */
#include <asm-generic/posix_types.h>
