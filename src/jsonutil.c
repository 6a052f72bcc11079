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

static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

int json_require(const cJSON *o, const char *path, const char *key) {
    if (!field(o, key)) return ls_set_error("%s: missing required key '%s'", path, key);
    return 0;
}

static int as_int(const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d != floor(d) || d < -2147483648.0 || d > 2147483647.0) return -1;
    *out = (int)d;
    return 0;
}

int json_get_int(const cJSON *o, const char *path, const char *key, int *out) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (as_int(v, out) < 0) return ls_set_error("%s: key '%s' must be an integer", path, key);
    return 0;
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

int json_get_int_array(const cJSON *o, const char *path, const char *key, int *out, int cap, int *n,
                       int allow_scalar) {
    const cJSON *v = field(o, key);
    if (!v) return 0;
    if (allow_scalar && cJSON_IsNumber(v)) {
        if (as_int(v, &out[0]) < 0) return ls_set_error("%s: key '%s' must be an integer", path, key);
        *n = -1; /* scalar: caller broadcasts */
        return 0;
    }
    if (!cJSON_IsArray(v)) return ls_set_error("%s: key '%s' must be a list of integers", path, key);
    int k = cJSON_GetArraySize(v);
    if (k < 1 || k > cap) return ls_set_error("%s: key '%s' must have 1 to %d entries", path, key, cap);
    for (int i = 0; i < k; i++)
        if (as_int(cJSON_GetArrayItem(v, i), &out[i]) < 0)
            return ls_set_error("%s: key '%s' must be a list of integers", path, key);
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
