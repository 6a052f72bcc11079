/* lora_train.c — LoRA gradient buffers (see lora.h, "training"). */
#include <string.h>

#include "common.h" // defines: callocCheck, ls_set_error
#include "lora.h"   // defines: Lora, LoraModule

static size_t down_numel(const LoraModule *m) { return (size_t)m->rank * m->in * m->k * m->k; }
static size_t up_numel(const LoraModule *m) { return (size_t)m->out * m->rank; }

int lora_grads_alloc(Lora *a) {
    if (!a->attached) return ls_set_error("%s: attach the adapter before allocating gradients", a->path);
    if (a->merged) return ls_set_error("%s: a merged adapter cannot be trained (unmerge it)", a->path);
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *m = &a->mods[i];
        if (!m->ddown) m->ddown = callocCheck(down_numel(m), sizeof(float));
        if (!m->dup) m->dup = callocCheck(up_numel(m), sizeof(float));
        m->hook.ddown = m->ddown; /* the hook is what the layers see */
        m->hook.dup = m->dup;
    }
    return LS_OK;
}

void lora_grads_zero(Lora *a) {
    for (int i = 0; i < a->n_mods; i++) {
        LoraModule *m = &a->mods[i];
        if (m->ddown) memset(m->ddown, 0, down_numel(m) * sizeof(float));
        if (m->dup) memset(m->dup, 0, up_numel(m) * sizeof(float));
    }
}

double lora_grads_sumsq(const Lora *a) {
    double s = 0;
    for (int i = 0; i < a->n_mods; i++) {
        const LoraModule *m = &a->mods[i];
        size_t nd = m->ddown ? down_numel(m) : 0, nu = m->dup ? up_numel(m) : 0;
        for (size_t j = 0; j < nd; j++) s += (double)m->ddown[j] * m->ddown[j];
        for (size_t j = 0; j < nu; j++) s += (double)m->dup[j] * m->dup[j];
    }
    return s;
}
