/* train_report.c — what a run writes for its user (train_internal.h): the adapter (kohya format with
 * ss_* metadata) or the fine-tuned model, and report.txt with the costs. */
#include "train_internal.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h" // defines: ls_path_join, ls_write_file_atomic

/* The adapter's modules on a Conv2d (LoCon, rank --conv-rank); attached, so each module knows its layer. */
static int conv_modules(const Lora *l) {
    int n = 0;
    for (int i = 0; i < l->n_mods; i++) n += l->mods[i].kind == MOD_CONV;
    return n;
}

/* The adapter in kohya's format, with the ss_* training metadata other tools read (conv_dim and "locon"
 * only when it has convolution modules, so `--targets attn` writes what attention-only LoRA always did). */
static int save_lora(Trainer *T, const char *path, int steps_done) {
    const TrainOptions *o = &T->o;
    int locon = conv_modules(&T->lora) > 0;
    const char *kv[128];
    char *own[64];
    int n = 0, no = 0;
#define KV(k, v) (kv[2 * n] = (k), kv[2 * n + 1] = (v), n++)
#define KVF(k, f, x) (own[no] = train_fmt((f), (x)), KV((k), own[no]), no++)
    KV("ss_network_module", o->method == METHOD_ADAPTER ? "lorastyle.adapter" : "networks.lora");
    KVF("ss_network_dim", "%.0f", (double)o->rank);
    KVF("ss_network_alpha", "%g", (double)o->alpha);
    char args[128];
    if (locon) {
        snprintf(args, sizeof args, "{\"conv_dim\": \"%d\", \"conv_alpha\": \"%g\"}", o->conv_rank,
                 (double)o->conv_alpha);
        KV("ss_network_args", args);
    }
    KVF("ss_learning_rate", "%g", (double)o->lr);
    KVF("ss_unet_lr", "%g", (double)o->lr);
    if (o->train_text_encoder) KVF("ss_text_encoder_lr", "%g", (double)(o->text_encoder_lr > 0 ? o->text_encoder_lr : o->lr));
    KV("ss_network_train_unet_only", o->train_text_encoder ? "False" : "True");
    KVF("ss_max_train_steps", "%.0f", (double)o->steps);
    KVF("ss_steps", "%.0f", (double)steps_done);
    KVF("ss_epoch", "%.0f", (double)(T->ep_index < 0 ? 0 : T->ep_index + 1));
    KVF("ss_gradient_accumulation_steps", "%.0f", (double)o->grad_accum);
    char resb[64];
    snprintf(resb, sizeof resb, "(%d, %d)", T->res, T->res);
    KV("ss_resolution", resb);
    KV("ss_enable_bucket", o->buckets ? "True" : "False");
    KVF("ss_num_train_images", "%.0f", (double)T->d.n_samples);
    KVF("ss_batch_size_per_device", "%.0f", (double)o->batch);
    char seedb[32];
    snprintf(seedb, sizeof seedb, "%llu", (unsigned long long)o->seed);
    KV("ss_seed", seedb);
    KV("ss_lr_scheduler", train_lr_schedule_name(o->lr_schedule));
    KVF("ss_lr_warmup_steps", "%.0f", (double)o->warmup);
    if (o->min_snr_gamma > 0) KVF("ss_min_snr_gamma", "%g", (double)o->min_snr_gamma);
    KVF("ss_noise_offset", "%g", (double)o->noise_offset);
    KVF("ss_max_grad_norm", "%g", (double)o->max_grad_norm);
    if (o->validation_split > 0) KVF("ss_validation_split", "%g", (double)o->validation_split);
    KV("ss_optimizer", "torch.optim.AdamW(weight_decay=0.01,betas=(0.9, 0.999),eps=1e-08)");
    KVF("ss_clip_skip", "%.0f", (double)o->clip_skip);
    KV("ss_flip_aug", o->flip ? "True" : "False");
    KV("ss_shuffle_caption", o->shuffle_tags ? "True" : "False");
    KVF("ss_keep_tokens", "%.0f", (double)o->keep_tokens);
    KVF("ss_caption_dropout_rate", "%g", (double)o->caption_dropout);
    KVF("ss_caption_tag_dropout_rate", "%g", (double)o->tag_dropout);
    KV("ss_v2", "False");
    KV("ss_base_model_version", "sd_v1");
    KV("ss_sd_model_name", T->m.name);
    KV("ss_sd_model_hash", model_hash(&T->m));
    char *tagf = dataset_tag_frequency_json(&T->d);
    KV("ss_tag_frequency", tagf);
    KV("ss_output_name", o->name);
    KV("lorastyle_method", o->method == METHOD_ADAPTER ? "adapter" : locon ? "locon" : "lora");
    LS_ASSERT(n <= 64 && no <= 64);
#undef KV
#undef KVF
    int rc = lora_save_kohya(&T->lora, path, kv, n);
    free(tagf);
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
             (double)(T->acts.bytes + T->cacts.bytes) / (1 << 20), sb, o->steps, o->batch, o->grad_accum, T->res,
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
