/* session.h — a generation session: the options that generate, sweep, merge and the viewer share (model,
 * sampling parameters, adapters and their strengths), the built-in model's whereabouts, and a loaded model
 * with its adapters attached. The library API of the front ends (app/cli.c parses the options; gui/ and
 * the app's commands open sessions). */
#ifndef LS_SESSION_H
#define LS_SESSION_H

#include "infotext.h" // defines: InfoText
#include "lora.h"     // defines: Lora
#include "model.h"    // defines: Model, ModelOpts
#include "pipeline.h" // defines: GenParams

#define DEFAULT_MODEL "models/base"
/* The built-in model used when --model is not given: $LORASTYLE_MODEL, else models/base under the current
 * folder, else models/base beside the build folder of this executable (<exe>/../models/base), else
 * DEFAULT_MODEL (whose load then fails with model_missing_default's message). */
const char *model_default_path(void);
/* The error for a default model that is not there (names where it was looked for). LS_ERR. */
int model_missing_default(const char *path);
#define LS_MAX_LORAS 16

/* Options shared by generate / sweep / merge (/ view). */
typedef struct {
    const char *model;
    ModelOpts mo;
    GenParams p;
    long seed;                     /* -1: random */
    const char *out;
    const char *lora[LS_MAX_LORAS]; /* --lora FILE[:SCALE[:TE_SCALE]] */
    int n_lora;
    const char *lora_dir;          /* where <lora:NAME:...> prompt tags are looked up */
    int lenient;                   /* skip adapter modules that match nothing (with a warning) */
    int merge;                     /* 1: merge adapters into the weights (zero per-step cost), 0: run time;
                                    * -1 (the default): merge where possible — bottleneck adapters, which
                                    * cannot be merged, then run live instead of being refused */
    StDtype dtype;                 /* merge/convert output dtype; ST_DTYPE_COUNT = like the input */
    /* sweep */
    const char *scales, *scales_b, *seeds, *prompts_file;
    int compare;                   /* sweep --compare: each --lora alone (rows), the others at 0 */
    /* generate --params-from IMAGE.png (only where params_from_ok: the caller frees with genopts_free) */
    int params_from_ok;
    InfoText png;                  /* the PNG's parameters text (owns p.prompt / p.negative when they came from it) */
    int png_karras;                /* karras was set by the PNG: a later --sampler replaces it */
    char png_sampler_error[512];   /* the PNG names a sampler lorastyle lacks: the error, unless a later --sampler */
} GenOptions;

void genopts_init(GenOptions *o, const char *default_out);
void genopts_free(GenOptions *o);

/* A loaded model with its adapters attached (and merged when o->merge). */
typedef struct {
    Model m;
    Lora lora[LS_MAX_LORAS];
    int n_lora;
    char *prompt;          /* prompt text with <lora:...> tags removed (what the text encoder sees) */
    char *display_prompt;  /* prompt for metadata: the original text plus a tag for every --lora */
    char *extra;           /* ", Lora hashes: \"name: hash, ...\"" or "" */
    double t_load;
} GenSession;

/* Load the model, resolve prompt tags (in o->lora_dir, else the folder of the first --lora, else "."),
 * load and attach every adapter at its strength, merge when asked. prompt may be NULL (merge). */
int gensession_open(GenSession *s, const GenOptions *o, const char *prompt);
void gensession_close(GenSession *s);

#endif
