/* style_eval.c — see style_eval.h. */
#include "style_eval.h"

#include <string.h>

#include "common.h"   // defines: ls_set_error, mallocCheck
#include "dataset.h"  // defines: Dataset, dataset_load_item
#include "pipeline.h" // defines: GenParams, pipeline_generate
#include "scenes.h"   // defines: Scene

int style_signature_of(const Image *imgs, int n, int size, QualityStyleSig *sig) {
    size_t per = (size_t)size * size * 3;
    uint8_t *buf = mallocCheck((size_t)n * per);
    for (int i = 0; i < n; i++) {
        if (imgs[i].w != size || imgs[i].h != size || imgs[i].c != 3) {
            free(buf);
            return ls_set_error("style distance: image %d is %dx%d, the set is %dx%d", i, imgs[i].w, imgs[i].h, size,
                                size);
        }
        memcpy(buf + i * per, imgs[i].data, per);
    }
    int rc = quality_style_signature(buf, n, size, sig);
    free(buf);
    return rc;
}

int style_curve(Model *m, Lora *lora, const GenParams *tmpl, const QualityStyleSig *ref, const char *const *prompts,
                int n, uint64_t seed, int size, const float *scales, int ns, StylePoint *out, Image *cells,
                int (*cancel)(void *)) {
    Image *imgs = callocCheck((size_t)n, sizeof *imgs);
    QualityStyleSig *sig = mallocCheck(sizeof *sig);
    int rc = LS_OK;
    if (!lora) ns = 1;
    for (int k = 0; k < ns && rc == LS_OK; k++) {
        if (lora) lora_set_strength(lora, scales[k], scales[k]);
        StylePoint *pt = &out[k];
        memset(pt, 0, sizeof *pt);
        pt->scale = scales[k], pt->n = n;
        for (int i = 0; i < n && rc == LS_OK; i++) {
            GenParams p;
            if (tmpl) p = *tmpl;
            else gen_params_init(&p);
            p.prompt = prompts[i];
            p.seed = seed + (uint64_t)i;
            p.width = p.height = size;
            p.batch = 1;
            p.cancel = cancel;
            image_free(&imgs[i]);
            rc = pipeline_generate(m, &p, &imgs[i], NULL);
            if (rc < 0) break;
            QualityResult q;
            if (quality_score_caption(imgs[i].data, size, prompts[i], 0, &q) == LS_OK) {
                pt->scored++;
                pt->colour_ok += q.colour_ok, pt->shape_ok += q.shape_ok, pt->pos_ok += q.pos_ok, pt->bg_ok += q.bg_ok;
            } else {
                ls_clear_error();
            }
            if (cells) {
                Image *c = &cells[k * n + i];
                *c = imgs[i];
                c->data = mallocCheck((size_t)size * size * 3);
                memcpy(c->data, imgs[i].data, (size_t)size * size * 3);
            }
        }
        if (rc == LS_OK && (rc = style_signature_of(imgs, n, size, sig)) == LS_OK)
            pt->dist = quality_style_distance(sig, ref).total;
    }
    for (int i = 0; i < n; i++) image_free(&imgs[i]);
    free(imgs);
    free(sig);
    return rc;
}

int style_signature_of_dataset(const Dataset *d, int max_n, QualityStyleSig *sig, int *size) {
    int n = d->n_items < max_n ? d->n_items : max_n;
    if (n < 1) return ls_set_error("style distance: the folder has no images");
    int S = d->items[0].tw;
    Image *imgs = callocCheck((size_t)n, sizeof *imgs);
    float *chw = mallocCheck((size_t)3 * S * S * sizeof(float));
    int rc = LS_OK;
    for (int i = 0; i < n && rc == LS_OK; i++) {
        if (d->items[i].tw != S || d->items[i].th != S) {
            rc = ls_set_error("style distance: %s is not trained at %dx%d (buckets are not supported here)",
                              d->items[i].path, S, S);
            break;
        }
        if ((rc = dataset_load_item(d, i, chw, 0)) < 0) break;
        image_from_chw(&imgs[i], chw, S, S);
    }
    if (rc == LS_OK) rc = style_signature_of(imgs, n, S, sig);
    for (int i = 0; i < n; i++) image_free(&imgs[i]);
    free(imgs);
    free(chw);
    *size = S;
    return rc;
}
