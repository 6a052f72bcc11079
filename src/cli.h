/* cli.h — what the command-line front ends share: option parsing helpers, the generation options that
 * generate, sweep, merge (and later view) take, and a "session" = a loaded model with its adapters. */
#ifndef LS_CLI_H
#define LS_CLI_H

#include <stdio.h>

#include "infotext.h" // defines: InfoText
#include "lora.h"     // defines: Lora
#include "model.h"    // defines: Model, ModelOpts
#include "pipeline.h" // defines: GenParams

#define DEFAULT_MODEL "models/base"
/* The built-in model used when --model is not given: $LORASTYLE_MODEL, else models/base under the current
 * folder, else models/base beside the build folder of this executable (<exe>/../models/base), else
 * DEFAULT_MODEL (whose load then fails with cli_missing_model's message). */
const char *cli_default_model(void);
/* The error for a default model that is not there (names where it was looked for). LS_ERR. */
int cli_missing_model(const char *path);
#define LS_MAX_LORAS 16

/* Print "lorastyle: error: <last error>" to stderr; returns the exit code 1. */
int cli_fail(void);
int cli_is_help(const char *a);
int cli_need_arg(int argc, char **argv, int i);
int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *opt, const char *s, float *out);
int cli_parse_dtype(const char *s, StDtype *dt);
/* Comma-separated numbers ("0,0.25,0.5"): count or LS_ERR naming the option and the bad field. */
int cli_parse_list(const char *opt, const char *s, float *out, int cap);
/* "out.png" → "out-1.png" for b > 0 (malloc'd). */
char *cli_batch_path(const char *out, int b);
/* Check an output image path (and its batch siblings) before any work: folder exists and is writable. */
int cli_check_output(const char *out, int batch);
/* stderr progress bar callback for GenParams.on_step; user = CliProgress*. */
typedef struct {
    double t0;
    int tty;
    const char *label; /* e.g. "cell 3/12" or NULL */
} CliProgress;
void cli_on_step(int step, int total, void *user);

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
/* Parse argv[i] (and its value). Returns how many arguments were used (1 or 2), 0 if argv[i] is not a
 * generation option, LS_ERR (message set) on a bad value. Options apply in order: --params-from IMAGE.png sets
 * the prompt, negative prompt, seed, sampler (and schedule), steps, CFG, size and clip skip of an A1111 or
 * lorastyle PNG ("PNG Info → Send to txt2img"; <lora:...> tags stay in the prompt), and options after it
 * override them. */
int genopts_parse(GenOptions *o, int argc, char **argv, int i);

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

/* Sub-commands implemented in cmd_generate.c */
int cmd_generate(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_merge(int argc, char **argv);

#endif
