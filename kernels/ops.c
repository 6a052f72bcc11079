/* ops.c — the backend handle: which op table the op_* wrappers of ops.h call, and which backends this binary
 * can run here (the CUDA backend only when the program links it and a GPU is present). */
#include "ops.h"
#include "pool.h" // defines: pool_trim

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The CUDA backend (kernels/cuda, library lscuda) is linked only into the programs that use it; these weak
 * references are NULL in the others, which then never load the CUDA libraries. */
extern const OpTable op_table_cuda __attribute__((weak));
int ops_cuda_present(void) __attribute__((weak));

const OpTable *ls_ops = &op_table_cpu;

const OpTable *const *ops_backends(void) {
    static const OpTable *all[3] = {&op_table_cpu, NULL, NULL};
    if (&op_table_cuda && ops_cuda_present && ops_cuda_present()) all[1] = &op_table_cuda;
    return all;
}

int ops_select(const char *name) {
    if (!strcmp(name, "ref")) return ls_ops = &op_table_ref, 0;
    for (const OpTable *const *b = ops_backends(); *b; b++)
        if (!strcmp((*b)->name, name)) return ls_ops = *b, 0;
    return -1;
}

void *op_alloc_failed(size_t bytes) {
    fprintf(stderr, "lorastyle: out of memory: %zu MiB on the %s backend\n", bytes >> 20, ls_ops->name);
    abort();
}

/* The CUDA module's path: $LORASTYLE_CUDA_LIB, else liblscuda.so in this executable's folder. */
static void cuda_module_path(char *buf, size_t cap) {
    const char *env = getenv("LORASTYLE_CUDA_LIB");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) slash[1] = 0;
    else snprintf(exe, sizeof exe, "./");
    snprintf(buf, cap, "%sliblscuda.so", exe);
}

int ops_use_device(const char *device, char *why, size_t cap) {
    pool_trim(); /* an empty pool's slab came from the previous backend's memory */
    int autod = !strcmp(device, "auto");
    if (!strcmp(device, "cpu")) return ls_ops = &op_table_cpu, 0;
    if (!autod && strcmp(device, "cuda")) return snprintf(why, cap, "--device %s: cpu, cuda or auto", device), -1;
    const OpTable *cuda = &op_table_cuda; /* linked in (test programs) */
    int (*present)(void) = ops_cuda_present;
    if (!cuda) {
        char path[4200];
        cuda_module_path(path, sizeof path);
        if (access(path, R_OK) != 0) {
            if (autod) return ls_ops = &op_table_cpu, 0;
            return snprintf(why, cap, "--device cuda: this lorastyle has no CUDA backend (%s is missing: build it "
                            "where the CUDA toolkit is installed)", path), -1;
        }
        /* no NVIDIA device node: no GPU, and no need to load the CUDA libraries to learn it */
        if (access("/dev/nvidiactl", F_OK) != 0 && access("/dev/nvidia0", F_OK) != 0 &&
            !getenv("LORASTYLE_CUDA_LIB")) {
            if (autod) return ls_ops = &op_table_cpu, 0;
            return snprintf(why, cap, "--device cuda: no NVIDIA GPU on this machine (no /dev/nvidia0)"), -1;
        }
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) return snprintf(why, cap, "--device %s: cannot load %s: %s", device, path, dlerror()), -1;
        cuda = (const OpTable *)dlsym(h, "op_table_cuda");
        present = (int (*)(void))dlsym(h, "ops_cuda_present");
        if (!cuda || !present)
            return snprintf(why, cap, "--device %s: %s is not lorastyle's CUDA backend", device, path), -1;
    }
    if (!present || !present()) {
        if (autod) return ls_ops = &op_table_cpu, 0;
        return snprintf(why, cap, "--device cuda: no CUDA GPU answers (cudaGetDeviceCount)"), -1;
    }
    ls_ops = cuda;
    return 0;
}
