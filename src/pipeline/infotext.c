/* infotext.c — see infotext.h. */
#include "infotext.h"

#include <ctype.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common.h" // defines: ls_set_error, mallocCheck, strdupCheck

static int is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; } /* \w, UTF-8 bytes too */
static int is_key(unsigned char c) { return is_word(c) || c == ' ' || c == '-' || c == '/'; }

/* A1111's re_param, r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', matched at s: returns the end
 * of the match (past the ',') or NULL; key/value spans go to k, kn, v, vn. */
static const char *match_param(const char *s, const char **k, size_t *kn, const char **v, size_t *vn) {
    while (isspace((unsigned char)*s)) s++;
    if (!is_word((unsigned char)*s)) return NULL;
    const char *e = s + 1;
    while (is_key((unsigned char)*e)) e++;
    if (e - s < 2 || *e != ':') return NULL;
    *k = s, *kn = (size_t)(e - s);
    s = e + 1;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '"') { /* a quoted value counts only when followed by ',' or the end */
        const char *q = s + 1;
        while (*q && *q != '"') q += q[0] == '\\' && q[1] ? 2 : 1;
        if (*q == '"' && q > s + 1 && (q[1] == ',' || q[1] == 0)) {
            *v = s, *vn = (size_t)(q + 1 - s);
            return q[1] ? q + 2 : q + 1;
        }
    }
    const char *c = strchr(s, ',');
    *v = s, *vn = c ? (size_t)(c - s) : strlen(s);
    return c ? c + 1 : s + *vn;
}

/* Number of re_param matches in line (findall: on a failed match, move on by one character). */
static int count_params(const char *line) {
    int n = 0;
    const char *k, *v;
    size_t kn, vn;
    for (const char *s = line; *s;) {
        const char *e = match_param(s, &k, &kn, &v, &vn);
        if (e) n++, s = e;
        else s++;
    }
    return n;
}

/* Append line (stripped) to *dst with a "\n" between lines. */
static void append_line(char **dst, const char *line, size_t n) {
    while (n && isspace((unsigned char)*line)) line++, n--;
    while (n && isspace((unsigned char)line[n - 1])) n--;
    size_t old = *dst ? strlen(*dst) : 0;
    char *s = realloc(*dst, old + n + 2);
    LS_ASSERT(s);
    if (old) s[old++] = '\n';
    memcpy(s + old, line, n);
    s[old + n] = 0;
    *dst = s;
}

static char *span_dup(const char *s, size_t n) {
    char *d = mallocCheck(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

int infotext_parse(InfoText *it, const char *text) {
    memset(it, 0, sizeof *it);
    /* x.strip().split("\n"): the last line is the settings line if it has ≥ 3 fields */
    while (isspace((unsigned char)*text)) text++;
    size_t len = strlen(text);
    while (len && isspace((unsigned char)text[len - 1])) len--;
    char *all = span_dup(text, len);
    char *last = strrchr(all, '\n');
    char *settings = last ? last + 1 : all;
    if (count_params(settings) < 3) settings = NULL;
    else if (last) *last = 0;
    int negative = 0;
    for (char *line = settings == all ? NULL : all, *next; line; line = next) {
        next = strchr(line, '\n');
        size_t n = next ? (size_t)(next - line) : strlen(line);
        if (next) next++;
        while (n && isspace((unsigned char)*line)) line++, n--; /* line.strip() before the test */
        if (n >= 16 && !strncmp(line, "Negative prompt:", 16)) negative = 1, line += 16, n -= 16;
        append_line(negative ? &it->negative : &it->prompt, line, n);
    }
    int rc = LS_OK;
    const char *k, *v;
    size_t kn, vn;
    for (const char *s = settings; s && *s && rc == LS_OK;) {
        const char *e = match_param(s, &k, &kn, &v, &vn);
        if (!e) {
            s++;
            continue;
        }
        s = e;
        if (it->n == INFOTEXT_MAX_FIELDS) {
            rc = ls_set_error("more than %d settings", INFOTEXT_MAX_FIELDS);
            break;
        }
        char *val = span_dup(v, vn);
        if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') { /* json.loads, as A1111's unquote */
            cJSON *j = cJSON_Parse(val);
            free(val);
            val = cJSON_IsString(j) ? strdupCheck(j->valuestring) : NULL;
            cJSON_Delete(j);
            if (!val) {
                rc = ls_set_error("setting '%.*s': malformed quoted value %.*s", (int)kn, k, (int)vn, v);
                break;
            }
        }
        it->key[it->n] = span_dup(k, kn);
        it->value[it->n++] = val;
    }
    free(all);
    if (!it->prompt) it->prompt = strdupCheck("");
    if (!it->negative) it->negative = strdupCheck("");
    return rc;
}

const char *infotext_get(const InfoText *it, const char *key) {
    for (int i = it->n - 1; i >= 0; i--)
        if (!strcmp(it->key[i], key)) return it->value[i];
    return NULL;
}

void infotext_free(InfoText *it) {
    free(it->prompt);
    free(it->negative);
    for (int i = 0; i < it->n; i++) free(it->key[i]), free(it->value[i]);
    memset(it, 0, sizeof *it);
}

char *infotext_quote(const char *value) {
    if (!strpbrk(value, ",:\n")) return strdupCheck(value);
    cJSON *s = cJSON_CreateString(value);
    char *q = cJSON_PrintUnformatted(s); /* non-ASCII stays UTF-8, as json.dumps(ensure_ascii=False) */
    cJSON_Delete(s);
    LS_ASSERT(q);
    return q;
}
