/* common.c — see common.h. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char g_last_error[1024]; /* per-thread last error (flux2.c style) */

int ls_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    return LS_ERR;
}

int ls_error_context(const char *fmt, ...) {
    char buf[sizeof g_last_error];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k + 2 < sizeof buf) {
        buf[k] = ':';
        buf[k + 1] = ' ';
        memcpy(buf + k + 2, g_last_error, sizeof buf - (size_t)k - 2);
        buf[sizeof buf - 1] = 0;
    }
    memcpy(g_last_error, buf, sizeof buf);
    return LS_ERR;
}

const char *ls_last_error(void) { return g_last_error[0] ? g_last_error : "unknown error"; }
void ls_clear_error(void) { g_last_error[0] = 0; }

void ls_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lorastyle: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *ls_malloc_check(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "lorastyle: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
        abort();
    }
    return p;
}

char *ls_strdup_check(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = ls_malloc_check(n, file, line);
    memcpy(p, s, n);
    return p;
}

void *ls_calloc_check(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "lorastyle: out of memory allocating %zu x %zu bytes at %s:%d\n", n, sz, file,
                line);
        abort();
    }
    return p;
}

double ls_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t ls_peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

char *ls_read_file(const char *path, size_t *len) {
    /* O_NONBLOCK + fstat: a FIFO or folder is an error, never a hang or a giant allocation */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        ls_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        ls_set_error("%s: not a regular file", path);
        return NULL;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = mallocCheck(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            free(buf);
            ls_set_error("%s: read error%s", path, r == 0 ? " (file shrank while reading)" : "");
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int ls_write_file_atomic(const char *path, const void *data, size_t len) {
    size_t plen = strlen(path) + 32;
    char *tmp = mallocCheck(plen);
    snprintf(tmp, plen, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        ls_set_error("%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return LS_ERR;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            ls_set_error("%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return LS_ERR;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        ls_set_error("%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return LS_ERR;
    }
    if (rename(tmp, path) != 0) {
        ls_set_error("%s: cannot rename temporary file: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return LS_ERR;
    }
    free(tmp);
    return LS_OK;
}

char *ls_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = mallocCheck(la + lb + 2);
    memcpy(s, a, la);
    size_t k = la;
    if (la > 0 && a[la - 1] != '/') s[k++] = '/';
    memcpy(s + k, b, lb + 1);
    return s;
}

int ls_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ls_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ls_mkdir_p(const char *path) {
    char *p = strdup(path);
    if (!p) return ls_set_error("out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            ls_set_error("%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return LS_ERR;
        }
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        ls_set_error("%s: cannot create directory: %s", p, strerror(errno));
        free(p);
        return LS_ERR;
    }
    free(p);
    if (!ls_is_dir(path)) return ls_set_error("%s: exists and is not a directory", path);
    return LS_OK;
}
