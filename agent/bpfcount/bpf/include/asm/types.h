/* The BPF target has no asm/ directory of its own in Debian's headers:
 * this one and its siblings point at the generic definitions, which are
 * what every 64-bit Linux architecture resolves to. */
#include <asm-generic/types.h>
