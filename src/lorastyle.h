/* lorastyle.h — the public API of liblscore, what a front end (the command line in src/app, the SDL2 viewer
 * in gui/, a program of your own) includes. It gathers the headers of the layers a front end uses; their
 * own comments document each call. The layers, from the top down (each uses only those below it):
 *
 *   src/app/       the command line: option parsing (cli.h), the sub-commands
 *   src/train/     adapter training (train.h), pre-training the built-in model, style/content evaluation
 *   src/pipeline/  models with their loaders (model.h), schedulers and samplers, text-to-image
 *                  (pipeline.h), adapters at generation time (lora.h), sessions = model + adapters (session.h)
 *   unet/ textenc/ the networks: U-Net and VAE, tokenizer and CLIP text model
 *   src/runtime/   files (safetensors, images), weights, RNG, layers shared by the networks, errors
 *   kernels/       the compute ops behind one table (ops.h)
 *
 * Typical use (what `lorastyle generate` does):
 *     GenOptions o; genopts_init(&o, "out.png");          // o.model = the built-in model
 *     o.p.prompt = "a red circle on a white background";
 *     GenSession s; if (gensession_open(&s, &o, o.p.prompt) < 0) -> ls_last_error()
 *     pipeline_generate(&s.m, &p, ...);                   // see pipeline.h
 *     gensession_close(&s);
 * Every call that can fail returns LS_ERR (< 0) and leaves one line in ls_last_error(). */
#ifndef LORASTYLE_H
#define LORASTYLE_H

#include "common.h"   // defines: LS_OK, LS_ERR, ls_last_error
#include "cli.h"      // defines: genopts_parse (the options every front end takes)
#include "lora.h"     // defines: Lora, lora_load, lora_attach, lora_set_strength
#include "model.h"    // defines: Model, model_load
#include "pipeline.h" // defines: GenParams, pipeline_generate
#include "session.h"  // defines: GenOptions, GenSession, gensession_open
#include "train.h"    // defines: TrainOptions, train_run

#endif
