/* fuzz_util.h — helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c, header-only).
 *
 * Most readers take a path, so a harness writes its input to a file in a scratch folder of its own
 * process ("/dev/shm/lorastyle-fuzz-<harness>.<pid>", made on first use, removed at exit) and calls the
 * real entry point on it: what is fuzzed is exactly what the CLI runs. /dev/shm (memory) when there is
 * one, else /tmp: rewriting a small file on ext4 took 4.7 ms here (truncation flushes), on tmpfs 40 µs. Every harness also builds with
 * replay_main.c instead of libFuzzer, into a plain program that ctest runs over the regression inputs. */
#ifndef LS_FUZZ_UTIL_H
#define LS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h" // defines: ls_mkdir_p, ls_remove_tree, ls_path_join

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *fuzz_dir_path; /* the process's scratch folder (one per harness process) */

static inline void fuzz_dir_remove(void) {
    ls_remove_tree(fuzz_dir_path);
}

/* The scratch folder, made on the first call; name tells harnesses apart in /tmp. Aborts if it cannot
 * be made (nothing else could be fuzzed). */
static inline const char *fuzz_dir(const char *name) {
    if (fuzz_dir_path) return fuzz_dir_path;
    char buf[256];
    snprintf(buf, sizeof buf, "%s/lorastyle-fuzz-%s.%d", ls_is_dir("/dev/shm") ? "/dev/shm" : "/tmp", name,
             (int)getpid());
    ls_remove_tree(buf); /* a leftover of an earlier process with the same pid */
    if (ls_mkdir_p(buf) < 0) {
        fprintf(stderr, "fuzz: %s\n", ls_last_error());
        abort();
    }
    fuzz_dir_path = strdup(buf);
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* Write data to dir/name (plain write: the readers under test must see exactly these bytes); returns the
 * malloc'd path. Aborts on a write error (the disk, not the code under test). */
static inline char *fuzz_write(const char *dir, const char *name, const uint8_t *data, size_t size) {
    char *path = ls_path_join(dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
    return path;
}

/* data as a malloc'd NUL-terminated string (an embedded NUL ends it early, as it would in a file read). */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
