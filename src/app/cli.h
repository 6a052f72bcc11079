/* cli.h — what the command-line front ends share: parsing the generation options (src/pipeline/session.h)
 * from argv, output paths, the progress bar, and the sub-commands' entry points. */
#ifndef LS_CLI_H
#define LS_CLI_H

#include <stdio.h>

#include "args.h"    // defines: arg_int, arg_float, arg_fail (the option parsers)
#include "session.h" // defines: GenOptions, GenSession, model_default_path

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

/* Parse argv[i] (and its value). Returns how many arguments were used (1 or 2), 0 if argv[i] is not a
 * generation option, LS_ERR (message set) on a bad value. Options apply in order: --params-from IMAGE.png sets
 * the prompt, negative prompt, seed, sampler (and schedule), steps, CFG, size and clip skip of an A1111 or
 * lorastyle PNG ("PNG Info → Send to txt2img"; <lora:...> tags stay in the prompt), and options after it
 * override them. */
int genopts_parse(GenOptions *o, int argc, char **argv, int i);

/* Sub-commands implemented in cmd_generate.c */
int cmd_generate(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_merge(int argc, char **argv);

#endif
