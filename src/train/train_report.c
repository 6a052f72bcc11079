/* train_report.c — what a run writes for its user (train_internal.h): the adapter (kohya format with
 * sd-scripts' ss_*, sshs_* and modelspec.* metadata) or the fine-tuned model, and report.txt with the costs. */
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h" // defines: ls_path_join, ls_write_file_atomic, ls_is_dir
#include "sha256.h" // defines: sha256_file_kohya

/* The adapter's modules on a Conv2d (LoCon, rank --conv-rank); attached, so each module knows its layer. */
static int conv_modules(const Lora *l) {
    int n = 0;
    for (int i = 0; i < l->n_mods; i++) n += l->mods[i].kind == MOD_CONV;
    return n;
}

/* v as Python's str(float) writes it, which is how kohya's float options reach its metadata ("4.0",
 * "0.0001", "1e-05"): the fewest digits that read back as v (as a float when single), fixed-point for
 * decimal exponents -4..15 with ".0" when whole, else scientific. Malloc'd. */
static char *py_float(double v, int single) {
    char b[48];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(b, sizeof b, "%.*e", p - 1, v);
        double r = strtod(b, NULL);
        if (single ? (float)r == (float)v : r == v) break;
    }
    snprintf(b, sizeof b, "%.*e", p - 1, v);
    int e = atoi(strchr(b, 'e') + 1);
    if (e >= -4 && e < 16) {
        snprintf(b, sizeof b, "%.*f", p - 1 - e > 0 ? p - 1 - e : 0, v);
        if (!strchr(b, '.')) strcat(b, ".0");
    }
    return strdupCheck(b);
}

/* kohya's ss_bucket_info ({"buckets": {"0": {"resolution": [w, h], "count": images × repeats}, ...},
 * "mean_img_ar_error": mean |bucket − image aspect ratio|}, "null" without buckets) and ss_dataset_dirs
 * ({"10_name": {"n_repeats": 10, "img_count": n}, ...}). Malloc'd. */
static char *bucket_info_json(const Dataset *d) {
    if (!d->opt.buckets) return strdupCheck("null");
    cJSON *root = cJSON_CreateObject(), *bs = cJSON_AddObjectToObject(root, "buckets");
    double ar_err = 0;
    for (int b = 0; b < d->n_buckets; b++) {
        int count = 0;
        for (int i = 0; i < d->n_items; i++) count += d->items[i].bucket == b ? d->items[i].repeats : 0;
        cJSON *o = cJSON_CreateObject();
        int wh[2] = {d->buckets[b].w, d->buckets[b].h};
        cJSON_AddItemToObject(o, "resolution", cJSON_CreateIntArray(wh, 2));
        cJSON_AddNumberToObject(o, "count", count);
        char key[16];
        snprintf(key, sizeof key, "%d", b);
        cJSON_AddItemToObject(bs, key, o);
    }
    for (int i = 0; i < d->n_items; i++)
        ar_err += fabs((double)d->items[i].tw / d->items[i].th - (double)d->items[i].w / d->items[i].h);
    cJSON_AddNumberToObject(root, "mean_img_ar_error", d->n_items ? ar_err / d->n_items : 0);
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    LS_ASSERT(js);
    return js;
}

static char *dataset_dirs_json(const Dataset *d) {
    cJSON *root = cJSON_CreateObject();
    for (int s = 0; s < d->n_subsets; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "n_repeats", d->subsets[s].repeats);
        cJSON_AddNumberToObject(o, "img_count", d->subsets[s].n_images);
        cJSON_AddItemToObject(root, d->subsets[s].name, o);
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    LS_ASSERT(js);
    return js;
}

/* The adapter in kohya's format, with the ss_* training metadata and modelspec.* keys (sai_model_spec) that
 * sd-scripts' train_network.py writes and other tools read (conv_dim and "locon" only when it has
 * convolution modules, so `--targets attn` writes what attention-only LoRA always did); lora_save_kohya
 * adds sshs_*. Floats as Python prints them, the model hashes as train_util computes them. */
static int save_lora(Trainer *T, const char *path, int steps_done) {
    const TrainOptions *o = &T->o;
    /* the base model's hashes, once: kohya's open() of a diffusers folder fails with IsADirectoryError and
     * it writes that (train_util.model_hash / calculate_sha256) */
    if (!T->sd_sha[0] && ls_is_dir(T->m.path)) {
        snprintf(T->sd_sha, sizeof T->sd_sha, "IsADirectory");
        snprintf(T->sd_legacy, sizeof T->sd_legacy, "IsADirectory");
    } else if (!T->sd_sha[0] && sha256_file_kohya(T->m.path, 0, T->sd_sha, T->sd_legacy) != LS_OK) {
        return LS_ERR;
    }
    int locon = conv_modules(&T->lora) > 0;
    const char *kv[160];
    char *own[80];
    int n = 0, no = 0;
#define KV(k, v) (kv[2 * n] = (k), kv[2 * n + 1] = (v), n++)
#define KVF(k, f, x) (own[no] = train_fmt((f), (x)), KV((k), own[no]), no++)
#define KVP(k, x) (own[no] = py_float((x), 1), KV((k), own[no]), no++)
#define KVS(k, s) (own[no] = (s), KV((k), own[no]), no++)
    KV("ss_network_module", o->method == METHOD_ADAPTER ? "lorastyle.adapter" : "networks.lora");
    KVF("ss_network_dim", "%.0f", (double)o->rank);
    KVP("ss_network_alpha", (double)o->alpha);
    char args[128];
    if (locon) {
        snprintf(args, sizeof args, "{\"conv_dim\": \"%d\", \"conv_alpha\": \"%g\"}", o->conv_rank,
                 (double)o->conv_alpha);
        KV("ss_network_args", args);
    }
    KVP("ss_learning_rate", (double)o->lr);
    KVP("ss_unet_lr", (double)o->lr);
    if (o->train_text_encoder) KVP("ss_text_encoder_lr", (double)(o->text_encoder_lr > 0 ? o->text_encoder_lr : o->lr));
    KV("ss_network_train_unet_only", o->train_text_encoder ? "False" : "True");
    KVF("ss_max_train_steps", "%.0f", (double)o->steps);
    KVF("ss_steps", "%.0f", (double)steps_done);
    KVF("ss_epoch", "%.0f", (double)(T->ep_index < 0 ? 0 : T->ep_index + 1));
    KVF("ss_gradient_accumulation_steps", "%.0f", (double)o->grad_accum);
    char resb[64];
    snprintf(resb, sizeof resb, "(%d, %d)", T->res, T->res);
    KV("ss_resolution", resb);
    KV("ss_enable_bucket", o->buckets ? "True" : "False");
    KVS("ss_bucket_info", bucket_info_json(&T->d));
    KVS("ss_dataset_dirs", dataset_dirs_json(&T->d));
    KVF("ss_num_train_images", "%.0f", (double)T->d.n_samples);
    KVF("ss_batch_size_per_device", "%.0f", (double)o->batch);
    char seedb[32];
    snprintf(seedb, sizeof seedb, "%llu", (unsigned long long)o->seed);
    KV("ss_seed", seedb);
    KV("ss_lr_scheduler", train_lr_schedule_name(o->lr_schedule));
    KVF("ss_lr_warmup_steps", "%.0f", (double)o->warmup);
    if (o->min_snr_gamma > 0) KVP("ss_min_snr_gamma", (double)o->min_snr_gamma);
    KVP("ss_noise_offset", (double)o->noise_offset);
    KVP("ss_max_grad_norm", (double)o->max_grad_norm);
    if (o->validation_split > 0) KVP("ss_validation_split", (double)o->validation_split);
    KV("ss_optimizer", "torch.optim.AdamW(weight_decay=0.01,betas=(0.9, 0.999),eps=1e-08)");
    KVF("ss_clip_skip", "%.0f", (double)o->clip_skip);
    KV("ss_flip_aug", o->flip ? "True" : "False");
    KV("ss_shuffle_caption", o->shuffle_tags ? "True" : "False");
    KVF("ss_keep_tokens", "%.0f", (double)o->keep_tokens);
    KVP("ss_caption_dropout_rate", (double)o->caption_dropout);
    KVP("ss_caption_tag_dropout_rate", (double)o->tag_dropout);
    /* SD 1.x: ss_v2 stays False for a v-prediction model; kohya marks v in the version and prediction type */
    KV("ss_v2", "False");
    KV("ss_base_model_version", T->vpred ? "sd_v1_v" : "sd_v1");
    KV("ss_zero_terminal_snr", T->m.sched.rescale_zero_snr ? "True" : "False");
    /* the model as given: its file name (a folder's name) and hashes */
    const char *mp = T->m.path, *slash = strrchr(mp, '/');
    char mname[256];
    snprintf(mname, sizeof mname, "%s", slash && slash[1] ? slash + 1 : mp);
    KV("ss_sd_model_name", mname);
    KV("ss_sd_model_hash", T->sd_legacy);
    KV("ss_new_sd_model_hash", T->sd_sha);
    KVS("ss_tag_frequency", dataset_tag_frequency_json(&T->d));
    KV("ss_output_name", o->name);
    KVS("ss_training_started_at", py_float(T->started_at, 0));
    double now = train_wall_clock();
    KVS("ss_training_finished_at", py_float(now, 0));
    /* sai_model_spec.build_metadata for an SD 1.x LoRA (train_util.get_sai_model_spec) */
    KV("modelspec.sai_model_spec", "1.0.1");
    KV("modelspec.architecture", "stable-diffusion-v1/lora");
    KV("modelspec.implementation", "diffusers");
    KV("modelspec.implementation_version", "lorastyle");
    KV("modelspec.title", o->name);
    char resm[32], date[32], enc[16];
    snprintf(resm, sizeof resm, "%dx%d", T->res, T->res);
    KV("modelspec.resolution", resm);
    struct tm tm;
    time_t secs = (time_t)now;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", localtime_r(&secs, &tm)); /* datetime.isoformat() */
    KV("modelspec.date", date);
    KV("modelspec.prediction_type", T->vpred ? "v" : "epsilon");
    snprintf(enc, sizeof enc, "%d", o->clip_skip);
    if (o->clip_skip > 1) KV("modelspec.encoder_layer", enc);
    KV("lorastyle_method", o->method == METHOD_ADAPTER ? "adapter" : locon ? "locon" : "lora");
    LS_ASSERT(n <= 80 && no <= 80);
#undef KV
#undef KVF
#undef KVP
#undef KVS
    int rc = lora_save_kohya(&T->lora, path, kv, n);
    for (int i = 0; i < no; i++) free(own[i]);
    return rc;
}

/* The output (adapter, or the model for --method full) at T->adapter once all steps are done; before that
 * (--save-every, and the save on Ctrl-C) it goes next to it under kohya's name NAME-step00000100
 * (.safetensors), so an unfinished adapter is never taken for the finished one. */
int train_save_output(Trainer *T, int steps_done) {
    const TrainOptions *o = &T->o;
    char *path = T->adapter;
    if (steps_done < o->steps) {
        const char *ext = strstr(T->adapter, ".safetensors");
        size_t stem = ext ? (size_t)(ext - T->adapter) : strlen(T->adapter);
        path = mallocCheck(stem + 40);
        snprintf(path, stem + 40, "%.*s-step%08d%s", (int)stem, T->adapter, steps_done, ext ? ext : "");
    }
    int rc;
    if (o->method == METHOD_FULL) { /* the whole model, in the input's layout */
        static const StDtype dt[] = {ST_F32, ST_F16, ST_BF16};
        rc = model_save(&T->m, path, dt[o->save_precision]);
    } else {
        rc = save_lora(T, path, steps_done);
    }
    if (path != T->adapter) free(path);
    return rc;
}

static void human_bytes(double b, char *out, int cap) {
    if (b >= 1 << 30) snprintf(out, (size_t)cap, "%.2f GiB", b / (1 << 30));
    else if (b >= 1 << 20) snprintf(out, (size_t)cap, "%.2f MiB", b / (1 << 20));
    else snprintf(out, (size_t)cap, "%.1f KiB", b / 1024);
}

/* Bytes of a file, or of every file under a folder (a full fine-tune's diffusers output). */
int64_t train_path_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return (int64_t)st.st_size;
    int64_t sum = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *sub = ls_path_join(path, e->d_name);
        sum += train_path_bytes(sub);
        free(sub);
    }
    closedir(d);
    return sum;
}

/* What was trained, in words: "LoRA on --targets attn: rank 4 alpha 4 (update scale alpha/rank = 1) on 48 modules
 * (...)" — the scale makes plain what rank and alpha mean together (kohya's default alpha 1 scales by 1/rank). */
void train_describe_method(const Trainer *T, char *out, size_t cap) {
    const TrainOptions *o = &T->o;
    const Lora *l = &T->lora;
    int nc = conv_modules(l);
    if (o->method == METHOD_FULL)
        snprintf(out, cap, "full fine-tuning of the U-Net (%d tensors, saved as %s)", T->ts.n,
                 o->save_precision == SAVE_FP16 ? "fp16" : o->save_precision == SAVE_BF16 ? "bf16" : "fp32");
    else if (o->method == METHOD_ADAPTER)
        snprintf(out, cap, "bottleneck adapters rank %d alpha %g (update scale alpha/rank = %g) on %d transformer "
                 "layers (lorastyle format)", o->rank, (double)o->alpha, (double)o->alpha / o->rank, l->n_mods);
    else if (nc > 0)
        snprintf(out, cap, "LoCon on --targets %s: rank %d alpha %g (update scale alpha/rank = %g) on %d Linear "
                 "layers, conv rank %d alpha %g (scale %g) on %d convolutions; %d modules (%d U-Net, %d text "
                 "encoder), kohya format", o->targets, o->rank, (double)o->alpha, (double)o->alpha / o->rank,
                 l->n_mods - nc, o->conv_rank, (double)o->conv_alpha, (double)o->conv_alpha / o->conv_rank, nc,
                 l->n_mods, l->n_unet, l->n_te);
    else
        snprintf(out, cap, "LoRA on --targets %s: rank %d alpha %g (update scale alpha/rank = %g) on %d modules (%d "
                 "U-Net, %d text encoder), kohya format", o->targets, o->rank, (double)o->alpha,
                 (double)o->alpha / o->rank, l->n_mods, l->n_unet, l->n_te);
}

int train_write_report(Trainer *T, TrainResult *r) {
    const TrainOptions *o = &T->o;
    char ab[32], ub[32], pk[32], sb[32], rep[4096], resumed[96] = "", meth[384];
    human_bytes((double)r->adapter_bytes, ab, sizeof ab);
    human_bytes((double)r->unet_file_bytes, ub, sizeof ub);
    human_bytes((double)r->peak_rss, pk, sizeof pk);
    human_bytes(3.0 * 4.0 * (double)r->trainable, sb, sizeof sb); /* gradient + AdamW m and v, float32 */
    train_describe_method(T, meth, sizeof meth);
    if (T->start_step > 0) snprintf(resumed, sizeof resumed, ", resumed at step %d", T->start_step);
    int64_t unet_p, clip_p, base = 0;
    model_param_count(&T->m, &unet_p, NULL, &clip_p);
    base = unet_p + (T->lora.n_te ? clip_p : 0);
    snprintf(rep, sizeof rep,
             "lorastyle train report\n"
             "output:               %s\n"
             "method:               %s\n"
             "trainable parameters: %lld (%.4f%% of the %s's %lld)\n"
             "output size:          %s (%lld bytes%s) vs the base U-Net checkpoint %s (%lld bytes, %s)\n"
             "peak memory (RSS):    %s (saved activations %.1f MiB; gradients + AdamW state %s)\n"
             "steps:                %d (batch %d x %d accumulated, resolution %d%s, %lld samples per epoch%s)\n"
             "disk cache:           %d hits, %d computed (latents%s)%s%s\n"
             "loss:                 first %.5f, mean of first 10 %.5f, mean of last 10 %.5f, last %.5f\n"
             "wall time:            %.2f s (%.1f ms per step in this run)\n",
             T->adapter, meth, (long long)r->trainable, 100.0 * (double)r->trainable / (double)base,
             T->lora.n_te ? "U-Net + text encoder" : "U-Net", (long long)base, ab, (long long)r->adapter_bytes,
             o->method == METHOD_FULL ? "; the whole model: U-Net, VAE, text encoder" : "", ub,
             (long long)r->unet_file_bytes, T->m.files[0].path, pk,
             (double)T->acts_bytes / (1 << 20), sb, o->steps, o->batch, o->grad_accum, T->res,
             o->buckets ? " buckets" : "", (long long)T->d.n_samples, resumed, T->dc.hits, T->dc.misses,
             T->capv ? "; text embeddings: encoded every step" : " + text embeddings",
             T->dc.cache_dir ? " in " : " (no disk cache)", T->dc.cache_dir ? T->dc.cache_dir : "", r->first_loss,
             r->mean_loss_first10, r->mean_loss_last10, r->last_loss, r->wall_s, 1000.0 * r->step_s);
    /* then the data: images used, skipped (with reasons), caption fallbacks, buckets */
    char *data = NULL;
    size_t dlen = 0;
    FILE *mf = open_memstream(&data, &dlen);
    LS_ASSERT(mf);
    fputs(rep, mf);
    if (T->released_bytes > 0) {
        char rb[32];
        human_bytes((double)T->released_bytes, rb, sizeof rb);
        fprintf(mf, "released:             the VAE and text-encoder weights (%s) after caching, before step 1 "
                    "(no samples, fixed captions)\n", rb);
    }
    if (r->n_val)
        fprintf(mf, "validation loss:      %d held-out images x %d timesteps: step %d %.5f, best %.5f at step %d, "
                    "last %.5f (validation.csv)\n", T->n_val_items, VAL_T, T->val_step[0], r->val_first, r->val_best,
                r->val_best_step, r->val_last);
    if (T->n_curve)
        fprintf(mf, "style curve:          distance to the training images %.4f / %.4f / %.4f at strength 0 / 0.5 / 1 "
                    "(%d captions; lower = closer to the training style)%s\n", (double)T->curve[0],
                (double)T->curve[1], (double)T->curve[2], T->n_curve,
                T->curve_same ? " -- WARNING: no effect at all (strength 1 == the base model)"
                : T->curve[2] > 0.97f * T->curve[0] ? " -- WARNING: no measurable effect" : "");
    dataset_report(&T->d, mf);
    fclose(mf);
    char *rp = ls_path_join(o->out, "report.txt");
    int rc = ls_write_file_atomic(rp, data, dlen);
    free(rp);
    if (rc == LS_OK && !o->quiet) fputs(data, stdout);
    free(data);
    return rc;
}
