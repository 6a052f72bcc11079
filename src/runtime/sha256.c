/* sha256.c — SHA-256 per FIPS 180-4. The round constants are defined by the standard as the first 32
 * bits of the fractional parts of the cube roots (K) and square roots (H0) of the first primes; they are
 * derived here from that definition with exact integer arithmetic rather than typed in. */
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common.h" // defines: ls_set_error

static uint32_t K[64], H0[8];

/* floor(frac(p^(1/r)) · 2^32) exactly: the largest x with (int(p^(1/r))·2^32 + x)^r ≤ p·2^(32r),
 * found by binary search on 128-bit integers (r = 2 or 3, p < 312 keeps every product in range). */
static uint32_t frac_root_bits(uint32_t p, int r) {
    unsigned __int128 target = (unsigned __int128)p << (32 * r);
    uint64_t lo = 0, hi = (uint64_t)1 << 42; /* root·2^32 < 2^42 for p < 312 */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        unsigned __int128 v = (unsigned __int128)mid * mid;
        if (r == 3) v *= mid;
        if (v <= target) lo = mid;
        else hi = mid - 1;
    }
    return (uint32_t)lo; /* low 32 bits = fractional part */
}

static void init_constants(void) {
    if (K[0]) return;
    uint32_t primes[64];
    int n = 0;
    for (uint32_t c = 2; n < 64; c++) {
        int prime = 1;
        for (uint32_t d = 2; d * d <= c; d++)
            if (c % d == 0) prime = 0;
        if (prime) primes[n++] = c;
    }
    for (int i = 0; i < 8; i++) H0[i] = frac_root_bits(primes[i], 2);
    for (int i = 0; i < 64; i++) K[i] = frac_root_bits(primes[i], 3);
}

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const uint8_t blk[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 | (uint32_t)blk[4 * i + 2] << 8 |
               blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = k + S1 + ch + K[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

void sha256_init(Sha256 *s) {
    init_constants();
    memcpy(s->h, H0, sizeof H0);
    s->buf_len = 0;
    s->total = 0;
}

void sha256_update(Sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->total += n;
    if (s->buf_len) {
        size_t take = LS_MIN(n, 64 - s->buf_len);
        memcpy(s->buf + s->buf_len, p, take);
        s->buf_len += take;
        p += take;
        n -= take;
        if (s->buf_len < 64) return;
        compress(s->h, s->buf);
        s->buf_len = 0;
    }
    for (; n >= 64; p += 64, n -= 64) compress(s->h, p);
    memcpy(s->buf, p, n);
    s->buf_len = n;
}

void sha256_final(Sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->total * 8;
    uint8_t pad = 0x80, zero = 0;
    sha256_update(s, &pad, 1);
    while (s->buf_len != 56) sha256_update(s, &zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void sha256_hex(const uint8_t d[32], char hex[65]) {
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

int sha256_file_hex(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return ls_set_error("%s: cannot open: %s", path, strerror(errno));
    Sha256 s;
    sha256_init(&s);
    static _Thread_local uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&s, buf, n);
    int err = ferror(f);
    fclose(f);
    if (err) return ls_set_error("%s: read error", path);
    uint8_t d[32];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    return LS_OK;
}

int sha256_file_kohya(const char *path, int after_header, char hex[65], char legacy[9]) {
    enum { LEGACY_AT = 0x100000, LEGACY_N = 0x10000 };
    FILE *f = fopen(path, "rb");
    if (!f) return ls_set_error("%s: cannot open: %s", path, strerror(errno));
    uint64_t start = 0, pos = 0; /* the whole-file hash covers [start, EOF) */
    if (after_header) {
        uint8_t b[8];
        if (fread(b, 1, 8, f) != 8) {
            fclose(f);
            return ls_set_error("%s: not a safetensors file (shorter than 8 bytes)", path);
        }
        for (int i = 0; i < 8; i++) start |= (uint64_t)b[i] << (8 * i);
        start += 8;
        pos = 8;
    }
    Sha256 s, l;
    sha256_init(&s);
    sha256_init(&l);
    static _Thread_local uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        uint64_t a = pos > start ? pos : start, la = pos > LEGACY_AT ? pos : LEGACY_AT, end = pos + n;
        if (a < end) sha256_update(&s, buf + (a - pos), (size_t)(end - a));
        uint64_t le = end < LEGACY_AT + LEGACY_N ? end : LEGACY_AT + LEGACY_N;
        if (la < le) sha256_update(&l, buf + (la - pos), (size_t)(le - la));
        pos = end;
    }
    int err = ferror(f);
    fclose(f);
    if (err) return ls_set_error("%s: read error", path);
    uint8_t d[32];
    char lh[65];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    sha256_final(&l, d);
    sha256_hex(d, lh);
    snprintf(legacy, 9, "%.8s", lh);
    return LS_OK;
}
