/* rng.c — portable counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11, "Parallel random
 * numbers: as easy as 1, 2, 3"), written from the published algorithm and checked against Random123's
 * known-answer vectors in tests/test_scheduler.c.
 *
 * Stream definition (what a CUDA kernel must reproduce bit for bit):
 *
 *   key     = (k0, k1) = (seed & 0xffffffff, seed >> 32)
 *   block b = Philox4x32-10(counter = (b & 0xffffffff, b >> 32, 0, 0), key) → words w0..w3
 *   u32 number j           = word (j % 4) of block j / 4                         (rng_u32)
 *   uniform number j       = (u32_j >> 8) · 2^-24, in [0, 1)                     (rng_uniform)
 *   normal number j        = Box–Muller on the uniform pair (p, q) = (2·(j/2), 2·(j/2) + 1), i.e. the
 *                            pair (w0, w1) or (w2, w3) of block j / 4:
 *                              r = sqrt(-2 ln(1 − u_p)),  θ = 2π · u_q
 *                              j even → r·cos θ,  j odd → r·sin θ                (rng_normal)
 *                            1 − u_p lies in (0, 1], so the log never sees 0. r, θ, cos and sin are
 *                            evaluated in double and the result rounded once to float; libm differences
 *                            (glibc vs CUDA) then almost never change the float.
 *
 * Every value depends only on (seed, index), so filling a tensor in one call or in chunks with offsets
 * gives identical numbers, independent of thread count or backend.
 */
#include "rng.h"

#include <math.h>

/* Philox4x32 constants (Random123): round multipliers and Weyl-sequence key increments. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */
#define PHILOX_ROUNDS 10

/* One Philox round: two 32x32→64 multiplies, the high halves xored with the other words and the key,
 * then a fixed word permutation. */
static void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t out0 = hi1 ^ c[1] ^ k[0];
    uint32_t out2 = hi0 ^ c[3] ^ k[1];
    c[0] = out0;
    c[1] = lo1;
    c[2] = out2;
    c[3] = lo0;
}

/* Philox4x32-10 of a 128-bit counter under a 64-bit key; the key is bumped between rounds. */
static void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        if (r > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

/* Block b of stream `seed` (4 words): counter = (b lo, b hi, 0, 0), key = (seed lo, seed hi). */
static void philox_block(uint64_t seed, uint64_t b, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    philox4x32_10(ctr, key, out);
}

/* Raw block function (rng.h): used by the known-answer test. */
void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    philox4x32_10(ctr, key, out);
}

uint32_t rng_u32(uint64_t seed, uint64_t index) {
    uint32_t w[4];
    philox_block(seed, index / 4, w);
    return w[index % 4];
}

/* 24 high bits → [0, 1) with spacing 2^-24; exact in float. */
static inline float u32_to_uniform(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

void rng_uniform(float *out, size_t n, uint64_t seed, uint64_t offset) {
    uint32_t w[4];
    uint64_t cached = UINT64_MAX; /* block currently in w[] */
    for (size_t i = 0; i < n; i++) {
        uint64_t j = offset + i;
        if (j / 4 != cached) {
            cached = j / 4;
            philox_block(seed, cached, w);
        }
        out[i] = u32_to_uniform(w[j % 4]);
    }
}

void rng_normal(float *out, size_t n, uint64_t seed, uint64_t offset) {
    const double two_pi = 6.283185307179586476925286766559;
    uint32_t w[4];
    uint64_t cached = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t j = offset + i;
        if (j / 4 != cached) {
            cached = j / 4;
            philox_block(seed, cached, w);
        }
        unsigned pair = (unsigned)(j % 4) & ~1u; /* 0 → (w0, w1), 2 → (w2, w3) */
        double up = (double)u32_to_uniform(w[pair]);
        double uq = (double)u32_to_uniform(w[pair + 1]);
        double r = sqrt(-2.0 * log(1.0 - up)); /* 1 - up in (0, 1]: log(0) cannot happen */
        double theta = two_pi * uq;
        out[i] = (float)((j & 1) ? r * sin(theta) : r * cos(theta));
    }
}
