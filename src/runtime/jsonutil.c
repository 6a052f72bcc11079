/* jsonutil.c — see jsonutil.h. */
#include "jsonutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h" // defines: ls_read_file, ls_set_error

cJSON *json_load_file(const char *path) {
    size_t len;
    char *s = ls_read_file(path, &len);
    if (!s) return NULL;
    cJSON *o = cJSON_ParseWithLength(s, len);
    free(s);
    if (!o) {
        ls_set_error("%s: invalid JSON", path);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        ls_set_error("%s: top level must be a JSON object", path);
        return NULL;
    }
    return o;
}

int json_parse_file(const char *path, int (*parse)(const cJSON *o, const char *path, void *cfg), void *cfg) {
    cJSON *o = json_load_file(path);
    if (!o) return LS_ERR;
    int rc = parse(o, path, cfg);
    cJSON_Delete(o);
    return rc;
}

cJSON *json_diffusers_object(const char *class_name) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", class_name);
    cJSON_AddStringToObject(o, "_diffusers_version", "0.6.0");
    return o;
}

char *json_print_free(cJSON *o) {
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

int json_require(const cJSON *o, const char *path, const char *key) {
    if (!field(o, key)) return ls_set_error("%s: missing required key '%s'", path, key);
    return 0;
}

/* v as an int in [lo, hi]; LS_ERR + "<path>: key '<key>[i]' must be an integer in [lo, hi] (got v)". */
static int int_in(const cJSON *v, const char *path, const char *key, int i, int lo, int hi, int *out) {
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (d == floor(d) && d >= lo && d <= hi) {
        *out = (int)d;
        return LS_OK;
    }
    char idx[16] = "", got[40] = "not a number";
    if (i >= 0) snprintf(idx, sizeof idx, "[%d]", i);
    if (cJSON_IsNumber(v)) snprintf(got, sizeof got, "%.17g", d);
    return ls_set_error("%s: key '%s%s' must be an integer in [%d, %d] (got %s)", path, key, idx, lo, hi,
                        got);
}

int json_get_int(const cJSON *o, const char *path, const char *key, int lo, int hi, int *out) {
    const cJSON *v = field(o, key);
    return v ? int_in(v, path, key, -1, lo, hi, out) : LS_OK;
}

int json_get_float(const cJSON *o, const char *path, const char *key, float *out) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ls_set_error("%s: key '%s' must be a number", path, key);
    *out = (float)v->valuedouble;
    return 0;
}

int json_get_bool(const cJSON *o, const char *path, const char *key, int *out) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return ls_set_error("%s: key '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int json_get_string(const cJSON *o, const char *path, const char *key, char *out, int cap) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return ls_set_error("%s: key '%s' must be a string", path, key);
    if ((int)strlen(v->valuestring) >= cap) return ls_set_error("%s: key '%s' is too long", path, key);
    strcpy(out, v->valuestring);
    return 0;
}

int json_get_int_array(const cJSON *o, const char *path, const char *key, int lo, int hi, int *out, int cap,
                       int *n, int allow_scalar) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (allow_scalar && cJSON_IsNumber(v)) {
        *n = -1; /* scalar: caller broadcasts */
        return int_in(v, path, key, -1, lo, hi, &out[0]);
    }
    if (!cJSON_IsArray(v)) return ls_set_error("%s: key '%s' must be a list of integers", path, key);
    int k = cJSON_GetArraySize(v);
    if (k < 1 || k > cap) return ls_set_error("%s: key '%s' must have 1 to %d entries", path, key, cap);
    for (int i = 0; i < k; i++) LS_TRY(int_in(cJSON_GetArrayItem(v, i), path, key, i, lo, hi, &out[i]));
    *n = k;
    return 0;
}

int json_get_string_array(const cJSON *o, const char *path, const char *key, char out[][64], int cap,
                          int *n) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (!cJSON_IsArray(v)) return ls_set_error("%s: key '%s' must be a list of strings", path, key);
    int k = cJSON_GetArraySize(v);
    if (k < 1 || k > cap) return ls_set_error("%s: key '%s' must have 1 to %d entries", path, key, cap);
    for (int i = 0; i < k; i++) {
        const cJSON *s = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(s) || strlen(s->valuestring) >= 64)
            return ls_set_error("%s: key '%s' must be a list of strings", path, key);
        strcpy(out[i], s->valuestring);
    }
    *n = k;
    return 0;
}

double json_float(float f) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return strtod(buf, NULL);
}
