/* fuzz_image.c — image decoding as training reaches it: the input is the only file of a dataset folder
 * (named img.png, but the content picks the decoder: libpng, libjpeg-turbo, stb BMP/TGA, or a refusal),
 * scanned by dataset_scan (header probe, size limits, full decode, SHA-256), and when it is kept, decoded
 * again and resized to its training crop by dataset_load_item. Must never crash, leak or read
 * uninitialised memory. Size limits are lowered (2048 px a side, 4 Mpx) so that a few bytes claiming a
 * huge image cost milliseconds, not seconds: the limit checks are the same code. */
#include "dataset.h"     // defines: dataset_scan, dataset_load_item
#include "fuzz_util.h"   // defines: fuzz_dir, fuzz_write

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("image");
    free(fuzz_write(dir, "img.png", data, size));
    DatasetOptions o;
    dataset_options_default(&o);
    o.resolution = 64;
    o.bucket_step = 8;
    o.buckets = size & 1; /* square crops or aspect-ratio buckets */
    o.max_side = 2048;
    o.max_pixels = 1 << 22;
    o.quiet = 1;
    Dataset d;
    if (dataset_scan(&d, dir, &o) == 0) {
        for (int i = 0; i < d.n_items; i++) {
            const DatasetItem *it = &d.items[i];
            float *chw = malloc((size_t)3 * it->tw * it->th * sizeof *chw);
            if (!chw) abort();
            dataset_load_item(&d, i, chw, i & 1);
            free(chw);
        }
        dataset_free(&d);
    }
    return 0;
}
