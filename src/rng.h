/* rng.h — portable seeded random numbers (Philox4x32-10, counter based).
 *
 * Every value is a pure function of (seed, index), so the same seed gives the same noise on any machine,
 * thread count or backend (a CUDA kernel computes the same function). */
#ifndef LS_RNG_H
#define LS_RNG_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = N(0,1) sample number (offset + i) of stream `seed` (Box–Muller on Philox output). */
void rng_normal(float *out, size_t n, uint64_t seed, uint64_t offset);
/* out[i] = U[0,1) sample number (offset + i) of stream `seed`. */
void rng_uniform(float *out, size_t n, uint64_t seed, uint64_t offset);
/* One 32-bit random value: word (index % 4) of Philox(seed, counter = index / 4). */
uint32_t rng_u32(uint64_t seed, uint64_t index);

#endif
