/* args.h — parsing command-line values: every command (the app's, and the training commands' own option
 * tables) reports a bad value the same way, as one line naming the option and the value. */
#ifndef LS_ARGS_H
#define LS_ARGS_H

#include "safetensors.h" // defines: StDtype

/* Print "lorastyle: error: <last error>" to stderr; returns the exit code 1. */
int arg_fail(void);
int arg_is_help(const char *a);
int arg_need(int argc, char **argv, int i);
int arg_int(const char *opt, const char *s, long lo, long hi, long *out);
int arg_float(const char *opt, const char *s, float *out);
int arg_dtype(const char *s, StDtype *dt);
/* Comma-separated numbers ("0,0.25,0.5"): count or LS_ERR naming the option and the bad field. */
int arg_list(const char *opt, const char *s, float *out, int cap);

#endif
