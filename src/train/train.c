/* train.c — the training loop (see train.h and train_internal.h): options, setup, one optimizer step
 * (forward, backward, AdamW), the loop with its checkpoints, samples and validation, and Ctrl-C. */
#include "train_internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"    // defines: model_default_path, model_missing_default
#include "common.h"     // defines: ls_set_error, ls_time, ls_peak_rss, ls_path_join
#include "rng.h"        // defines: rng_normal, rng_uniform
#include "scheduler.h"  // defines: sched_alphas_cumprod
#include "vae.h"        // defines: vae_scale_factor

/* Set by SIGINT/SIGTERM while train_run runs; read at step boundaries and by the sampler's cancel hook.
 * (A signal handler can only talk to the program through such a flag.) */
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

int train_interrupted(void) { return g_interrupted != 0; }

int train_lr_schedule_from_name(const char *s, LrSchedule *out) {
    if (!strcmp(s, "constant")) *out = LR_CONSTANT;
    else if (!strcmp(s, "cosine")) *out = LR_COSINE;
    else if (!strcmp(s, "linear")) *out = LR_LINEAR;
    else return ls_set_error("--lr-scheduler: unknown schedule '%s' (constant, cosine, linear)", s);
    return LS_OK;
}

const char *train_lr_schedule_name(LrSchedule s) {
    return s == LR_COSINE ? "cosine" : s == LR_LINEAR ? "linear" : "constant";
}

float train_lr_at(const TrainOptions *o, int s) {
    if (s < o->warmup) return o->lr * (float)(s + 1) / (float)o->warmup;
    int span = o->steps - o->warmup;
    double p = span > 0 ? (double)(s - o->warmup) / span : 0.0;
    switch (o->lr_schedule) {
    case LR_COSINE: return (float)(o->lr * 0.5 * (1.0 + cos(M_PI * p)));
    case LR_LINEAR: return (float)(o->lr * (1.0 - p));
    default: return o->lr;
    }
}

/* ---------------- output folder ---------------- */

static const char *base_name(const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    const char *b = strrchr(buf, '/');
    return b ? b + 1 : buf;
}

const char *train_default_out(const char *data_dir, const char *name, char *buf, size_t cap) {
    char nb[1024];
    if (!name) name = base_name(data_dir, nb, sizeof nb);
    snprintf(buf, cap, "output/%s", name);
    return buf;
}

/* OUT must not exist (unless force or resume) and must be creatable: checked before any work. */
static int check_out(const char *out, int force, int resume) {
    struct stat st;
    if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return ls_set_error("%s: exists and is not a folder", out);
        if (!force && !resume)
            return ls_set_error("%s: output folder already exists (use --resume to continue its training, "
                                "--force to start over)", out);
        if (access(out, W_OK) != 0) return ls_set_error("%s: output folder is not writable", out);
        return LS_OK;
    }
    if (resume) return ls_set_error("%s: no such output folder to resume (run without --resume)", out);
    char anc[4096];
    snprintf(anc, sizeof anc, "%s", out);
    for (;;) {
        char *sl = strrchr(anc, '/');
        if (!sl) {
            snprintf(anc, sizeof anc, ".");
            break;
        }
        if (sl == anc) {
            anc[1] = 0;
            break;
        }
        *sl = 0;
        if (stat(anc, &st) == 0) break;
    }
    if (stat(anc, &st) != 0 || !S_ISDIR(st.st_mode))
        return ls_set_error("%s: cannot create the output folder (%s is not a folder)", out, anc);
    if (access(anc, W_OK) != 0)
        return ls_set_error("%s: cannot create the output folder (%s is not writable)", out, anc);
    return LS_OK;
}

/* ---------------- one optimizer step ---------------- */

/* The next batch of the epoch order (a new epoch when this one is used up). */
static int next_batch(Trainer *T, int *b0, int *B) {
    if (T->ep_index < 0 || T->bi >= T->ep.n_batches) {
        dataset_epoch_free(&T->ep);
        LS_TRY(dataset_epoch(&T->d, T->o.seed, (uint64_t)(T->ep_index + 1), T->o.batch, &T->ep));
        T->ep_index++, T->bi = 0;
    }
    *b0 = T->ep.batch_start[T->bi], *B = T->ep.batch_start[T->bi + 1] - *b0;
    T->bi++;
    return LS_OK;
}

/* Forward + backward of micro-batch u (gradients accumulate, the loss is scaled by 1/grad_accum).
 * *loss gets the micro-batch's (weighted) loss. */
static int micro_step(Trainer *T, uint64_t u, double *loss) {
    const TrainOptions *o = &T->o;
    int b0, B;
    LS_TRY(next_batch(T, &b0, &B));
    const DatasetItem *first = &T->d.items[T->ep.items[b0]];
    int f = vae_scale_factor(&T->m.vae.cfg), h = first->th / f, w = first->tw / f, C = T->C;
    size_t n = (size_t)C * h * w, nctx = (size_t)T->dc.L * T->dc.D;
    /* the step's buffers and activations are the backend's pool memory, all given back at the end: the pool
     * is then empty and sized for the next step, which makes no system allocation (tests/test_pool.c) */
    float *x0 = sbuf(B * n), *ctx = sbuf(B * nctx), *noise = sbuf(B * n), *xt = sbuf(B * n);
    float *target = sbuf(B * n), *out = sbuf(B * n), *dout = sbuf(B * n), *tf = sbuf(B);
    int *tt = pool_alloc((size_t)B * sizeof(int)), rc = LS_OK;
    UNetActs acts = {0};
    ClipActs cacts = {0}; /* --train-text-encoder: the text encoder's */
    for (int k = 0; k < B && rc == LS_OK; k++) {
        int item = T->ep.items[b0 + k], hh, ww;
        rc = datacache_latent(&T->dc, item, T->ep.flip[b0 + k], x0 + k * n, &hh, &ww);
        if (rc == LS_OK) {
            LS_ASSERT(hh == h && ww == w); /* batches never mix buckets */
            char *cap = T->capv ? T->capv[k] : T->captxt;
            if (dataset_caption(&T->d, item, o->seed, u, cap, T->capb + 1) < 0 ||
                (!T->capv && datacache_ctx(&T->dc, cap, ctx + k * nctx) < 0))
                rc = LS_ERR;
        }
    }
    if (rc == LS_OK && T->capv) /* the text encoder trains: encode every step, keeping its activations */
        rc = clip_encode_train(&T->m.clip, T->m.tok, &cacts, ctx, (const char *const *)T->capv, B,
                               o->clip_skip);
    if (rc == LS_OK) {
        uint64_t ns = o->fixed_noise ? 0 : u;
        float *uu = sbuf(B);
        rng_uniform(uu, (size_t)B, train_stream(o->seed, ns, P_TIMESTEP), 0);
        for (int k = 0; k < B; k++) {
            int t = o->fixed_t >= 0 ? o->fixed_t : (int)(uu[k] * (float)T->T);
            tt[k] = t < 0 ? 0 : t >= T->T ? T->T - 1 : t;
            tf[k] = (float)tt[k];
        }
        pool_free(uu);
        rng_normal(noise, B * n, train_stream(o->seed, ns, P_NOISE), 0);
        if (o->noise_offset != 0.0f) {
            float *off = sbuf((size_t)B * C);
            rng_normal(off, (size_t)(B * C), train_stream(o->seed, ns, P_OFFSET), 0);
            for (int k = 0; k < B; k++)
                for (int c = 0; c < C; c++)
                    for (int q = 0; q < h * w; q++) noise[k * n + (size_t)c * h * w + q] += o->noise_offset * off[k * C + c];
            pool_free(off);
        }
        for (int k = 0; k < B; k++) train_noise_to(T, tt[k], x0 + k * n, noise + k * n, xt + k * n, target + k * n, n);
        unet_forward_train(&T->m.unet, &acts, out, xt, tf, ctx, B, h, w, T->dc.L);
        double l = 0.0;
        for (int k = 0; k < B; k++) {
            double lk = unet_mse_loss(dout + k * n, out + k * n, target + k * n, n), wk = 1.0;
            if (o->min_snr_gamma > 0) {
                double snr = T->acp[tt[k]] / (1.0 - T->acp[tt[k]]);
                double mn = snr < o->min_snr_gamma ? snr : o->min_snr_gamma;
                wk = T->vpred ? mn / (snr + 1.0) : snr > 0 ? mn / snr : 1.0; /* SNR 0: zero-terminal-SNR ᾱ_T */
            }
            l += wk * lk / B;
            float sc = (float)(wk / B / o->grad_accum);
            for (size_t q = 0; q < n; q++) dout[k * n + q] *= sc;
        }
        *loss = l;
        if (isfinite(l)) {
            /* ∂loss/∂context (reusing ctx's buffer) only when the text encoder trains */
            unet_backward(&T->m.unet, &acts, T->capv ? ctx : NULL, dout);
            if (T->capv) clip_backward(&T->m.clip, &cacts, ctx);
        }
    }
    if (rc == LS_OK) T->acts_bytes = acts.bytes + cacts.bytes;
    unet_acts_free(&acts);
    clip_acts_free(&cacts);
    pool_free(x0), pool_free(ctx), pool_free(noise), pool_free(xt), pool_free(target), pool_free(out);
    pool_free(dout), pool_free(tf), pool_free(tt);
    return rc;
}

/* ---------------- setup, loop, report ---------------- */

static void progress(Trainer *T, double t0) {
    if (T->o.quiet) return;
    int step = T->step, total = T->o.steps, done = step - T->start_step;
    double loss_ema = T->ema_w > 0 ? T->ema / T->ema_w : 0.0;
    double el = ls_time() - t0, rate = done / (el > 0 ? el : 1e-9), eta = (total - step) / (rate > 0 ? rate : 1e-9);
    if (T->tty) {
        int width = 30, fill = width * step / total;
        char val[32] = "";
        if (T->n_val) snprintf(val, sizeof val, "  val %.4f", (double)T->val_loss[T->n_val - 1]);
        fprintf(stderr, "\r[%.*s%*s] step %d/%d  loss %.4f%s  %.2f it/s  ETA %.0fs ", fill,
                "==============================", width - fill, "", step, total, loss_ema, val, rate, eta);
        if (step == total) fputc('\n', stderr);
        fflush(stderr);
    } else {
        int every = total >= 10 ? total / 10 : 1;
        if (step % every == 0 || step == total)
            fprintf(stderr, "lorastyle: step %d/%d  loss %.4f  %.2f it/s  ETA %.0fs\n", step, total, loss_ema, rate,
                    eta);
    }
}

/* Options that only make sense with some methods: a clear error instead of silently ignoring them. */
static int check_method_options(const TrainOptions *o) {
    const char *m = train_method_name(o->method);
    if (o->method == METHOD_FULL || o->method == METHOD_ADAPTER) {
        if (o->conv_rank > 0)
            return ls_set_error("--conv-rank: LoCon modules go with --method lora/locon, not --method %s", m);
        if (o->targets) return ls_set_error("--targets: LoRA target modules go with --method lora/locon, not %s", m);
        if (o->train_text_encoder)
            return ls_set_error("--train-text-encoder: text-encoder LoRA goes with --method lora/locon, not %s", m);
    }
    if (o->text_encoder_lr > 0 && !o->train_text_encoder)
        return ls_set_error("--text-encoder-lr: only used with --train-text-encoder");
    if (o->save_precision != SAVE_FP32 && o->method != METHOD_FULL)
        return ls_set_error("--save-precision: only for --method full (adapters are saved in float32)");
    return LS_OK;
}

/* Resolve defaults that depend on each other or on the data (name, OUT, targets, alphas, LoCon, epochs); the
 * resolved values are what config.json records. */
static void resolve_options(TrainOptions *o, char *nb, size_t nbcap, char *ob, size_t obcap) {
    if (!o->name) o->name = base_name(o->data_dir, nb, nbcap);
    if (!o->out) o->out = train_default_out(o->data_dir, o->name, ob, obcap);
    int lora = o->method == METHOD_LORA || o->method == METHOD_LOCON;
    if (lora && !o->targets) o->targets = "all";
    if (o->conv_rank < 0) o->conv_rank = lora ? o->rank : 0;
    if (!(o->alpha > 0)) o->alpha = (float)o->rank;
    if (o->conv_rank > 0 && !(o->conv_alpha > 0)) o->conv_alpha = (float)o->conv_rank;
    if (o->conv_rank == 0) o->conv_alpha = 0;
}

static int trainer_setup(Trainer *T) {
    TrainOptions *o = &T->o;
    ModelOpts mo = {o->config_dir, o->tokenizer_dir};
    if (model_load(&T->m, o->model, &mo) < 0) {
        if (!strcmp(o->model, model_default_path()) && !ls_is_dir(o->model)) model_missing_default(o->model);
        return LS_ERR;
    }
    int f = vae_scale_factor(&T->m.vae.cfg);
    T->res = o->resolution ? o->resolution : T->m.unet.cfg.sample_size * f;
    o->resolution = T->res;
    int ufac = f << (T->m.unet.cfg.n_levels - 1);
    if (T->res % ufac) return ls_set_error("--resolution %d: must be a multiple of %d for this model", T->res, ufac);
    DatasetOptions dopt;
    dataset_options_default(&dopt);
    dopt.resolution = T->res;
    dopt.buckets = o->buckets;
    if (o->bucket_step) dopt.bucket_step = o->bucket_step;
    if (o->min_bucket) dopt.min_bucket = o->min_bucket;
    if (o->max_bucket) dopt.max_bucket = o->max_bucket;
    dopt.bucket_no_upscale = o->bucket_no_upscale;
    if (o->buckets && dopt.bucket_step % ufac)
        return ls_set_error("--bucket-step %d: must be a multiple of %d for this model", dopt.bucket_step, ufac);
    dopt.caption = o->caption, dopt.trigger = o->trigger;
    if (o->caption_ext) dopt.caption_ext = o->caption_ext;
    dopt.shuffle_tags = o->shuffle_tags, dopt.keep_tokens = o->keep_tokens, dopt.flip = o->flip;
    dopt.caption_dropout = o->caption_dropout, dopt.tag_dropout = o->tag_dropout;
    dopt.quiet = o->quiet;
    LS_TRY(dataset_check_options(&dopt));
    if (o->samples) LS_TRY(train_load_sample_prompts(T)); /* a bad prompt file fails before any work */
    LS_TRY(dataset_scan(&T->d, o->data_dir, &dopt));
    if (o->validation_split > 0)
        LS_TRY(dataset_hold_out(&T->d, o->validation_split, o->seed, &T->val_items, &T->n_val_items));
    if (!o->quiet) dataset_report(&T->d, stderr);
    if (o->epochs > 0) {
        DatasetEpoch e0 = {0};
        LS_TRY(dataset_epoch(&T->d, o->seed, 0, o->batch, &e0));
        int64_t micro = (int64_t)o->epochs * e0.n_batches;
        dataset_epoch_free(&e0);
        int64_t steps = (micro + o->grad_accum - 1) / o->grad_accum;
        if (steps > 100000000) return ls_set_error("--epochs %d: too many steps (%lld)", o->epochs, (long long)steps);
        o->steps = (int)steps;
    }
    if (T->n_val_items) { /* at most one validation per step, plus step 0 */
        T->val_step = mallocCheck((size_t)(o->steps + 2) * sizeof(int));
        T->val_loss = mallocCheck((size_t)(o->steps + 2) * sizeof(float));
    }
    if (o->warmup > o->steps) return ls_set_error("--warmup %d: more than the %d training steps", o->warmup, o->steps);
    T->capb = dataset_caption_bound(&T->d, 0);
    for (int i = 1; i < T->d.n_items; i++) T->capb = LS_MAX(T->capb, dataset_caption_bound(&T->d, i));
    T->captxt = mallocCheck((size_t)T->capb + 1);
    if (o->samples && T->n_sp == 0) { /* the first image's caption (with the trigger; unshuffled) */
        char *cap = mallocCheck((size_t)T->capb + 1);
        dataset_caption(&T->d, 0, o->seed, DATASET_CAPTION_PLAIN, cap, T->capb + 1);
        T->sp[0] = (SamplePrompt){cap, NULL, 1234, o->sample_steps, 7.5f, -1, 0};
        T->n_sp = 1;
    }

    if (o->method == METHOD_FULL) {
        LS_TRY(unet_full_grads_alloc(&T->m.unet, &T->ts));
    } else {
        if (o->method == METHOD_ADAPTER) LS_TRY(lora_create_bottleneck(&T->lora, &T->m, o->rank, o->alpha, o->seed));
        else
            LS_TRY(lora_create(&T->lora, &T->m, o->targets, o->rank, o->alpha, o->conv_rank, o->conv_alpha, o->seed));
        if (o->train_text_encoder) LS_TRY(lora_add_te(&T->lora, &T->m, o->rank, o->alpha, o->seed));
        LS_TRY(lora_attach(&T->lora, &T->m, 0));
        LS_TRY(lora_grads_alloc(&T->lora));
        lora_trainset(&T->lora, &T->ts);
    }
    if (o->train_text_encoder) {
        float mul = o->text_encoder_lr > 0 ? o->text_encoder_lr / o->lr : 1.0f;
        for (int i = 0; i < T->ts.n; i++)
            if (!strncmp(T->ts.t[i].name, "lora_te_", 8)) T->ts.t[i].lr_mul = mul;
        T->capv = callocCheck((size_t)o->batch, sizeof *T->capv);
        for (int k = 0; k < o->batch; k++) T->capv[k] = mallocCheck((size_t)T->capb + 1);
    }
    adam_init(&T->adam, &T->ts);

    DataCache *dc = &T->dc;
    dc->m = &T->m, dc->d = &T->d, dc->seed = o->seed, dc->clip_skip = o->clip_skip;
    dc->L = tokenizer_max_length(T->m.tok), dc->D = T->m.clip.cfg.hidden;
    dc->mom = callocCheck((size_t)2 * T->d.n_items, sizeof *dc->mom);
    dc->lh = callocCheck((size_t)2 * T->d.n_items, sizeof(int));
    dc->lw = callocCheck((size_t)2 * T->d.n_items, sizeof(int));
    dc->text = callocCheck(MAX_TEXT_CACHE, sizeof *dc->text);
    dc->ctx = callocCheck(MAX_TEXT_CACHE, sizeof *dc->ctx);
    snprintf(dc->model_hash, sizeof dc->model_hash, "%s", model_hash(&T->m));
    if (o->cache) dc->cache_dir = o->cache_dir;
    dc->text_disk = train_captions_fixed(o); /* captions that change every step: memory only */
    /* (with --train-text-encoder the context is encoded every step: the text cache is not used) */

    T->T = T->m.sched.num_train_timesteps;
    T->acp = mallocCheck((size_t)T->T * sizeof(float));
    sched_alphas_cumprod(&T->m.sched, T->acp);
    T->vpred = T->m.sched.prediction == PRED_V;
    T->C = T->m.vae.cfg.latent_channels;
    T->hist = callocCheck((size_t)o->steps, sizeof(float));
    T->ep_index = -1;
    return LS_OK;
}

static void trainer_free(Trainer *T) {
    if (T->csv) fclose(T->csv);
    if (T->val_csv) fclose(T->val_csv);
    free(T->val_items), free(T->val_step), free(T->val_loss), free(T->val_path);
    if (T->capv)
        for (int k = 0; k < T->o.batch; k++) free(T->capv[k]);
    free(T->capv);
    dataset_epoch_free(&T->ep);
    if (T->dc.d) datacache_free(&T->dc);
    adam_free(&T->adam);
    trainset_free(&T->ts);
    lora_free(&T->lora);
    dataset_free(&T->d);
    model_free(&T->m);
    for (int i = 0; i < T->n_sp; i++) free(T->sp[i].prompt), free(T->sp[i].negative);
    free(T->adapter), free(T->csv_path), free(T->ckpt_path), free(T->plot_path), free(T->samples_dir);
    free(T->captxt), free(T->acp), free(T->hist);
}

int train_run(const TrainOptions *oin, TrainResult *res) {
    Trainer *T = callocCheck(1, sizeof *T);
    TrainResult r;
    memset(&r, 0, sizeof r);
    double t_start = ls_time();
    T->started_at = train_wall_clock();
    T->o = *oin;
    TrainOptions *o = &T->o;
    o->n_owned = 0; /* the caller owns the strings */
    char nb[1024], ob[1200];
    int rc = LS_ERR;
    if (!o->data_dir) {
        rc = ls_set_error("train: no training folder given");
        goto out;
    }
    if (o->steps < 1 || o->batch < 1 || o->batch > 1024 || o->grad_accum < 1 || !(o->lr > 0) || !isfinite(o->lr) ||
        o->warmup < 0) {
        rc = ls_set_error("train: --steps, --batch, --grad-accum and --lr must be positive (--batch ≤ 1024)");
        goto out;
    }
    if (check_method_options(o) < 0) goto out;
    resolve_options(o, nb, sizeof nb, ob, sizeof ob);
    if (check_out(o->out, o->force, o->resume) < 0) goto out;
    if (ls_is_dir(o->out)) { /* what a killed run's atomic writes left: "NAME.tmp.PID" of dead PIDs */
        int nr = ls_remove_stale_tmp(o->out, 3);
        if (nr && !o->quiet)
            fprintf(stderr, "lorastyle: removed %d temporary file%s left by a killed run in %s\n", nr,
                    nr == 1 ? "" : "s", o->out);
    }
    T->ckpt_path = ls_path_join(o->out, "checkpoint.safetensors");
    char *report_path = ls_path_join(o->out, "report.txt");
    T->report_done = ls_file_exists(report_path);
    if (o->resume && !ls_file_exists(T->ckpt_path)) { /* stopped before its first checkpoint */
        ls_warn("%s: no checkpoint yet (the run stopped before its first one): starting the training over",
                o->out);
        o->resume = 0, o->force = 1;
    }
    char *cache_default = NULL;
    if (!o->cache_dir) o->cache_dir = cache_default = ls_path_join(o->out, "cache");
    if (trainer_setup(T) < 0) goto out_cd;
    {   /* full fine-tuning writes a model in the input's layout: a diffusers folder or one file */
        char fn[1100];
        int folder = o->method == METHOD_FULL && !T->m.single_file;
        snprintf(fn, sizeof fn, folder ? "%s" : "%s.safetensors", o->name);
        T->adapter = ls_path_join(o->out, fn);
    }
    T->csv_path = ls_path_join(o->out, "loss.csv");
    T->plot_path = ls_path_join(o->out, "loss.png");
    T->samples_dir = ls_path_join(o->out, "samples");
    if (o->resume && train_ckpt_load(T) < 0) goto out_cd;
    if (ls_mkdir_p(o->out) < 0) goto out_cd;
    if (T->step < o->steps && unlink(report_path) != 0 && errno != ENOENT) { /* it described a finished run */
        ls_set_error("%s: cannot remove the old report: %s", report_path, strerror(errno));
        goto out_cd;
    }
    if (T->step == o->steps && !o->quiet) /* resumed at the last step: only the end-of-run files are left */
        fprintf(stderr, "lorastyle: %s is at the last step (%d): writing the end-of-run files\n", T->ckpt_path,
                T->step);
    if (!o->resume && ls_file_exists(T->ckpt_path) && unlink(T->ckpt_path) != 0) { /* --force: start over */
        ls_set_error("%s: cannot remove the old checkpoint: %s", T->ckpt_path, strerror(errno));
        goto out_cd;
    }
    if (o->resume && ls_file_exists(T->csv_path) && train_csv_truncate(T->csv_path, T->step) < 0) goto out_cd;
    T->csv = fopen(T->csv_path, o->resume ? "a" : "w");
    if (!T->csv) {
        ls_set_error("%s: cannot write: %s", T->csv_path, strerror(errno));
        goto out_cd;
    }
    if (!o->resume) fprintf(T->csv, "step,loss,lr,grad_norm,seconds\n");
    if (T->n_val_items) {
        T->val_path = ls_path_join(o->out, "validation.csv");
        int append = o->resume && ls_file_exists(T->val_path);
        if (append && train_csv_truncate(T->val_path, T->step) < 0) goto out_cd;
        T->val_csv = fopen(T->val_path, append ? "a" : "w");
        if (!T->val_csv) {
            ls_set_error("%s: cannot write: %s", T->val_path, strerror(errno));
            goto out_cd;
        }
        if (!append) fprintf(T->val_csv, "step,validation_loss\n");
    }
    {
        char *js = train_options_to_json(o, T->res), *cp = ls_path_join(o->out, "config.json");
        int wrc = ls_write_file_atomic(cp, js, strlen(js));
        free(js), free(cp);
        if (wrc < 0) goto out_cd;
    }
    r.trainable = T->ts.n_params;
    model_param_count(&T->m, &r.unet_params, NULL, NULL);
    r.unet_file_bytes = (int64_t)T->m.files[0].map_size;
    r.start_step = T->start_step;
    T->tty = isatty(2) && !o->quiet;
    if (!o->quiet) {
        char meth[384];
        train_describe_method(T, meth, sizeof meth);
        fprintf(stderr, "lorastyle: training %s: %lld parameters, %d steps%s\n", meth, (long long)T->ts.n_params,
                o->steps, T->start_step ? " (resumed)" : "");
    }

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigemptyset(&sa.sa_mask);
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    if (train_precache(T) < 0) {
        if (g_interrupted) rc = TRAIN_INTERRUPTED;
        goto loop_out;
    }
    train_release_encoders(T);
    if (T->n_val_items && T->step == 0 && train_record_validation(T) < 0) goto loop_out; /* the base model's */
    double t_loop = ls_time();
    int stopped = 0;
    while (T->step < o->steps) {
        int s = T->step;
        double loss = 0.0, gnorm = 0.0;
        float lr = train_lr_at(o, s);
        trainset_zero_grads(&T->ts);
        int fail = 0;
        for (int a = 0; a < o->grad_accum && !fail; a++) {
            double l = 0.0;
            if (micro_step(T, (uint64_t)s * o->grad_accum + a, &l) < 0) fail = 1;
            else loss += l / o->grad_accum;
        }
        if (fail) goto loop_out;
        if (isfinite(loss)) gnorm = sqrt(trainset_grad_sumsq(&T->ts));
        if (!isfinite(loss) || !isfinite(gnorm)) {
            if (T->tty) fputc('\n', stderr);
            ls_set_error("training stopped at step %d: the %s is %s (learning rate %g too high?); %s%s", s + 1,
                         isfinite(loss) ? "gradient norm" : "loss",
                         isnan(isfinite(loss) ? gnorm : loss) ? "NaN" : "infinite", (double)lr,
                         T->ckpt_step ? "the last good checkpoint is kept: " : "no checkpoint was written",
                         T->ckpt_step ? T->ckpt_path : "");
            goto loop_out;
        }
        float gscale = 1.0f;
        if (o->max_grad_norm > 0 && gnorm > o->max_grad_norm) gscale = (float)(o->max_grad_norm / (gnorm + 1e-6));
        adamw_step(&T->ts, &T->adam, lr, s + 1, gscale, ADAM_WD);
        fprintf(T->csv, "%d,%.6g,%.6g,%.6g,%.3f\n", s + 1, loss, (double)lr, gnorm, ls_time() - t_loop);
        fflush(T->csv); /* readable while training (tail -f, plots) */
        T->hist[s] = (float)loss;
        T->ema = 0.9 * T->ema + 0.1 * loss, T->ema_w = 0.9 * T->ema_w + 0.1;
        T->step = s + 1;
        int last = T->step == o->steps;
        int ve = o->validate_every ? o->validate_every : o->checkpoint_every;
        if (T->n_val_items && (last || (ve > 0 && T->step % ve == 0)) && train_record_validation(T) < 0) goto loop_out;
        progress(T, t_loop);
        if (!last && o->save_every > 0 && T->step % o->save_every == 0 && train_save_output(T, T->step) < 0) goto loop_out;
        if (!last && o->checkpoint_every > 0 && T->step % o->checkpoint_every == 0) {
            fflush(T->csv);
            if (train_ckpt_save(T) < 0 || train_write_plot(T) < 0) goto loop_out;
        }
        if (!last && o->samples && o->sample_every > 0 && T->step % o->sample_every == 0 && train_write_samples(T) < 0 &&
            !g_interrupted)
            goto loop_out;
        if (!last && (g_interrupted || (o->stop_after > 0 && T->step - T->start_step >= o->stop_after))) {
            stopped = 1;
            break;
        }
    }
    r.step_s = (ls_time() - t_loop) / LS_MAX(1, T->step - T->start_step);
    fflush(T->csv);
    if (stopped) {
        if (T->tty) fputc('\n', stderr);
        if (train_ckpt_save(T) < 0 || train_save_output(T, T->step) < 0 || train_write_plot(T) < 0) goto loop_out;
        ls_set_error("interrupted at step %d of %d: checkpoint saved to %s; continue with: lorastyle train %s -o %s "
                     "--resume", T->step, o->steps, T->ckpt_path, o->data_dir, o->out);
        rc = TRAIN_INTERRUPTED;
        goto loop_out;
    }
    /* the adapter first (the product), then the checkpoint (to extend the run), plot, samples, report */
    if (train_save_output(T, T->step) < 0 || train_ckpt_save(T) < 0 || train_write_plot(T) < 0) goto loop_out;
    if (o->samples && train_write_samples(T) < 0) {
        if (!g_interrupted) goto loop_out;
        ls_warn("samples skipped (interrupted); the adapter is saved");
    }
    if (!g_interrupted && train_style_curve(T) < 0) {
        if (!g_interrupted) goto loop_out;
        ls_warn("style curve skipped (interrupted); the adapter is saved");
    }
    {
        double sf = 0, sl = 0;
        int n10 = LS_MIN(10, T->step);
        for (int i = 0; i < n10; i++) sf += T->hist[i], sl += T->hist[T->step - 1 - i];
        r.first_loss = T->hist[0], r.last_loss = T->hist[T->step - 1];
        r.n_val = T->n_val;
        if (T->n_val) {
            r.val_first = T->val_loss[0], r.val_last = T->val_loss[T->n_val - 1];
            r.val_best = r.val_first, r.val_best_step = T->val_step[0];
            for (int i = 1; i < T->n_val; i++)
                if (T->val_loss[i] < r.val_best) r.val_best = T->val_loss[i], r.val_best_step = T->val_step[i];
        }
        r.mean_loss_first10 = sf / n10, r.mean_loss_last10 = sl / n10;
        r.adapter_bytes = train_path_bytes(T->adapter);
    }
    snprintf(r.adapter_path, sizeof r.adapter_path, "%s", T->adapter);
    r.peak_rss = ls_peak_rss();
    r.wall_s = ls_time() - t_start;
    if (train_write_report(T, &r) < 0) goto loop_out;
    rc = LS_OK;
loop_out:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out_cd:
    r.steps_done = T->step;
    r.cache_hits = T->dc.hits, r.cache_misses = T->dc.misses;
    free(cache_default);
    free(report_path);
out:
    trainer_free(T);
    free(T);
    if (res) *res = r;
    return rc;
}
