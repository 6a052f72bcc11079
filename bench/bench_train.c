/* bench_train.c — seconds per LoRA training step and its memory, for a model.
 *
 *   bench_train MODEL [--size PIXELS] [--batch B] [--rank R] [--conv-rank R] [--targets LIST] [--reps N]
 *                     [--max-other F] [--inner K] [--no-infer] [--method lora|full|adapter]
 *
 * One step is exactly the work `lorastyle train` does per step once its data is cached (src/train/train.c):
 * zero the gradients, U-Net training forward (saving activations) + MSE loss, backward (LoRA gradients
 * only), gradient norm + clipping at 1.0, AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 1e-2).
 * The adapter is a new kohya-initialised one from lora_create (rank R, alpha = R) on --targets LIST
 * (default attn: attn1/attn2 to_q, to_k, to_v, to_out.0, what bench/peer_train.py trains; --conv-rank R
 * alone adds the conv group; `--targets all` is `lorastyle train`'s default; conv rank: --conv-rank, else R).
 * Inputs are seeded random latents, timesteps, text context and noise target (the weights and data do not
 * change the cost). --method full trains every U-Net tensor instead (unet_full_grads_alloc: gradients for
 * all weights, AdamW over all of them), --method adapter bottleneck adapters of rank R
 * (lora_create_bottleneck) — the trade-off of the design notes.
 *
 * Prints the median and min seconds per step over N timed repetitions after one warm-up step (a repetition
 * is the mean of as many steps as make it last ≥ 0.5 s: one step on the tiny preset), the split
 * forward (+loss) / backward / optimizer, the saved-activation bytes (UNetActs.bytes), the U-Net inference
 * forward of the same batch (unet_forward, adapter attached unmerged) for the ratio, and the peak RSS.
 * bench/peer_train.py does the same step in PyTorch + PEFT.
 *
 * The project's machine has 2 cores shared with other jobs: every repetition measures the CPU time other
 * processes used meanwhile (/proc/stat), as a fraction of the machine's capacity over the repetition; a
 * repetition above --max-other (default 0.10) is repeated (at most N extra times), and the figures say
 * how many were dropped and the most load any kept repetition saw. Not a test. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "benchutil.h" // defines: cmp_double, machine_busy, self_cpu
#include "common.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "rng.h"
#include "trainset.h"
#include "unet_bwd.h"

#ifdef LS_PROFILE_OPS /* bench/profile_train.sh: per-op wall time (bench_train_prof.h) */
#include "bench_train_prof.h"
#define PROF_PHASE(p) (prof_phase = (p))
#else
#define PROF_PHASE(p) ((void)0)
#endif

#define MAXREP 64

/* System CPU seconds of this process and its minor page faults so far */
static void sys_faults(double *sys, double *minflt) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    *sys = (double)r.ru_stime.tv_sec + 1e-6 * (double)r.ru_stime.tv_usec;
    *minflt = (double)r.ru_minflt;
}

/* Current resident set size (bytes), from /proc/self/statm */
static double rss_now(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static double median(const double *v, int n) {
    double s[MAXREP];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double vmin(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

/* Kept repetitions of the training step. */
typedef struct {
    double v[MAXREP][6]; /* per kept rep: total, fwd, bwd, opt, system CPU s, minor faults (per step) */
    double load[MAXREP]; /* other processes' share of the machine during the rep */
    int n, dropped;
    double worst_dropped;
} Reps;

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train MODEL [--size PIXELS] [--batch B] [--rank R] [--conv-rank R] "
                        "[--targets LIST] [--reps N] [--max-other F] [--inner K] [--no-infer] "
                        "[--method lora|full|adapter]\n");
        return 2;
    }
    int size = 0, B = 1, reps = 3, rank = 4, conv_rank = -1, infer = 1, inner_opt = 0;
    const char *method = "lora", *targets = NULL;
    double max_other = 0.10;
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(argv[i], "--no-infer")) infer = 0;
        else if (!strcmp(argv[i], "--size")) size = atoi(v), i++;
        else if (!strcmp(argv[i], "--batch")) B = atoi(v), i++;
        else if (!strcmp(argv[i], "--reps")) reps = atoi(v), i++;
        else if (!strcmp(argv[i], "--rank")) rank = atoi(v), i++;
        else if (!strcmp(argv[i], "--conv-rank")) conv_rank = atoi(v), i++;
        else if (!strcmp(argv[i], "--targets")) targets = v, i++;
        else if (!strcmp(argv[i], "--method")) method = v, i++;
        else if (!strcmp(argv[i], "--max-other")) max_other = atof(v), i++;
        else if (!strcmp(argv[i], "--inner")) inner_opt = atoi(v), i++;
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > MAXREP / 2) reps = 3;
    if (!targets) targets = conv_rank > 0 ? "attn,conv" : "attn";
    if (conv_rank < 0) conv_rank = rank;
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up in a log file as they come */
    Model m;
    Lora lora;
    memset(&lora, 0, sizeof lora);
    double t0 = ls_time();
    if (model_load(&m, argv[1], NULL) < 0) {
        fprintf(stderr, "bench_train: %s\n", ls_last_error());
        return 1;
    }
    double t_load = ls_time() - t0, rss_model = rss_now();
    TrainSet ts = {0};
    int rc;
    if (!strcmp(method, "full")) rc = unet_full_grads_alloc(&m.unet, &ts);
    else if (!strcmp(method, "adapter"))
        rc = lora_create_bottleneck(&lora, &m, rank, 0.0f, 1);
    else if (!strcmp(method, "lora")) rc = lora_create(&lora, &m, targets, rank, 0.0f, conv_rank, 0.0f, 1);
    else rc = ls_set_error("--method %s: lora, full or adapter", method);
    if (rc == LS_OK && strcmp(method, "full"))
        rc = lora_attach(&lora, &m, 0) < 0 || lora_grads_alloc(&lora) < 0 ? LS_ERR : LS_OK;
    if (rc < 0) {
        fprintf(stderr, "bench_train: %s\n", ls_last_error());
        return 1;
    }
    if (strcmp(method, "full")) lora_trainset(&lora, &ts);
#ifdef LS_PROFILE_OPS
    prof_lora_w = callocCheck((size_t)ts.n, sizeof *prof_lora_w);
    for (int i = 0; i < ts.n; i++) prof_lora_w[prof_nl++] = ts.t[i].p;
#endif
    AdamState adam;
    adam_init(&adam, &ts);

    int f = vae_scale_factor(&m.vae.cfg);
    if (size <= 0) size = m.unet.cfg.sample_size * f;
    int h = size / f, C = m.unet.cfg.in_channels, L = 77, D = m.clip.cfg.hidden;
    size_t per = (size_t)C * h * h, n = (size_t)B * per;
    float *x = fbuf(n), *target = fbuf(n), *out = fbuf(n), *dout = fbuf(n), *eps = fbuf(n);
    float *ctx = fbuf((size_t)B * L * D), *t = fbuf(B);
    rng_normal(x, n, 1, 0);
    rng_normal(target, n, 4, 0);
    rng_normal(ctx, (size_t)B * L * D, 2, 0);
    for (int b = 0; b < B; b++) t[b] = (float)(rng_u32(3, (uint64_t)b) % 1000u);
    printf("model %s: unet %lld params, %d threads, load %.2f s, RSS after load %.1f MiB\n", argv[1],
           (long long)m.unet.wt.numel, op_num_threads(), t_load, rss_model / (1 << 20));
    printf("method %s: %d modules (%d LoCon; targets %s), rank %d, conv rank %d, %lld trainable parameters (%d "
           "tensors)\n", method, lora.n_mods, lora.n_conv, targets, rank, conv_rank, (long long)ts.n_params, ts.n);

    /* One repetition = `inner` steps (their mean), so that it lasts ≥ 0.5 s: /proc/stat counts in 10 ms
     * ticks, too coarse to see other processes' load during one 10-ms tiny-preset step. */
    UNetActs acts = {0};
    Reps tr = {0};
    int step = 0, inner = 1;
    for (int r = -1; tr.n < reps; r++) {
        double busy0 = machine_busy(), self0 = self_cpu(), tf = 0, tb = 0, to = 0, loss = 0, gnorm = 0;
        double sys0, flt0, sys1, flt1;
        sys_faults(&sys0, &flt0);
        double w0 = ls_time();
        for (int k = 0; k < inner; k++) {
            double s0 = ls_time();
            PROF_PHASE("fwd");
            trainset_zero_grads(&ts);
            unet_forward_train(&m.unet, &acts, out, x, t, ctx, B, h, h, L);
            loss = unet_mse_loss(dout, out, target, n);
            double s1 = ls_time();
            PROF_PHASE("bwd");
            unet_backward(&m.unet, &acts, NULL, dout);
            double s2 = ls_time();
            PROF_PHASE("opt");
            gnorm = sqrt(trainset_grad_sumsq(&ts));
            float gscale = gnorm > 1.0 ? (float)(1.0 / (gnorm + 1e-6)) : 1.0f;
            adamw_step(&ts, &adam, 1e-4f, ++step, gscale, 1e-2);
            double s3 = ls_time();
            tf += s1 - s0, tb += s2 - s1, to += s3 - s2;
        }
        double wall = ls_time() - w0, other = (machine_busy() - busy0) - (self_cpu() - self0);
        double load = busy0 >= 0 ? other / (wall * ncpu) : 0.0;
        sys_faults(&sys1, &flt1);
        if (r < 0) {
            printf("warm-up step: %.4f s (loss %.4f, grad norm %.3g)\n", wall, loss, gnorm);
            inner = inner_opt > 0 ? inner_opt : wall >= 0.5 ? 1 : (int)ceil(0.5 / wall);
            if (inner > 1) printf("each repetition is the mean of %d steps\n", inner);
#ifdef LS_PROFILE_OPS
            prof_reset(); /* the table covers the timed steps only */
#endif
            continue;
        }
        if (load > max_other && tr.dropped < reps) { /* at most N repeats */
            tr.dropped++;
            printf("  repetition %.4f s a step dropped: other processes used %.0f%% of the machine\n", wall / inner,
                   100 * load);
            continue;
        }
        tr.v[tr.n][0] = wall / inner, tr.v[tr.n][1] = tf / inner, tr.v[tr.n][2] = tb / inner;
        tr.v[tr.n][3] = to / inner, tr.v[tr.n][4] = (sys1 - sys0) / inner, tr.v[tr.n][5] = (flt1 - flt0) / inner;
        tr.load[tr.n++] = load;
    }
#ifdef LS_PROFILE_OPS
    prof_print((tr.n + tr.dropped) * inner);
#endif
    size_t act_bytes = acts.bytes;
    unet_acts_free(&acts);
    double col[6][MAXREP];
    for (int c = 0; c < 6; c++)
        for (int i = 0; i < tr.n; i++) col[c][i] = tr.v[i][c];
    if (inner > 1) printf("(each of the %d repetitions: the mean of %d steps)\n", tr.n, inner);
    double worst = 0;
    for (int i = 0; i < tr.n; i++) worst = tr.load[i] > worst ? tr.load[i] : worst;
    double med = median(col[0], tr.n);
    printf("train step    %dx%d batch %d: median %.4f s (min %.4f, %d reps; %d dropped as busy; other processes "
           "up to %.0f%% of the machine in a kept rep)\n",
           size, size, B, med, vmin(col[0], tr.n), tr.n, tr.dropped, 100 * worst);
    printf("  forward+loss %.4f s, backward %.4f s, optimizer %.5f s (medians)\n", median(col[1], tr.n),
           median(col[2], tr.n), median(col[3], tr.n));
    printf("  saved activations: %.1f MiB; per step: %.3f s system CPU, %.0f minor page faults (medians)\n",
           (double)act_bytes / (1 << 20), median(col[4], tr.n), median(col[5], tr.n));

    if (infer) {
        double ti[MAXREP], li[MAXREP];
        int k = 0, dropped = 0, inf_inner = 1;
        for (int r = -1; k < reps; r++) {
            double busy0 = machine_busy(), self0 = self_cpu(), s0 = ls_time();
            for (int j = 0; j < inf_inner; j++) unet_forward(&m.unet, eps, x, t, ctx, B, h, h, L);
            double wall = ls_time() - s0, other = (machine_busy() - busy0) - (self_cpu() - self0);
            double load = busy0 >= 0 ? other / (wall * ncpu) : 0.0;
            if (r < 0) {
                inf_inner = inner_opt > 0 ? inner_opt : wall >= 0.5 ? 1 : (int)ceil(0.5 / wall);
                continue;
            }
            if (load > max_other && dropped < reps) {
                dropped++;
                continue;
            }
            ti[k] = wall / inf_inner, li[k++] = load;
        }
        double wl = 0;
        for (int i = 0; i < k; i++) wl = li[i] > wl ? li[i] : wl;
        double mi = median(ti, k);
        printf("unet forward  %dx%d batch %d: median %.4f s (min %.4f, %d reps of %d calls; %d dropped; other up to "
               "%.0f%%); train step / forward = %.2f\n",
               size, size, B, mi, vmin(ti, k), k, inf_inner, dropped, 100 * wl, med / mi);
    }
    printf("peak RSS: %.1f MiB\n", (double)ls_peak_rss() / (1 << 20));
    adam_free(&adam);
    trainset_free(&ts);
    lora_free(&lora);
    model_free(&m);
    free(x), free(target), free(out), free(dout), free(eps), free(ctx), free(t);
    return 0;
}
