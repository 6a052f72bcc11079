/* common.h — error handling, checked allocation and small helpers shared by every lorastyle module.
 *
 * Error convention (as in flux2.c): library functions never exit on bad *input*. They return a negative
 * status (or NULL) after recording a one-line message with ls_set_error(); the CLI prints ls_last_error()
 * and exits non-zero. Internal invariants and out-of-memory use the *Check macros, which abort with
 * file:line, because continuing would corrupt state.
 */
#ifndef LS_COMMON_H
#define LS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kbase.h" // defines: mallocCheck, callocCheck, LS_ASSERT, LS_MIN, LS_MAX (the kernels' share)

#define LS_OK 0
#define LS_ERR (-1)

/* Record a printf-style message as the thread's last error; always returns LS_ERR. */
int ls_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current last error with "prefix: " (adds context on the way up); returns LS_ERR. */
int ls_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ls_last_error(void);
void ls_clear_error(void);

/* Warnings go to stderr with a "lorastyle: warning:" prefix. */
void ls_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

char *ls_strdup_check(const char *s, const char *file, int line);
#define strdupCheck(s) ls_strdup_check((s), __FILE__, __LINE__)

/* Return early with LS_ERR when a call that follows the error convention fails. */
#define LS_TRY(call)                   \
    do {                               \
        if ((call) < 0) return LS_ERR; \
    } while (0)

#define CEIL_DIV(a, b) (((a) + (b)-1) / (b))

/* Monotonic wall clock in seconds. */
double ls_time(void);
/* Peak resident set size of this process in bytes (getrusage). */
size_t ls_peak_rss(void);

/* A growable byte string, NUL-terminated once anything is added: start from {0}, append with ls_buf_add and
 * ls_buf_str, free(b.s) at the end. */
typedef struct {
    char *s;
    size_t len, cap;
} LsBuf;
/* Append n bytes of s (aborts when out of memory). */
void ls_buf_add(LsBuf *b, const char *s, size_t n);
/* Append the string s. */
void ls_buf_str(LsBuf *b, const char *s);

/* Read a whole file into a NUL-terminated buffer (*len excludes the NUL). NULL + error on failure. */
char *ls_read_file(const char *path, size_t *len);
/* Write a buffer atomically: write "path.tmp.PID", fsync, rename. LS_ERR + error naming path. */
int ls_write_file_atomic(const char *path, const void *data, size_t len);
/* Join two path parts with '/', into a malloc'd string. */
char *ls_path_join(const char *a, const char *b);
int ls_file_exists(const char *path);
int ls_is_dir(const char *path);
/* mkdir -p; LS_ERR + error on failure. */
int ls_mkdir_p(const char *path);
/* Remove a file, or a folder with everything in it (links are removed, never followed). LS_ERR + error. */
int ls_remove_tree(const char *path);
/* Remove what killed writers left under dir (and `depth` levels of subfolders): files and folders named
 * "NAME.tmp.PID" (ls_write_file_atomic's and ls_dir_begin's temporaries) whose PID is no running process.
 * Returns how many were removed. */
int ls_remove_stale_tmp(const char *dir, int depth);
/* Write a whole folder or nothing: ls_dir_begin creates the empty sibling "out.tmp.PID" (after removing
 * stale ones of killed runs) and returns its malloc'd path, or NULL + error; write into it, then
 * ls_dir_commit renames it to out (which must not exist, or be an empty folder) when rc ≥ 0, or removes
 * it when rc < 0 (keeping the error). Frees tmp; returns rc, or LS_ERR when the rename fails. */
char *ls_dir_begin(const char *out);
int ls_dir_commit(char *tmp, const char *out, int rc);

#endif
