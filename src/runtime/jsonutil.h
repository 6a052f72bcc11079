/* jsonutil.h — typed access to config.json fields with clear errors ("<path>: key 'x' must be ..."). */
#ifndef LS_JSONUTIL_H
#define LS_JSONUTIL_H

#include <cjson/cJSON.h>

/* Parse a JSON file whose top level must be an object. NULL + error naming path on failure. */
cJSON *json_load_file(const char *path);
/* json_load_file(path), then parse(o, path, cfg) and free o: parse's result, or LS_ERR when the file is no JSON
 * object (parse then never runs). The skeleton of every config.json loader. */
int json_parse_file(const char *path, int (*parse)(const cJSON *o, const char *path, void *cfg), void *cfg);

/* Each getter: key absent (or null) → *out keeps its default, returns 0; wrong type → LS_ERR.
 * Integers must lie in [lo, hi] (every config dimension has a sane range, so a typo such as
 * "layers_per_block": 2000000000 is an error naming file, key and range, not a failed allocation). */
int json_get_int(const cJSON *o, const char *path, const char *key, int lo, int hi, int *out);
int json_get_float(const cJSON *o, const char *path, const char *key, float *out);
int json_get_bool(const cJSON *o, const char *path, const char *key, int *out);
int json_get_string(const cJSON *o, const char *path, const char *key, char *out, int cap);
/* Array of ints in [lo, hi] (or a single int broadcast when allow_scalar: *n = -1): count in *n (≤ cap). */
int json_get_int_array(const cJSON *o, const char *path, const char *key, int lo, int hi, int *out, int cap,
                       int *n, int allow_scalar);
/* Array of strings: calls fn(i, string, ctx) for each; returns count or LS_ERR. */
int json_get_string_array(const cJSON *o, const char *path, const char *key, char out[][64], int cap,
                          int *n);

/* A new object holding a diffusers config's header: "_class_name": class_name, "_diffusers_version": "0.6.0". */
cJSON *json_diffusers_object(const char *class_name);
/* cJSON_Print(o) (malloc'd), then o deleted: the last step of writing a config. */
char *json_print_free(cJSON *o);

/* A float as the double a person would write (1e-05, not 9.99999974737875e-06), for writing configs. */
double json_float(float f);

/* Require key to be present. */
int json_require(const cJSON *o, const char *path, const char *key);

#endif
