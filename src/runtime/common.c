/* common.c — see common.h. */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

char *ls_strdup_check(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = ls_malloc_check(n, file, line);
    memcpy(p, s, n);
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

void ls_buf_add(LsBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = LS_MAX(2 * b->cap, b->len + n + 1024);
        b->s = realloc(b->s, b->cap);
        LS_ASSERT(b->s);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void ls_buf_str(LsBuf *b, const char *s) { ls_buf_add(b, s, strlen(s)); }

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

int ls_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? LS_OK : ls_set_error("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return ls_set_error("%s: cannot open folder: %s", path, strerror(errno));
        int rc = LS_OK;
        for (struct dirent *e; rc == LS_OK && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *c = ls_path_join(path, e->d_name);
            rc = ls_remove_tree(c);
            free(c);
        }
        closedir(d);
        if (rc == LS_OK && rmdir(path) != 0) rc = ls_set_error("%s: cannot remove: %s", path, strerror(errno));
        return rc;
    }
    if (unlink(path) != 0) return ls_set_error("%s: cannot remove: %s", path, strerror(errno));
    return LS_OK;
}

/* The PID of a "NAME.tmp.PID" name (0: not such a name). */
static long tmp_pid(const char *name) {
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p;
    if (!t || t == name || !t[5]) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    return (*end || pid <= 0 || t[5] < '0' || t[5] > '9') ? 0 : pid;
}

static int pid_running(long pid) { return kill((pid_t)pid, 0) == 0 || errno == EPERM; }

int ls_remove_stale_tmp(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char *c = ls_path_join(dir, e->d_name);
        long pid = tmp_pid(e->d_name);
        struct stat st;
        if (pid && !pid_running(pid)) n += ls_remove_tree(c) == LS_OK;
        else if (depth > 0 && lstat(c, &st) == 0 && S_ISDIR(st.st_mode)) n += ls_remove_stale_tmp(c, depth - 1);
        free(c);
    }
    closedir(d);
    return n;
}

char *ls_dir_begin(const char *out) {
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') n--;
    char *tmp = mallocCheck(n + 32);
    snprintf(tmp, n + 32, "%.*s", (int)n, out);
    char *sl = strrchr(tmp, '/');
    const char *base = sl ? sl + 1 : tmp;
    /* stale siblings "base.tmp.PID" of killed runs */
    char *parent = sl ? strndup(tmp, sl == tmp ? 1 : (size_t)(sl - tmp)) : strdup(".");
    LS_ASSERT(parent);
    DIR *d = opendir(parent);
    size_t bl = strlen(base);
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, base, bl) && !strncmp(e->d_name + bl, ".tmp.", 5) && tmp_pid(e->d_name) &&
            !pid_running(tmp_pid(e->d_name))) {
            char *c = ls_path_join(parent, e->d_name);
            ls_remove_tree(c);
            free(c);
        }
    if (d) closedir(d);
    free(parent);
    snprintf(tmp + n, 32, ".tmp.%d", (int)getpid());
    if (ls_remove_tree(tmp) < 0 || ls_mkdir_p(tmp) < 0) {
        free(tmp);
        return NULL;
    }
    return tmp;
}

int ls_dir_commit(char *tmp, const char *out, int rc) {
    if (rc >= 0 && rename(tmp, out) != 0)
        rc = ls_set_error("%s: cannot move the finished folder into place: %s", out, strerror(errno));
    if (rc < 0) { /* the error names out, not the temporary folder that is gone */
        char err[1024];
        size_t tl = strlen(tmp);
        const char *e = ls_last_error();
        if (!strncmp(e, tmp, tl)) snprintf(err, sizeof err, "%s%s", out, e + tl);
        else snprintf(err, sizeof err, "%s", e);
        ls_remove_tree(tmp);
        ls_set_error("%s", err);
    }
    free(tmp);
    return rc;
}
