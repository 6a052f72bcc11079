/* train_ckpt.c — training checkpoints (train_internal.h): everything a resumed run needs, written
 * atomically; loading checks that the checkpoint fits this run. */
#include "train_internal.h"

#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h> // defines: cJSON_Parse, cJSON_PrintUnformatted

#include "common.h"      // defines: ls_set_error, ls_read_file, ls_write_file_atomic
#include "safetensors.h" // defines: StWriter, StFile

/* Checkpoint: every trained tensor ("p.<name>") and its AdamW moments ("m.", "v."), the loss history, and in
 * __metadata__ the step, the data position and the smoothed loss — everything else a resumed run needs is
 * a pure function of the options. Written to a temporary file and renamed (st_writer_save). */
int train_ckpt_save(Trainer *T) {
    StWriter w;
    st_writer_init(&w);
    char buf[64];
    trainset_write_state(&w, &T->ts, &T->adam, NULL, '.');
    int64_t hs[1] = {T->step};
    st_writer_add(&w, "loss_history", ST_F32, 1, hs, T->hist);
    float *vh = NULL;
    if (T->n_val) { /* (step, loss) pairs */
        vh = mallocCheck((size_t)T->n_val * 2 * sizeof(float));
        for (int i = 0; i < T->n_val; i++) vh[2 * i] = (float)T->val_step[i], vh[2 * i + 1] = T->val_loss[i];
        int64_t vs[2] = {T->n_val, 2};
        st_writer_add(&w, "validation_history", ST_F32, 2, vs, vh);
    }
    st_writer_meta(&w, "format", TRAIN_CKPT_FORMAT);
#define META(k, f, v) (snprintf(buf, sizeof buf, f, v), st_writer_meta(&w, k, buf))
    META("step", "%d", T->step);
    META("epoch", "%lld", (long long)T->ep_index);
    META("batch_index", "%d", T->bi);
    META("ema", "%.17g", T->ema);
    META("ema_w", "%.17g", T->ema_w);
    META("seed", "%llu", (unsigned long long)T->o.seed);
    META("max_train_steps", "%d", T->o.steps);
#undef META
    { /* the options, for --resume to name what changed; without the run's own folder, so that a
       * checkpoint does not depend on where it lies */
        char *js = train_options_to_json(&T->o, T->res);
        cJSON *j = cJSON_Parse(js);
        LS_ASSERT(j);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "output");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "cache_dir");
        char *opts = cJSON_PrintUnformatted(j);
        st_writer_meta(&w, "options", opts);
        free(js), free(opts);
        cJSON_Delete(j);
    }
    int rc = st_writer_save(&w, T->ckpt_path);
    st_writer_free(&w);
    free(vh);
    if (rc < 0) {
        if (T->ckpt_step > 0)
            return ls_error_context("checkpoint at step %d not saved (the one from step %d is kept)", T->step,
                                    T->ckpt_step);
        return ls_error_context("checkpoint at step %d not saved", T->step);
    }
    T->ckpt_step = T->step;
    return LS_OK;
}

static int meta_int(const StFile *f, const char *k, long long *out) {
    const char *v = st_meta_get(f, k);
    char *end;
    if (!v) return ls_set_error("%s: not a lorastyle training checkpoint (no \"%s\")", f->path, k);
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (errno || *end || end == v) return ls_set_error("%s: bad \"%s\" value '%s'", f->path, k, v);
    return LS_OK;
}

static int ckpt_tensor(const StFile *f, const char *pre, const TrainTensor *t, float *dst) {
    char key[700];
    snprintf(key, sizeof key, "%s%s", pre, t->name);
    const StTensor *s = st_find(f, key);
    if (!s)
        return ls_set_error("%s: has no tensor %s (was it written with other --rank/--targets/--method?)", f->path,
                            key);
    if (s->numel != (int64_t)t->n)
        return ls_set_error("%s: %s has %lld values, this run expects %zu (other --rank or --conv-rank?)", f->path,
                            key, (long long)s->numel, t->n);
    return st_to_f32(f, s, dst, 1);
}

int train_ckpt_load(Trainer *T) {
    StFile f;
    LS_TRY(st_open(&f, T->ckpt_path));
    int rc = LS_ERR;
    long long step, epoch, bi;
    const char *fmt_v = st_meta_get(&f, "format");
    if (!fmt_v || strcmp(fmt_v, TRAIN_CKPT_FORMAT)) {
        ls_set_error("%s: not a lorastyle training checkpoint (format %s)", f.path, fmt_v ? fmt_v : "missing");
        goto out;
    }
    if (meta_int(&f, "step", &step) < 0 || meta_int(&f, "epoch", &epoch) < 0 ||
        meta_int(&f, "batch_index", &bi) < 0)
        goto out;
    if (step < 1 || epoch < -1 || bi < 0) {
        ls_set_error("%s: inconsistent step/epoch values", f.path);
        goto out;
    }
    /* at the last step: the run was stopped while writing its end-of-run files (the adapter comes first,
     * report.txt last); train_run writes them again unless report.txt says the run is complete */
    if (step > T->o.steps || (step == T->o.steps && T->report_done)) {
        ls_set_error("%s: the checkpoint is at step %lld and --steps is %d: nothing left to train (raise --steps "
                     "to continue)", f.path, step, T->o.steps);
        goto out;
    }
    for (int i = 0; i < T->ts.n; i++)
        if (ckpt_tensor(&f, "p.", &T->ts.t[i], T->ts.t[i].p) < 0 ||
            ckpt_tensor(&f, "m.", &T->ts.t[i], T->adam.m[i]) < 0 ||
            ckpt_tensor(&f, "v.", &T->ts.t[i], T->adam.v[i]) < 0)
            goto out;
    const StTensor *h = st_find(&f, "loss_history");
    if (!h || h->numel != step) {
        ls_set_error("%s: loss_history missing or not %lld long", f.path, step);
        goto out;
    }
    if (st_to_f32(&f, h, T->hist, 0) < 0) goto out;
    const StTensor *vt = st_find(&f, "validation_history");
    if (T->val_step && vt) {
        if (vt->ndim != 2 || vt->shape[1] != 2 || vt->shape[0] > step + 1) {
            ls_set_error("%s: validation_history has a bad shape", f.path);
            goto out;
        }
        float *vh = mallocCheck((size_t)vt->numel * sizeof(float));
        if (st_to_f32(&f, vt, vh, 0) < 0) {
            free(vh);
            goto out;
        }
        T->n_val = (int)vt->shape[0];
        for (int i = 0; i < T->n_val; i++) T->val_step[i] = (int)vh[2 * i], T->val_loss[i] = vh[2 * i + 1];
        free(vh);
    }
    const char *e = st_meta_get(&f, "ema"), *ew = st_meta_get(&f, "ema_w");
    T->ema = e ? strtod(e, NULL) : 0.0, T->ema_w = ew ? strtod(ew, NULL) : 0.0;
    const char *was = st_meta_get(&f, "options"); /* (older checkpoints have none) */
    if (was) {
        char *now = train_options_to_json(&T->o, T->res), diff[1024];
        int nd = train_options_diff(was, now, diff, sizeof diff);
        if (nd) ls_warn("resuming with %d option%s changed since the checkpoint: %s", nd, nd == 1 ? "" : "s", diff);
        free(now);
    }
    T->step = T->start_step = T->ckpt_step = (int)step;
    T->ep_index = epoch, T->bi = (int)bi;
    if (epoch >= 0 && dataset_epoch(&T->d, T->o.seed, (uint64_t)epoch, T->o.batch, &T->ep) < 0) goto out;
    rc = LS_OK;
out:
    st_close(&f);
    return rc;
}

/* On resume: keep the header and the rows of steps ≤ the checkpoint's step, drop what came after it. */
int train_csv_truncate(const char *path, int step) {
    size_t len;
    char *s = ls_read_file(path, &len);
    if (!s) return ls_set_error("%s: cannot read to resume: %s", path, ls_last_error());
    char *out = mallocCheck(len + 1);
    size_t o = 0;
    char *p = s;
    int first = 1;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (first || atoi(p) <= step) memcpy(out + o, p, l), o += l;
        first = 0;
        p += l;
    }
    int rc = ls_write_file_atomic(path, out, o);
    free(s), free(out);
    return rc;
}
