/* style_eval.h — what an adapter does to a model, measured with datasets/quality.h (no pretrained network):
 * the style curve (style distance of generated images to a reference set, per adapter strength) and the
 * content adherence of the same images (colour, shape, position named in single-object prompts of the
 * scene grammar). Used by `lorastyle eval` and by `lorastyle train`'s report. */
#ifndef LS_STYLE_EVAL_H
#define LS_STYLE_EVAL_H

#include <stdint.h>

#include "dataset.h" // defines: Dataset
#include "image.h"   // defines: Image
#include "lora.h"    // defines: Lora
#include "model.h"   // defines: Model
#include "pipeline.h" // defines: GenParams
#include "quality.h" // defines: QualityStyleSig

typedef struct {
    float scale;                        /* adapter strength (U-Net and text encoder) */
    float dist;                         /* style distance (quality_style_distance total) to the reference */
    int n, scored, colour_ok, shape_ok, pos_ok, bg_ok; /* images; those whose prompt parses; adherence counts */
} StylePoint;

/* For each strength scales[k] (lora NULL: the model alone, one point with scales[0] only as a label):
 * generate one size×size image per prompt (seed + i; sampler, steps, CFG and negative prompt from tmpl, NULL:
 * gen_params_init's 20 steps Euler a, CFG 7.5), measure the style distance
 * of the set to ref and score every image whose prompt is a caption of the grammar. The adapter must be
 * attached unmerged; its strength is left at the last scale. cells (ns·n images, row k = scale k; NULL: not
 * kept) receive the images. LS_ERR on a generation error; LS_CANCELLED when cancel (may be NULL; polled
 * before every sampling step, as GenParams.cancel) returns nonzero. */
int style_curve(Model *m, Lora *lora, const GenParams *tmpl, const QualityStyleSig *ref, const char *const *prompts,
                int n, uint64_t seed, int size, const float *scales, int ns, StylePoint *out, Image *cells,
                int (*cancel)(void *));

/* Signature of n images (Image array, all size×size RGB): LS_ERR naming the first of another size. */
int style_signature_of(const Image *imgs, int n, int size, QualityStyleSig *sig);

/* Signature of a training folder's images (at most max_n, in order; loaded as training sees them, at the
 * dataset's resolution); *size gets the side. LS_ERR on a read error or bucketed (non-square) items. */
int style_signature_of_dataset(const Dataset *d, int max_n, QualityStyleSig *sig, int *size);

#endif
