/* cache.c — latent cache keys and files (see dataset.h).
 *
 * A cache entry is one small safetensors file per (item, flip), named by its key:
 *     <cache_dir>/<key>.safetensors   tensor "latent" F32 [C, H, W]
 *     __metadata__ {"lorastyle_cache": "latent-v1", "key": <key>, "image": <path>, "size": "WxH"}
 * The key is a SHA-256 over everything the latent depends on, so a stale entry is never found: a changed
 * image, caption, target size, flip or model gives a new key (and the old file is simply unused). The
 * image's path is deliberately not part of it — renaming or moving a dataset keeps its cache.
 */
#include "dataset.h"

#include "common.h"      /* defines: ls_set_error, ls_warn, ls_mkdir_p, mallocCheck */
#include "safetensors.h" /* defines: StFile, StWriter, st_* */
#include "sha256.h"      /* defines: Sha256, sha256_* */

#include <string.h>

#define CACHE_FORMAT "latent-v1"

/* Feed "name <len>:<bytes>\n" — length-prefixed, so no two different inputs hash the same stream. */
static void key_field(Sha256 *s, const char *name, const void *data, size_t n) {
    char head[96];
    int k = snprintf(head, sizeof head, "%s %zu:", name, n);
    sha256_update(s, head, (size_t)k);
    sha256_update(s, data, n);
    sha256_update(s, "\n", 1);
}

int dataset_cache_key(const Dataset *d, int i, int flip, const char *model_hash, char key[65]) {
    if (i < 0 || i >= d->n_items)
        return ls_set_error("%s: item %d out of range (0..%d)", d->dir, i, d->n_items - 1);
    const DatasetItem *it = &d->items[i];
    char num[64];
    Sha256 s;
    sha256_init(&s);
    key_field(&s, "format", "lorastyle " CACHE_FORMAT, strlen("lorastyle " CACHE_FORMAT));
    snprintf(num, sizeof num, "%d", DATASET_CROP_VERSION);
    key_field(&s, "crop", num, strlen(num));
    key_field(&s, "image", it->sha256, strlen(it->sha256));
    key_field(&s, "caption", it->caption, strlen(it->caption));
    snprintf(num, sizeof num, "%dx%d", it->tw, it->th);
    key_field(&s, "size", num, strlen(num));
    key_field(&s, "flip", flip ? "1" : "0", 1);
    const char *mh = model_hash ? model_hash : "";
    key_field(&s, "model", mh, strlen(mh));
    uint8_t dg[32];
    sha256_final(&s, dg);
    sha256_hex(dg, key);
    return LS_OK;
}

int dataset_text_cache_key(const char *model_hash, int clip_skip, const char *text, char key[65]) {
    char num[32];
    Sha256 s;
    sha256_init(&s);
    key_field(&s, "format", "lorastyle text-v1", strlen("lorastyle text-v1"));
    const char *mh = model_hash ? model_hash : "";
    key_field(&s, "model", mh, strlen(mh));
    snprintf(num, sizeof num, "%d", clip_skip);
    key_field(&s, "clip_skip", num, strlen(num));
    key_field(&s, "text", text, strlen(text));
    uint8_t dg[32];
    sha256_final(&s, dg);
    sha256_hex(dg, key);
    return LS_OK;
}

char *dataset_cache_path(const char *cache_dir, const char key[65]) {
    size_t n = strlen(cache_dir) + 64 + 16;
    char *p = mallocCheck(n);
    snprintf(p, n, "%s%s%.64s.safetensors", cache_dir,
             *cache_dir && cache_dir[strlen(cache_dir) - 1] != '/' ? "/" : "", key);
    return p;
}

int dataset_cache_write(const char *path, const char *key, const char *source, const float *latent, int c,
                        int h, int w) {
    if (c < 1 || h < 1 || w < 1) return ls_set_error("%s: bad latent shape %dx%dx%d", path, c, h, w);
    const char *slash = strrchr(path, '/'); /* create the cache folder on first use */
    if (slash && slash > path) {
        char *dir = mallocCheck((size_t)(slash - path) + 1);
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = 0;
        int rc = ls_mkdir_p(dir);
        free(dir);
        LS_TRY(rc);
    }
    char size[64];
    snprintf(size, sizeof size, "%dx%d", w, h);
    int64_t shape[3] = {c, h, w};
    StWriter wr;
    st_writer_init(&wr);
    st_writer_add(&wr, "latent", ST_F32, 3, shape, latent);
    st_writer_meta(&wr, "lorastyle_cache", CACHE_FORMAT);
    st_writer_meta(&wr, "key", key);
    st_writer_meta(&wr, "image", source ? source : "");
    st_writer_meta(&wr, "size", size);
    int rc = st_writer_save(&wr, path);
    st_writer_free(&wr);
    return rc;
}

int dataset_cache_read(const char *path, const char *key, float *latent, int c, int h, int w) {
    if (!ls_file_exists(path)) return 0;
    StFile f;
    if (st_open(&f, path) != LS_OK) {
        ls_warn("%s: unreadable cache file, recomputing: %s", path, ls_last_error());
        return 0;
    }
    int hit = 0;
    const char *fmt = st_meta_get(&f, "lorastyle_cache"), *k = st_meta_get(&f, "key");
    const StTensor *t = st_find(&f, "latent");
    if (fmt && strcmp(fmt, CACHE_FORMAT) == 0 && k && strcmp(k, key) == 0 && t && t->ndim == 3 &&
        t->shape[0] == c && t->shape[1] == h && t->shape[2] == w) {
        if (st_to_f32(&f, t, latent, 1) == LS_OK) hit = 1;
        else ls_warn("%s: bad cache entry, recomputing: %s", path, ls_last_error());
    }
    st_close(&f);
    return hit;
}
