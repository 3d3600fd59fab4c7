#include "io/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"

#define JSON_MAX_DEPTH 64

struct parser {
    const char *s;
    size_t n, pos;
    const char *what;
    struct rwkv_error *err;
    int depth;
};

static rwkv_status perr(struct parser *p, const char *why)
{
    return rwkv_fail(p->err, RWKV_ERR_FORMAT, "%s: JSON error at byte %zu: %s", p->what, p->pos, why);
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static void free_contents(struct json *j)
{
    if (!j)
        return;
    free(j->string);
    if (j->type == JSON_ARRAY || j->type == JSON_OBJECT) {
        for (size_t i = 0; i < j->len; i++) {
            free_contents(&j->items[i]);
            if (j->keys)
                free(j->keys[i]);
        }
        free(j->items);
        free(j->keys);
        free(j->key_lens);
    }
}

void json_free(struct json *j)
{
    free_contents(j);
    free(j);
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* Parses a string at p->pos (which is at '"'). Decoded output is never longer than the input. */
static rwkv_status parse_string(struct parser *p, char **out, size_t *out_len)
{
    p->pos++; /* opening quote */
    size_t start = p->pos;
    size_t end = start;
    while (end < p->n && p->s[end] != '"') {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= p->n)
        return perr(p, "unterminated string");
    char *o = malloc(end - start + 1);
    if (!o)
        return rwkv_fail(p->err, RWKV_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
    size_t k = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            free(o);
            return perr(p, "control character in string");
        }
        if (c != '\\') {
            o[k++] = (char)c;
            p->pos++;
            continue;
        }
        char e = p->s[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (p->pos + 4 > end || !hex4(p->s + p->pos, &cp)) {
                free(o);
                return perr(p, "bad \\u escape");
            }
            p->pos += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u' &&
                    hex4(p->s + p->pos + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    p->pos += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                /* a lone surrogate is kept as its 3-byte (WTF-8) form, like lenient parsers do */
            }
            k += rwkv_utf8_put((uint8_t *)o + k, cp);
            break;
        }
        default:
            free(o);
            p->pos -= 1;
            return perr(p, "bad escape");
        }
    }
    o[k] = '\0';
    p->pos = end + 1;
    *out = o;
    *out_len = k;
    return RWKV_OK;
}

static rwkv_status parse_number(struct parser *p, double *out)
{
    size_t i = p->pos;
    if (i < p->n && p->s[i] == '-')
        i++;
    if (i >= p->n)
        return perr(p, "bad number");
    if (p->s[i] == '0')
        i++;
    else if (p->s[i] >= '1' && p->s[i] <= '9')
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    else
        return perr(p, "bad number");
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9')
            return perr(p, "bad number");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9')
            return perr(p, "bad number");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    char buf[64];
    size_t len = i - p->pos;
    if (len >= sizeof buf) {
        /* long digit strings: strtod needs a terminated copy */
        char *tmp = malloc(len + 1);
        if (!tmp)
            return rwkv_fail(p->err, RWKV_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
        memcpy(tmp, p->s + p->pos, len);
        tmp[len] = '\0';
        *out = strtod(tmp, NULL);
        free(tmp);
    } else {
        memcpy(buf, p->s + p->pos, len);
        buf[len] = '\0';
        *out = strtod(buf, NULL);
    }
    p->pos = i;
    return RWKV_OK;
}

static rwkv_status parse_value(struct parser *p, struct json *j);

static rwkv_status grow(struct parser *p, struct json *j, size_t *cap, int with_keys)
{
    if (j->len < *cap)
        return RWKV_OK;
    size_t nc = *cap ? *cap * 2 : 4;
    struct json *ni = realloc(j->items, nc * sizeof *ni);
    if (!ni)
        return rwkv_fail(p->err, RWKV_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
    j->items = ni;
    if (with_keys) {
        char **nk = realloc(j->keys, nc * sizeof *nk);
        if (!nk)
            return rwkv_fail(p->err, RWKV_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
        j->keys = nk;
        size_t *nl = realloc(j->key_lens, nc * sizeof *nl);
        if (!nl)
            return rwkv_fail(p->err, RWKV_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
        j->key_lens = nl;
    }
    *cap = nc;
    return RWKV_OK;
}

static rwkv_status parse_container(struct parser *p, struct json *j, int is_object)
{
    char close = is_object ? '}' : ']';
    size_t cap = 0;
    j->type = is_object ? JSON_OBJECT : JSON_ARRAY;
    if (++p->depth > JSON_MAX_DEPTH)
        return perr(p, "nesting too deep");
    p->pos++;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return RWKV_OK;
    }
    for (;;) {
        rwkv_status st = grow(p, j, &cap, is_object);
        if (st)
            return st;
        struct json *item = &j->items[j->len];
        memset(item, 0, sizeof *item);
        if (is_object) {
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != '"')
                return perr(p, "expected a string key");
            char *key;
            size_t klen;
            if ((st = parse_string(p, &key, &klen)))
                return st;
            j->keys[j->len] = key;
            j->key_lens[j->len] = klen;
            j->len++; /* counted now so that the key is freed on error */
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':')
                return perr(p, "expected ':'");
            p->pos++;
        } else {
            j->len++;
        }
        if ((st = parse_value(p, item)))
            return st;
        skip_ws(p);
        if (p->pos >= p->n)
            return perr(p, "unexpected end of input");
        char c = p->s[p->pos++];
        if (c == close)
            break;
        if (c != ',')
            return perr(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->depth--;
    return RWKV_OK;
}

static int match_word(struct parser *p, const char *w)
{
    size_t l = strlen(w);
    if (p->n - p->pos >= l && memcmp(p->s + p->pos, w, l) == 0) {
        p->pos += l;
        return 1;
    }
    return 0;
}

static rwkv_status parse_value(struct parser *p, struct json *j)
{
    skip_ws(p);
    if (p->pos >= p->n)
        return perr(p, "unexpected end of input");
    char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_container(p, j, 1);
    case '[': return parse_container(p, j, 0);
    case '"':
        j->type = JSON_STRING;
        return parse_string(p, &j->string, &j->len);
    case 't':
    case 'f':
    case 'n':
        if (match_word(p, "true")) {
            j->type = JSON_BOOL;
            j->number = 1;
        } else if (match_word(p, "false")) {
            j->type = JSON_BOOL;
        } else if (match_word(p, "null")) {
            j->type = JSON_NULL;
        } else {
            return perr(p, "unexpected word");
        }
        return RWKV_OK;
    default:
        j->type = JSON_NUMBER;
        return parse_number(p, &j->number);
    }
}

rwkv_status json_parse(const char *text, size_t n, const char *what, struct json **out, struct rwkv_error *err)
{
    *out = NULL;
    struct parser p = {.s = text, .n = n, .what = what ? what : "JSON", .err = err};
    struct json *j = calloc(1, sizeof *j);
    if (!j)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory parsing JSON", p.what);
    rwkv_status st = parse_value(&p, j);
    if (!st) {
        skip_ws(&p);
        if (p.pos != n)
            st = perr(&p, "trailing characters after the value");
    }
    if (st) {
        json_free(j);
        return st;
    }
    *out = j;
    return RWKV_OK;
}

const struct json *json_get(const struct json *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->len; i++)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0)
            return &obj->items[i];
    return NULL;
}

int json_is_int(const struct json *j, int64_t *out)
{
    if (!j || j->type != JSON_NUMBER)
        return 0;
    double d = j->number;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || floor(d) != d)
        return 0;
    *out = (int64_t)d;
    return 1;
}
