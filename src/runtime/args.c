/* args.c — see args.h. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h" // defines: ls_set_error, ls_last_error

int arg_fail(void) {
    fprintf(stderr, "lorastyle: error: %s\n", ls_last_error());
    return 1;
}

int arg_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

int arg_need(int argc, char **argv, int i) {
    if (i + 1 >= argc) return ls_set_error("option %s needs a value", argv[i]);
    return 0;
}

int arg_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return ls_set_error("%s: '%s' is not an integer between %ld and %ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

int arg_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return ls_set_error("%s: '%s' is not a number", opt, s);
    *out = v;
    return 0;
}

int arg_dtype(const char *s, StDtype *dt) {
    if (!strcmp(s, "f32") || !strcmp(s, "fp32")) *dt = ST_F32;
    else if (!strcmp(s, "f16") || !strcmp(s, "fp16")) *dt = ST_F16;
    else if (!strcmp(s, "bf16")) *dt = ST_BF16;
    else return ls_set_error("--dtype '%s': choose f32, f16 or bf16", s);
    return 0;
}

int arg_list(const char *opt, const char *s, float *out, int cap) {
    int n = 0;
    const char *p = s;
    while (1) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char buf[64];
        if (len == 0 || len >= sizeof buf) return ls_set_error("%s '%s': empty or overlong entry", opt, s);
        memcpy(buf, p, len);
        buf[len] = 0;
        if (n == cap) return ls_set_error("%s '%s': more than %d entries", opt, s, cap);
        if (arg_float(opt, buf, &out[n]) < 0) return LS_ERR;
        n++;
        if (!c) break;
        p = c + 1;
    }
    return n;
}
