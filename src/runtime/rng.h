/* rng.h — portable seeded random numbers (Philox4x32-10, counter based).
 *
 * Every value is a pure function of (seed, index), so the same seed gives the same noise on any machine,
 * thread count or backend (a CUDA kernel computes the same function). */
#ifndef LS_RNG_H
#define LS_RNG_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = N(0,1) sample number j = offset + i of stream `seed`: Box–Muller on the uniform pair
 * (u[2·(j/2)], u[2·(j/2)+1]) — words (w0,w1) or (w2,w3) of Philox block j/4 — r = sqrt(−2 ln(1−u_a)),
 * θ = 2π·u_b, cos for even j and sin for odd j, evaluated in double and rounded once (rng.c has details). */
void rng_normal(float *out, size_t n, uint64_t seed, uint64_t offset);
/* out[i] = U[0,1) sample number (offset + i) of stream `seed`. */
void rng_uniform(float *out, size_t n, uint64_t seed, uint64_t offset);
/* One 32-bit random value: word (index % 4) of Philox(seed, counter = index / 4). */
uint32_t rng_u32(uint64_t seed, uint64_t index);
/* splitmix64's finaliser: a well-mixed 64-bit value from any input (stream seeds built from a run's seed,
 * step, item and purpose). */
static inline uint64_t rng_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The raw Philox4x32-10 block function (10 rounds, 128-bit counter, 64-bit key as two words); exposed for
 * the known-answer test and for backends that must reproduce the stream. */
void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif
