#define _POSIX_C_SOURCE 200809L
#include "util/testutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef RWKV_SHARED_DEFAULT
#define RWKV_SHARED_DEFAULT "../shared"
#endif
#ifndef RWKV_TMP_DEFAULT
#define RWKV_TMP_DEFAULT "/tmp"
#endif
#ifndef RWKV_CLI_DEFAULT
#define RWKV_CLI_DEFAULT "rwkv"
#endif

int tu_failures;
int tu_checks;

void tu_check_err(rwkv_status got, rwkv_status want, const struct rwkv_error *err, const char *needle,
                  const char *file, int line)
{
    tu_checks++;
    if (got != want) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected %s, got %s (%s)\n", file, line, rwkv_status_name(want),
                rwkv_status_name(got), err ? err->message : "");
        return;
    }
    if (needle && err && !strstr(err->message, needle)) {
        tu_failures++;
        fprintf(stderr, "%s:%d: error message lacks \"%s\": %s\n", file, line, needle, err->message);
    }
}

int tu_finish(const char *name)
{
    if (tu_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    fprintf(stderr, "%s: %d checks, %d failures\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

/* Each path helper has its own ring of buffers, so that a tu_tmp() path held across tu_shared() calls
 * can never turn into a shared path (which a test might then overwrite or remove). */
#define RING 64
static char *rotate(char (*bufs)[4096], int *k)
{
    return bufs[(*k)++ & (RING - 1)];
}

const char *tu_shared(const char *rel)
{
    static char bufs[RING][4096];
    static int k;
    const char *base = getenv("RWKV_SHARED");
    char *b = rotate(bufs, &k);
    snprintf(b, 4096, "%s/%s", base && *base ? base : RWKV_SHARED_DEFAULT, rel);
    return b;
}

const char *tu_tmp(const char *name)
{
    static char bufs[RING][4096];
    static int k;
    const char *base = getenv("RWKV_TMP");
    char *b = rotate(bufs, &k);
    snprintf(b, 4096, "%s/%ld-%s", base && *base ? base : RWKV_TMP_DEFAULT, (long)getpid(), name);
    return b;
}

const char *tu_cli(void)
{
    const char *c = getenv("RWKV_CLI");
    return c && *c ? c : RWKV_CLI_DEFAULT;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

struct json *tu_load_json(const char *path)
{
    size_t n;
    char *text = tu_read_file(path, &n);
    if (!text) {
        fprintf(stderr, "cannot read %s (set RWKV_SHARED to the shared folder)\n", path);
        exit(1);
    }
    struct json *j;
    struct rwkv_error err;
    if (json_parse(text, n, path, &j, &err)) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    free(text);
    return j;
}

float *tu_json_floats(const struct json *arr, size_t *n)
{
    if (!arr || arr->type != JSON_ARRAY)
        return NULL;
    float *out = malloc((arr->len ? arr->len : 1) * sizeof *out);
    for (size_t i = 0; out && i < arr->len; i++)
        out[i] = (float)arr->items[i].number;
    *n = arr->len;
    return out;
}

int32_t *tu_json_ints(const struct json *arr, size_t *n)
{
    if (!arr || arr->type != JSON_ARRAY)
        return NULL;
    int32_t *out = malloc((arr->len ? arr->len : 1) * sizeof *out);
    for (size_t i = 0; out && i < arr->len; i++)
        out[i] = (int32_t)arr->items[i].number;
    *n = arr->len;
    return out;
}

int tu_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}
