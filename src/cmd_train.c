/* cmd_train.c — `lorastyle train DIR [options]`: parse the options into TrainOptions and run train_run. */
#include <string.h>

#include "cli.h"    // defines: cli_fail, cli_parse_int, cli_parse_float, cli_need_arg
#include "common.h" // defines: ls_set_error
#include "train.h"  // defines: TrainOptions, train_run

static int train_usage(void) {
    printf("usage: lorastyle train DIR [--model M (models/tiny)] [-o OUT (output/NAME)] [--name NAME]\n"
           "         [--steps N (500)] [--batch B (1)] [--lr X (1e-4)] [--rank R (4)] [--alpha A (= rank)]\n"
           "         [--conv-rank R (0: off)] [--conv-alpha A (= conv rank)] [--resolution PX (model default)]\n"
           "         [--seed N (0)] [--clip-skip N (1)] [--caption TEXT] [--trigger WORD] [--shuffle-tags]\n"
           "         [--keep-tokens N] [--flip] [--lr-scheduler constant|cosine|linear] [--warmup N]\n"
           "         [--min-snr-gamma G] [--noise-offset X] [--max-grad-norm X (1.0; 0: off)]\n"
           "         [--save-every N] [--config DIR] [--tokenizer DIR] [--force] [--quiet]\n"
           "Writes OUT/NAME.safetensors (kohya LoRA), OUT/loss.csv, OUT/config.json, OUT/report.txt.\n"
           "alpha defaults to the rank (scale 1, as diffusers); pass --alpha 1 for kohya's default scale 1/rank.\n");
    return 0;
}

int cmd_train(int argc, char **argv) {
    TrainOptions o;
    train_options_default(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return train_usage();
        if (!strcmp(a, "--shuffle-tags")) o.shuffle_tags = 1;
        else if (!strcmp(a, "--flip")) o.flip = 1;
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (a[0] == '-' && a[1]) {
            static const char *const with_value[] = {
                "--model", "-o", "--name", "--steps", "--batch", "--lr", "--rank", "--alpha", "--conv-rank",
                "--conv-alpha", "--resolution", "--seed", "--clip-skip", "--caption", "--trigger",
                "--keep-tokens", "--lr-scheduler", "--warmup", "--min-snr-gamma", "--noise-offset",
                "--max-grad-norm", "--save-every", "--config", "--tokenizer", NULL};
            int known = 0;
            for (int k = 0; with_value[k]; k++) known |= !strcmp(a, with_value[k]);
            if (!known) {
                ls_set_error("train: unknown option '%s' (see lorastyle train --help)", a);
                return cli_fail();
            }
            if (cli_need_arg(argc, argv, i) < 0) return cli_fail();
            const char *v = argv[++i];
            long n = 0;
            int rc = 0;
            if (!strcmp(a, "--model")) o.model = v;
            else if (!strcmp(a, "-o")) o.out = v;
            else if (!strcmp(a, "--name")) o.name = v;
            else if (!strcmp(a, "--caption")) o.caption = v;
            else if (!strcmp(a, "--trigger")) o.trigger = v;
            else if (!strcmp(a, "--config")) o.config_dir = v;
            else if (!strcmp(a, "--tokenizer")) o.tokenizer_dir = v;
            else if (!strcmp(a, "--lr-scheduler")) rc = train_lr_schedule_from_name(v, &o.lr_schedule);
            else if (!strcmp(a, "--lr")) rc = cli_parse_float(a, v, &o.lr);
            else if (!strcmp(a, "--alpha")) rc = cli_parse_float(a, v, &o.alpha);
            else if (!strcmp(a, "--conv-alpha")) rc = cli_parse_float(a, v, &o.conv_alpha);
            else if (!strcmp(a, "--min-snr-gamma")) rc = cli_parse_float(a, v, &o.min_snr_gamma);
            else if (!strcmp(a, "--noise-offset")) rc = cli_parse_float(a, v, &o.noise_offset);
            else if (!strcmp(a, "--max-grad-norm")) rc = cli_parse_float(a, v, &o.max_grad_norm);
            else if (!strcmp(a, "--seed")) {
                rc = cli_parse_int(a, v, 0, 2147483647L, &n);
                o.seed = (uint64_t)n;
            } else {
                long lo = 0, hi = 1000000000L;
                if (!strcmp(a, "--steps") || !strcmp(a, "--batch") || !strcmp(a, "--rank") || !strcmp(a, "--clip-skip"))
                    lo = 1;
                if (!strcmp(a, "--batch")) hi = 1024;
                if (!strcmp(a, "--rank") || !strcmp(a, "--conv-rank")) hi = 4096;
                if (!strcmp(a, "--clip-skip")) hi = 12;
                rc = cli_parse_int(a, v, lo, hi, &n);
                int iv = (int)n;
                if (!strcmp(a, "--steps")) o.steps = iv;
                else if (!strcmp(a, "--batch")) o.batch = iv;
                else if (!strcmp(a, "--rank")) o.rank = iv;
                else if (!strcmp(a, "--conv-rank")) o.conv_rank = iv;
                else if (!strcmp(a, "--resolution")) o.resolution = iv;
                else if (!strcmp(a, "--clip-skip")) o.clip_skip = iv;
                else if (!strcmp(a, "--keep-tokens")) o.keep_tokens = iv;
                else if (!strcmp(a, "--warmup")) o.warmup = iv;
                else if (!strcmp(a, "--save-every")) o.save_every = iv;
            }
            if (rc < 0) return cli_fail();
        } else if (!o.data_dir) {
            o.data_dir = a;
        } else {
            ls_set_error("train: unexpected argument '%s' (one training folder only)", a);
            return cli_fail();
        }
    }
    if (!o.data_dir) {
        ls_set_error("train: usage: lorastyle train DIR [options] (see lorastyle train --help)");
        return cli_fail();
    }
    if (train_run(&o, NULL) < 0) return cli_fail();
    return 0;
}
