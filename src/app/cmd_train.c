/* cmd_train.c — `lorastyle train DIR [options]`: options from (lowest to highest priority) the defaults,
 * OUT/config.json when resuming, a `--config FILE` JSON file, and the command line; then train_run. */
#include <string.h>

#include "cli.h"    // defines: arg_fail, arg_need, arg_is_help
#include "common.h" // defines: ls_set_error, ls_path_join, ls_is_dir
#include "train.h"  // defines: TrainOptions, train_option_set, train_options_load_json, train_run

static int train_usage(void) {
    printf("usage: lorastyle train DIR [options]      (DIR: images + same-name .txt captions, N_name/ = N repeats)\n"
           "  -o OUT (output/NAME)  --name NAME (DIR's name)  --model M (models/base)  --config FILE.json\n"
           "  --resume (continue OUT's checkpoint; changed options are named)  --force (start OUT over)  --quiet\n"
           "  --method lora|locon|full|adapter (lora = locon)  --rank R (8)  --alpha A (= rank)\n"
           "  --targets LIST (all): groups attn (attn1/attn2 to_q,to_k,to_v,to_out.0), ff (ff.net.0.proj, ff.net.2),\n"
           "    proj (proj_in/proj_out), conv (resnet conv1/conv2, down/upsampler convs), all (= attn,ff,proj,conv),\n"
           "    and/or module-path suffixes such as attn2.to_k or conv_shortcut\n"
           "  --conv-rank R (= rank; 0: no convolutions)  --conv-alpha A (= conv rank)\n"
           "  --train-text-encoder [--text-encoder-lr X (= --lr)]  --save-precision fp32|fp16|bf16 (full; fp32)\n"
           "  --steps N (1000) | --epochs N  --batch B (4)  --grad-accum N (1)  --lr X (2e-3)\n"
           "  --lr-scheduler constant|cosine|linear  --warmup N  --max-grad-norm X (1.0; 0: off)\n"
           "  --min-snr-gamma G  --noise-offset X  --seed N (0)  --clip-skip N (1)\n"
           "  --resolution PX (model default)  --buckets [--bucket-step 64 --min-bucket PX --max-bucket PX\n"
           "  --bucket-no-upscale]  --caption TEXT  --trigger WORD  --shuffle-tags  --keep-tokens N  --flip\n"
           "  --caption-dropout P (0.1)  --tag-dropout P  --caption-ext EXT (.txt)\n"
           "  --checkpoint-every N (100)  --save-every N  --sample-every N (0: at the end)  --no-samples\n"
           "  --style-curve N (4 captions at resolutions <= 128, else 0: style distance at strength 0/0.5/1 in\n"
           "    the report, with a warning when the adapter has no measurable effect)\n"
           "  --validation-split F (hold out a fraction for a validation loss)  --validate-every N (= checkpoint)\n"
           "  --sample-prompts FILE (prompt --n NEG --d SEED --s STEPS --l CFG --ss SAMPLER)  --sample-steps N (20)\n"
           "  --sample-strengths LIST (0,0.5,1)  --cache-dir DIR (OUT/cache)  --no-cache\n"
           "  --model-config DIR  --tokenizer DIR (for single-file models)\n"
           "Writes OUT/NAME.safetensors (kohya LoRA; --method full: the whole model, OUT/NAME/ for a diffusers\n"
           "folder), checkpoint.safetensors, loss.csv, loss.png, validation.csv, samples/,\n"
           "config.json (the keys --config reads) and report.txt. Ctrl-C saves a checkpoint and the\n"
           "adapter so far (NAME-stepNNNNNNNN.safetensors) and stops.\n"
           "alpha defaults to the rank (scale 1, as diffusers); pass --alpha 1 for kohya's default scale 1/rank.\n");
    return 0;
}

int cmd_train(int argc, char **argv) {
    TrainOptions o;
    train_options_default(&o);
    const char *config = NULL, *dir = NULL, *out = NULL, *name = NULL;
    int resume = 0, rc = 0;
    /* pass 1: where the options come from */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is_help(a)) return train_usage();
        if (a[0] == '-' && a[1]) {
            int takes = strcmp(a, "--config") ? train_option_takes_value(a) : 1;
            if (takes < 0) {
                ls_set_error("train: unknown option '%s' (see lorastyle train --help)", a);
                return arg_fail();
            }
            if (takes && arg_need(argc, argv, i) < 0) return arg_fail();
            if (!strcmp(a, "--config")) config = argv[i + 1];
            else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = argv[i + 1];
            else if (!strcmp(a, "--name")) name = argv[i + 1];
            else if (!strcmp(a, "--resume")) resume = 1;
            i += takes;
        } else if (!dir) {
            dir = a;
        } else {
            ls_set_error("train: unexpected argument '%s' (one training folder only)", a);
            return arg_fail();
        }
    }
    if (resume) { /* the resumed run's own options first */
        char buf[1200];
        if (!out) {
            if (!name && !dir) {
                ls_set_error("train: --resume needs the training folder or -o OUT");
                return arg_fail();
            }
            out = train_default_out(dir, name, buf, sizeof buf);
        }
        char *cj = ls_path_join(out, "config.json");
        if (ls_file_exists(cj) && train_options_load_json(&o, cj) < 0) rc = -1;
        free(cj);
        if (rc < 0) goto fail;
    }
    if (config) {
        if (ls_is_dir(config)) {
            ls_set_error("--config %s: is a folder; --config takes a training JSON file (a single-file model's "
                         "config folder is --model-config)", config);
            goto fail;
        }
        if (train_options_load_json(&o, config) < 0) goto fail;
    }
    /* pass 2: the command line overrides */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            int used = 0;
            const char *v = train_option_takes_value(a) ? argv[i + 1] : NULL;
            if (train_option_set(&o, a, v, &used) < 0) goto fail;
            i += used;
        } else {
            o.data_dir = a;
        }
    }
    if (!o.data_dir) {
        ls_set_error("train: usage: lorastyle train DIR [options] (see lorastyle train --help)");
        goto fail;
    }
    rc = train_run(&o, NULL);
    train_options_free(&o);
    if (rc == TRAIN_INTERRUPTED) {
        fprintf(stderr, "lorastyle: %s\n", ls_last_error());
        return 130;
    }
    return rc < 0 ? arg_fail() : 0;
fail:
    train_options_free(&o);
    return arg_fail();
}
