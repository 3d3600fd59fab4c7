#include "tools/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "rwkv %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

int cli_parse_float(const char *s, float *out)
{
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return 0;
    *out = (float)v;
    return 1;
}

int cli_parse_ids(const char *s, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!s)
        return 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return 0;
    size_t k = 0;
    const char *p = s;
    if (*p) {
        for (;;) {
            if (*p < '0' || *p > '9') {
                free(v);
                return 0;
            }
            long long x = 0;
            while (*p >= '0' && *p <= '9') {
                x = x * 10 + (*p - '0');
                if (x > INT32_MAX) {
                    free(v);
                    return 0;
                }
                p++;
            }
            v[k++] = (int32_t)x;
            if (*p == '\0')
                break;
            if (*p != ',') {
                free(v);
                return 0;
            }
            p++;
        }
    }
    *ids = v;
    *n = k;
    return 1;
}

int cli_parse_backend(const char *s, enum rwkv_backend *out)
{
    if (!s)
        return 0;
    if (strcmp(s, "cpu") == 0)
        *out = RWKV_BACKEND_CPU;
    else if (strcmp(s, "vulkan") == 0)
        *out = RWKV_BACKEND_VULKAN;
    else if (strcmp(s, "auto") == 0)
        *out = RWKV_BACKEND_AUTO;
    else
        return 0;
    return 1;
}

uint8_t *cli_read_stdin(size_t *n)
{
    size_t cap = 1 << 16, len = 0, got;
    uint8_t *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf && ferror(stdin)) {
        free(buf);
        return NULL;
    }
    if (buf)
        buf[len] = 0;
    *n = len;
    return buf;
}
