/* sha256.h — SHA-256 (FIPS 180-4) for model and adapter hashes (A1111 "Model hash", kohya sshs_*). */
#ifndef LS_SHA256_H
#define LS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint8_t buf[64];
    size_t buf_len;
    uint64_t total;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t out[32]);
/* Hex digest of a whole file (64 chars + NUL). LS_ERR + error naming path on I/O failure. */
int sha256_file_hex(const char *path, char hex[65]);
void sha256_hex(const uint8_t d[32], char hex[65]);
/* kohya's two hashes of a file (sd-scripts library/train_util.py): hex = the sha256 of the whole file
 * (calculate_sha256), or with after_header of a safetensors file's data part only, from byte 8 + header
 * length on (addnet_hash_safetensors); legacy = the first 8 hex of the sha256 of the 64 KiB at offset 1 MiB
 * (model_hash, addnet_hash_legacy; of what is there in a shorter file, so "e3b0c442" under 1 MiB). */
int sha256_file_kohya(const char *path, int after_header, char hex[65], char legacy[9]);

#endif
