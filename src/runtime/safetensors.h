/* safetensors.h — reader (mmap) and writer for the safetensors format.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data buffer. Each JSON entry
 * "name": {"dtype", "shape", "data_offsets": [begin, end)} points into the data buffer; "__metadata__" is a
 * flat string→string map. The reader validates everything against the file size before any tensor is
 * touched (offsets in range, end-begin == numel·dtype size, no overlaps, known dtype, shape dims ≥ 0), so a
 * truncated or corrupt file is a clear error naming the file and the bad key, never a crash.
 */
#ifndef LS_SAFETENSORS_H
#define LS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_U16, ST_U32, ST_U64, ST_F8_E4M3, ST_F8_E5M2,
    ST_DTYPE_COUNT
} StDtype;

const char *st_dtype_name(StDtype dt); /* "F32", "F16", ... */
size_t st_dtype_size(StDtype dt);

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* points into the mmap'd file */
    size_t nbytes;
} StTensor;

typedef struct {
    char *key, *value;
} StMeta;

typedef struct {
    char *path;
    void *map;        /* whole file, mmap'd read-only */
    size_t map_size;
    StTensor *tensors; /* in file order */
    int n_tensors;
    StMeta *meta;     /* __metadata__ entries */
    int n_meta;
    /* name lookup: open-addressing hash table over tensors[] */
    int *hash;
    int hash_cap;
} StFile;

/* Open and validate. On error returns LS_ERR with a message naming the file and problem; *f is zeroed. */
int st_open(StFile *f, const char *path);
void st_close(StFile *f);

const StTensor *st_find(const StFile *f, const char *name); /* NULL if absent */
const char *st_meta_get(const StFile *f, const char *key); /* NULL if absent */

/* Convert a floating tensor (F32/F16/BF16/F64) to float32 into dst (numel floats).
 * LS_ERR (naming file and tensor) for non-float dtypes or NaN/Inf when check_finite != 0. */
int st_to_f32(const StFile *f, const StTensor *t, float *dst, int check_finite);
/* Tell the kernel that the whole mapped pages inside [data, data + nbytes) of an open file (a tensor's
 * data) are not needed now (madvise MADV_DONTNEED): once converted or copied to float32 they would
 * otherwise stay resident until st_close. Reading them again stays valid (they come back from the file). */
void st_release_pages(const void *data, size_t nbytes);

/* Half-precision conversions (round-to-nearest-even), and a float32's bit pattern and back. */
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
uint32_t st_f32_bits(float f);
float st_bits_f32(uint32_t u);

/* ---- writer ---- */
typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *src_f32; /* source data, converted to dtype (F32/F16/BF16) on write */
} StWriteTensor;

typedef struct {
    StWriteTensor *t;
    int n, cap;
    StMeta *meta;
    int n_meta, cap_meta;
} StWriter;

void st_writer_init(StWriter *w);
/* Register a tensor (data is not copied: src must stay valid until st_writer_save). Name is copied. */
void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const float *src_f32);
void st_writer_meta(StWriter *w, const char *key, const char *value);
/* Write to path via a temporary file + rename (never a half-written file). Tensors are written sorted by
 * name (as the reference library does), the header padded with spaces to a multiple of 8 bytes. */
int st_writer_save(StWriter *w, const char *path);
void st_writer_free(StWriter *w);

#endif
