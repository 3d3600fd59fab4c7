/* The RWKV World tokenizer: vocabulary readers (the official .txt of Python literals and web-rwkv's JSON)
 * and a byte trie for encoding. Encoding is the official TRIE_TOKENIZER rule: at each position emit the
 * longest vocabulary entry that is a prefix of the remaining bytes.
 *
 * The trie is stored breadth first so that a node's children are contiguous and sorted by byte. Nodes
 * with many children (the root, the first bytes of common words) get a 256-entry table; the rest, which
 * are most nodes, are scanned, since they hold only a handful of children. */
#include "text/tokenizer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"
#include "core/platform.h"
#include "io/json.h"

/* Nodes with at least this many children get a 256-entry child table. */
#define DENSE_MIN 12

struct tok_span {
    uint32_t off, len; /* bytes pool[off, off + len); len 0: no token has this id */
};

struct trie_node {
    int32_t id;     /* the token that ends here, -1 if none */
    int32_t dense;  /* row of `dense` holding this node's children, -1 if they are scanned */
    uint32_t first; /* children are nodes [first, first + count), sorted by label */
    uint32_t count;
};

struct rwkv_tokenizer {
    uint8_t *pool;           /* every token's bytes */
    struct tok_span *spans;  /* [n_ids] */
    size_t n_ids;            /* highest id + 1 */
    struct trie_node *nodes; /* [n_nodes], 0 is the root */
    uint8_t *labels;         /* [n_nodes] the byte that leads into each node */
    uint32_t *dense;         /* [n_dense][256] child per byte; 0 = none (the root is nobody's child) */
    size_t n_nodes, n_dense;
};

/* ---- building a vocabulary ---------------------------------------------------------------------- */

/* Tokens are collected here in file order, then frozen into a tokenizer by builder_finish. */
struct builder {
    const char *what; /* the path, for messages */
    int json;         /* locations count JSON object entries rather than lines */
    uint8_t *pool;
    size_t pool_len, pool_cap;
    struct tok_span *spans; /* [cap_ids] */
    size_t *where;          /* [cap_ids] the line (or entry) that defined each id */
    size_t n_ids, cap_ids, n_tokens;
};

static rwkv_status bfail(const struct builder *b, size_t where, struct rwkv_error *err, const char *fmt, ...)
    RWKV_PRINTF(4, 5);

/* A format error at a line ("path:12: why") or JSON entry ("path: entry 12: why"). */
static rwkv_status bfail(const struct builder *b, size_t where, struct rwkv_error *err, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (b->json)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: entry %zu: %s", b->what, where, why);
    return rwkv_fail(err, RWKV_ERR_FORMAT, "%s:%zu: %s", b->what, where, why);
}

static rwkv_status nomem(const char *what, struct rwkv_error *err)
{
    return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory building the tokenizer", what);
}

/* Room for `max` more bytes at the end of the pool, at *o; the caller writes there, then commits. */
static rwkv_status builder_reserve(struct builder *b, size_t max, uint8_t **o, struct rwkv_error *err)
{
    size_t need;
    if (!rwkv_add_size(b->pool_len, max, &need) || need >= UINT32_MAX)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: vocabulary larger than 4 GiB", b->what);
    if (need + 1 > b->pool_cap) {
        size_t cap = b->pool_cap ? b->pool_cap : 1 << 16;
        while (cap < need + 1)
            cap *= 2; /* need < 4 GiB, so this cannot overflow */
        uint8_t *p = realloc(b->pool, cap);
        if (!p)
            return nomem(b->what, err);
        b->pool = p;
        b->pool_cap = cap;
    }
    *o = b->pool + b->pool_len;
    return RWKV_OK;
}

static rwkv_status builder_grow_ids(struct builder *b, size_t min_cap, struct rwkv_error *err)
{
    size_t cap = b->cap_ids ? b->cap_ids : 1024;
    while (cap < min_cap)
        cap *= 2; /* min_cap <= RWKV_TOKENIZER_MAX_ID + 1 */
    struct tok_span *spans = realloc(b->spans, cap * sizeof *spans);
    if (!spans)
        return nomem(b->what, err);
    b->spans = spans;
    size_t *where = realloc(b->where, cap * sizeof *where);
    if (!where)
        return nomem(b->what, err);
    b->where = where;
    memset(spans + b->cap_ids, 0, (cap - b->cap_ids) * sizeof *spans);
    memset(where + b->cap_ids, 0, (cap - b->cap_ids) * sizeof *where);
    b->cap_ids = cap;
    return RWKV_OK;
}

/* Adds token `id` whose `len` bytes were written at builder_reserve's pointer. */
static rwkv_status builder_commit(struct builder *b, size_t where, int64_t id, size_t len, struct rwkv_error *err)
{
    if (id < 0 || id > RWKV_TOKENIZER_MAX_ID)
        return bfail(b, where, err, "token id %lld outside [0, %d]", (long long)id, RWKV_TOKENIZER_MAX_ID);
    if (len == 0)
        return bfail(b, where, err, "token %lld is empty", (long long)id);
    if ((size_t)id >= b->cap_ids) {
        rwkv_status st = builder_grow_ids(b, (size_t)id + 1, err);
        if (st)
            return st;
    }
    if (b->spans[id].len)
        return bfail(b, where, err, "duplicate token id %lld (first at %s %zu)", (long long)id,
                     b->json ? "entry" : "line", b->where[id]);
    b->spans[id] = (struct tok_span){(uint32_t)b->pool_len, (uint32_t)len};
    b->where[id] = where;
    b->pool_len += len;
    b->n_tokens++;
    if ((size_t)id >= b->n_ids)
        b->n_ids = (size_t)id + 1;
    return RWKV_OK;
}

static rwkv_status builder_add(struct builder *b, size_t where, int64_t id, const void *bytes, size_t len,
                               struct rwkv_error *err)
{
    uint8_t *o = NULL;
    rwkv_status st = builder_reserve(b, len, &o, err);
    if (st)
        return st;
    memcpy(o, bytes, len);
    return builder_commit(b, where, id, len, err);
}

static void builder_free(struct builder *b)
{
    free(b->pool);
    free(b->spans);
    free(b->where);
}

/* ---- the trie ----------------------------------------------------------------------------------- */

struct sorted_tok {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
};

struct build_range {
    uint32_t lo, hi, depth; /* sorted tokens [lo, hi) all start with this node's `depth` bytes */
};

static int cmp_tok(const void *pa, const void *pb)
{
    const struct sorted_tok *a = pa, *b = pb;
    int c = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Every token, sorted by bytes: a prefix sorts before its extensions, so each trie node's own token is
 * the first of its range. Two ids with the same bytes would make encoding ambiguous: refused. */
static rwkv_status sort_tokens(const struct rwkv_tokenizer *t, const struct builder *b, struct sorted_tok **out,
                               struct rwkv_error *err)
{
    struct sorted_tok *toks = malloc(b->n_tokens * sizeof *toks);
    if (!toks)
        return nomem(b->what, err);
    size_t k = 0;
    for (size_t id = 0; id < t->n_ids; id++)
        if (t->spans[id].len)
            toks[k++] = (struct sorted_tok){t->pool + t->spans[id].off, t->spans[id].len, (int32_t)id};
    qsort(toks, k, sizeof *toks, cmp_tok);
    for (size_t i = 1; i < k; i++) {
        if (cmp_tok(&toks[i - 1], &toks[i]) == 0) {
            int32_t a = toks[i - 1].id, c = toks[i].id;
            int32_t later = b->where[a] > b->where[c] ? a : c, first = later == a ? c : a;
            free(toks);
            return bfail(b, b->where[later], err, "token %d has the same bytes as token %d (%s %zu)", later,
                         first, b->json ? "entry" : "line", b->where[first]);
        }
    }
    *out = toks;
    return RWKV_OK;
}

/* Gives node u a 256-entry child table. */
static rwkv_status trie_add_dense(struct rwkv_tokenizer *t, size_t *cap, uint32_t u, const char *what,
                                  struct rwkv_error *err)
{
    if (t->n_dense == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        uint32_t *d = realloc(t->dense, ncap * 256 * sizeof *d);
        if (!d)
            return nomem(what, err);
        t->dense = d;
        *cap = ncap;
    }
    struct trie_node *n = &t->nodes[u];
    uint32_t *row = t->dense + t->n_dense * 256;
    memset(row, 0, 256 * sizeof *row);
    for (uint32_t k = 0; k < n->count; k++)
        row[t->labels[n->first + k]] = n->first + k;
    n->dense = (int32_t)t->n_dense++;
    return RWKV_OK;
}

/* Breadth first: node u's range is split by the byte at its depth into children appended at the end,
 * so every node's children are contiguous. There are at most pool_len + 1 nodes (one per distinct
 * prefix). */
static rwkv_status trie_fill(struct rwkv_tokenizer *t, const struct sorted_tok *toks, size_t n_toks,
                             struct build_range *ranges, const char *what, struct rwkv_error *err)
{
    size_t dense_cap = 0;
    ranges[0] = (struct build_range){0, (uint32_t)n_toks, 0};
    t->labels[0] = 0;
    t->n_nodes = 1;
    for (size_t u = 0; u < t->n_nodes; u++) {
        struct build_range r = ranges[u];
        struct trie_node *n = &t->nodes[u];
        n->id = -1;
        if (r.lo < r.hi && toks[r.lo].len == r.depth)
            n->id = toks[r.lo++].id;
        n->first = (uint32_t)t->n_nodes;
        n->count = 0;
        n->dense = -1;
        for (uint32_t i = r.lo, j; i < r.hi; i = j) {
            uint8_t c = toks[i].p[r.depth];
            for (j = i + 1; j < r.hi && toks[j].p[r.depth] == c; j++)
                ;
            t->labels[t->n_nodes] = c;
            ranges[t->n_nodes++] = (struct build_range){i, j, r.depth + 1};
            n->count++;
        }
        if (u == 0 || n->count >= DENSE_MIN) {
            rwkv_status st = trie_add_dense(t, &dense_cap, (uint32_t)u, what, err);
            if (st)
                return st;
        }
    }
    return RWKV_OK;
}

static rwkv_status trie_build(struct rwkv_tokenizer *t, const struct builder *b, struct rwkv_error *err)
{
    struct sorted_tok *toks = NULL;
    rwkv_status st = sort_tokens(t, b, &toks, err);
    if (st)
        return st;
    size_t cap = b->pool_len + 1;
    struct build_range *ranges = malloc(cap * sizeof *ranges);
    t->nodes = malloc(cap * sizeof *t->nodes);
    t->labels = malloc(cap);
    if (!ranges || !t->nodes || !t->labels)
        st = nomem(b->what, err);
    else
        st = trie_fill(t, toks, b->n_tokens, ranges, b->what, err);
    free(ranges);
    free(toks);
    return st;
}

static inline uint32_t trie_child(const struct rwkv_tokenizer *t, uint32_t u, uint8_t c)
{
    const struct trie_node *n = &t->nodes[u];
    if (n->dense >= 0)
        return t->dense[(size_t)n->dense * 256 + c];
    const uint8_t *lab = t->labels + n->first;
    for (uint32_t k = 0; k < n->count && lab[k] <= c; k++)
        if (lab[k] == c)
            return n->first + k;
    return 0;
}

/* The longest token that prefixes s[0, n): its id and length, or -1. */
static int32_t longest_match(const struct rwkv_tokenizer *t, const uint8_t *s, size_t n, size_t *len)
{
    int32_t best = -1;
    size_t best_len = 0;
    uint32_t u = 0;
    for (size_t i = 0; i < n; i++) {
        u = trie_child(t, u, s[i]);
        if (!u)
            break;
        if (t->nodes[u].id >= 0) {
            best = t->nodes[u].id;
            best_len = i + 1;
        }
    }
    *len = best_len;
    return best;
}

static rwkv_status builder_finish(struct builder *b, struct rwkv_tokenizer **out, struct rwkv_error *err)
{
    if (b->n_tokens == 0)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: no tokens in the vocabulary", b->what);
    struct rwkv_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return nomem(b->what, err);
    t->pool = b->pool;
    t->spans = b->spans;
    t->n_ids = b->n_ids;
    b->pool = NULL;
    b->spans = NULL;
    rwkv_status st = trie_build(t, b, err);
    if (st) {
        rwkv_tokenizer_free(t);
        return st;
    }
    *out = t;
    return RWKV_OK;
}

/* ---- the .txt form: `<id> <Python str or bytes literal> <byte length>` per line ----------------- */

/* Digits only (no sign, no spaces), at most `max`. Advances *pp. */
static int parse_decimal(const uint8_t **pp, const uint8_t *end, int64_t max, int64_t *out)
{
    const uint8_t *p = *pp;
    int64_t v = 0;
    if (p == end || *p < '0' || *p > '9')
        return 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > max)
            return 0;
    }
    *pp = p;
    *out = v;
    return 1;
}

static int parse_hex(const uint8_t **pp, const uint8_t *end, int digits, uint32_t *out)
{
    const uint8_t *p = *pp;
    uint32_t v = 0;
    if (end - p < digits)
        return 0;
    for (int i = 0; i < digits; i++, p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0'
              : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
              : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint32_t)d;
    }
    *pp = p;
    *out = v;
    return 1;
}

/* Length of the well-formed UTF-8 sequence at p (no overlongs, surrogates or values past U+10FFFF),
 * or 0: Python reads the file as UTF-8 and would refuse it. */
static size_t utf8_len(const uint8_t *p, const uint8_t *end)
{
    size_t n;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)))
        return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        return 0;
    return n;
}

/* One backslash escape of a Python literal, at *pp (the backslash). A str literal's escapes name code
 * points, written as UTF-8 ('\xe4' is U+00E4, two bytes); a bytes literal's name bytes. Escapes Python
 * would keep verbatim (with a warning) are refused: in a vocabulary they mean a corrupted file. */
static rwkv_status parse_escape(const struct builder *b, size_t line, const uint8_t **pp, const uint8_t *end,
                                int is_bytes, uint8_t *o, size_t *k, struct rwkv_error *err)
{
    const uint8_t *p = *pp + 1;
    if (p == end)
        return bfail(b, line, err, "backslash at the end of the line");
    uint8_t c = *p++;
    uint32_t v;
    switch (c) {
    case '\\': case '\'': case '"': v = c; break;
    case 'a': v = '\a'; break;
    case 'b': v = '\b'; break;
    case 'f': v = '\f'; break;
    case 'n': v = '\n'; break;
    case 'r': v = '\r'; break;
    case 't': v = '\t'; break;
    case 'v': v = '\v'; break;
    case 'x':
        if (!parse_hex(&p, end, 2, &v))
            return bfail(b, line, err, "bad escape: \\x needs two hex digits");
        break;
    case 'u':
    case 'U':
        if (is_bytes)
            return bfail(b, line, err, "bad escape: \\%c in a bytes literal", c);
        if (!parse_hex(&p, end, c == 'u' ? 4 : 8, &v))
            return bfail(b, line, err, "bad escape: \\%c needs %d hex digits", c, c == 'u' ? 4 : 8);
        if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
            return bfail(b, line, err, "bad escape: %.*s is not encodable as UTF-8", (int)(p - *pp), (const char *)*pp);
        break;
    default:
        if (c < '0' || c > '7') {
            if (c > ' ' && c < 0x7f)
                return bfail(b, line, err, "bad escape \\%c", c);
            return bfail(b, line, err, "bad escape: backslash before byte 0x%02x", c);
        }
        v = c - '0';
        for (int i = 0; i < 2 && p < end && *p >= '0' && *p <= '7'; i++)
            v = v * 8 + (uint32_t)(*p++ - '0');
        if (is_bytes && v > 0xff)
            return bfail(b, line, err, "bad escape: octal \\%o above \\377 in a bytes literal", (unsigned)v);
    }
    if (is_bytes)
        o[(*k)++] = (uint8_t)v;
    else
        *k += rwkv_utf8_put(o + *k, v);
    *pp = p;
    return RWKV_OK;
}

/* A Python str ('...', "...") or bytes (b'...') literal at *pp, decoded into o (room for end - *pp
 * bytes: no escape or character decodes to more bytes than it is written with). */
static rwkv_status parse_literal(const struct builder *b, size_t line, const uint8_t **pp, const uint8_t *end,
                                 uint8_t *o, size_t *len, struct rwkv_error *err)
{
    const uint8_t *p = *pp;
    int is_bytes = p < end && (*p == 'b' || *p == 'B');
    p += is_bytes;
    if (p == end || (*p != '\'' && *p != '"'))
        return bfail(b, line, err, "expected a quoted Python str or bytes literal after the id");
    uint8_t quote = *p++;
    size_t k = 0;
    for (;;) {
        if (p == end)
            return bfail(b, line, err, "missing closing quote");
        uint8_t c = *p;
        if (c == quote) {
            p++;
            break;
        }
        if (c == '\\') {
            rwkv_status st = parse_escape(b, line, &p, end, is_bytes, o, &k, err);
            if (st)
                return st;
            continue;
        }
        if (c == 0 || c == '\r')
            return bfail(b, line, err, "raw byte 0x%02x inside the literal", c);
        if (c >= 0x80 && is_bytes)
            return bfail(b, line, err, "non-ASCII byte 0x%02x in a bytes literal", c);
        size_t n = utf8_len(p, end);
        if (!n)
            return bfail(b, line, err, "invalid UTF-8 in the literal");
        memcpy(o + k, p, n);
        k += n;
        p += n;
    }
    *pp = p;
    *len = k;
    return RWKV_OK;
}

static const uint8_t *skip_blanks(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static rwkv_status parse_txt_line(struct builder *b, size_t line, const uint8_t *p, const uint8_t *end,
                                  struct rwkv_error *err)
{
    if (end > p && end[-1] == '\r')
        end--;
    if (skip_blanks(p, end) == end)
        return RWKV_OK; /* blank lines (the end of the file) */
    int64_t id, want;
    if (!parse_decimal(&p, end, RWKV_TOKENIZER_MAX_ID, &id))
        return bfail(b, line, err, "bad token id (want a decimal number up to %d)", RWKV_TOKENIZER_MAX_ID);
    if (p == end || *p != ' ')
        return bfail(b, line, err, "expected a space after the token id");
    p = skip_blanks(p, end);
    uint8_t *o = NULL;
    size_t len = 0;
    rwkv_status st = builder_reserve(b, (size_t)(end - p), &o, err);
    if (!st)
        st = parse_literal(b, line, &p, end, o, &len, err);
    if (st)
        return st;
    if (p == end)
        return bfail(b, line, err, "missing byte length after the literal");
    if (*p != ' ' && *p != '\t')
        return bfail(b, line, err, "unexpected text after the literal's closing quote");
    p = skip_blanks(p, end);
    if (!parse_decimal(&p, end, INT32_MAX, &want) || skip_blanks(p, end) != end)
        return bfail(b, line, err, "bad byte length field (want a decimal number at the end of the line)");
    if ((size_t)want != len)
        return bfail(b, line, err, "byte length field says %lld but the literal has %zu bytes", (long long)want, len);
    return builder_commit(b, line, id, len, err);
}

static rwkv_status parse_txt(struct builder *b, const uint8_t *s, size_t n, struct rwkv_error *err)
{
    size_t line = 0;
    for (size_t pos = 0; pos < n;) {
        const uint8_t *nl = memchr(s + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - s) : n;
        rwkv_status st = parse_txt_line(b, ++line, s + pos, s + end, err);
        if (st)
            return st;
        pos = end + 1;
    }
    return RWKV_OK;
}

/* ---- the JSON form ------------------------------------------------------------------------------ */

/* web-rwkv's vocabulary maps ids to a string or an array of byte values ({"257": "\t\t", "128": [128]});
 * the transposed {"token": id} form (the Hugging Face vocab.json shape) is accepted too. */
static rwkv_status parse_json_entry(struct builder *b, size_t where, const char *key, size_t key_len,
                                    const struct json *v, struct rwkv_error *err)
{
    int64_t id;
    if (v->type == JSON_NUMBER) {
        if (!json_is_int(v, &id))
            return bfail(b, where, err, "token id is not an integer");
        return builder_add(b, where, id, key, key_len, err);
    }
    const uint8_t *p = (const uint8_t *)key;
    if (!parse_decimal(&p, p + key_len, RWKV_TOKENIZER_MAX_ID, &id) || p != (const uint8_t *)key + key_len)
        return bfail(b, where, err, "key is not a token id up to %d (and the value is not a number)",
                     RWKV_TOKENIZER_MAX_ID);
    if (v->type == JSON_STRING)
        return builder_add(b, where, id, v->string, v->len, err);
    if (v->type != JSON_ARRAY)
        return bfail(b, where, err, "token %lld: expected a string or an array of byte values", (long long)id);
    uint8_t *o = NULL;
    rwkv_status st = builder_reserve(b, v->len, &o, err);
    if (st)
        return st;
    for (size_t i = 0; i < v->len; i++) {
        int64_t x;
        if (!json_is_int(&v->items[i], &x) || x < 0 || x > 255)
            return bfail(b, where, err, "token %lld: item %zu is not a byte value (0..255)", (long long)id, i);
        o[i] = (uint8_t)x;
    }
    return builder_commit(b, where, id, v->len, err);
}

static rwkv_status parse_json_vocab(struct builder *b, const uint8_t *s, size_t n, struct rwkv_error *err)
{
    struct json *root;
    rwkv_status st = json_parse((const char *)s, n, b->what, &root, err);
    if (st)
        return st;
    if (root->type != JSON_OBJECT)
        st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: expected a JSON object of id -> token", b->what);
    for (size_t i = 0; !st && i < root->len; i++)
        st = parse_json_entry(b, i + 1, root->keys[i], root->key_lens[i], &root->items[i], err);
    json_free(root);
    return st;
}

/* ---- public API --------------------------------------------------------------------------------- */

rwkv_status rwkv_tokenizer_parse(const uint8_t *data, size_t n, const char *what, struct rwkv_tokenizer **out,
                                 struct rwkv_error *err)
{
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_parse: out is NULL");
    *out = NULL;
    if (!data && n)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_parse: data is NULL");
    struct builder b = {.what = what ? what : "vocabulary"};
    size_t i = 0;
    while (i < n && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    b.json = i < n && data[i] == '{';
    rwkv_status st = b.json ? parse_json_vocab(&b, data, n, err) : parse_txt(&b, data, n, err);
    if (!st)
        st = builder_finish(&b, out, err);
    builder_free(&b);
    return st;
}

rwkv_status rwkv_tokenizer_load(const char *path, struct rwkv_tokenizer **out, struct rwkv_error *err)
{
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_load: out is NULL");
    *out = NULL;
    struct rwkv_file_map map;
    rwkv_status st = rwkv_map_file(path, &map, err);
    if (st)
        return st;
    st = rwkv_tokenizer_parse(map.data, map.size, path, out, err);
    rwkv_unmap_file(&map);
    return st;
}

rwkv_status rwkv_tokenizer_new_bytes(struct rwkv_tokenizer **out, struct rwkv_error *err)
{
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_new_bytes: out is NULL");
    *out = NULL;
    struct builder b = {.what = "byte tokenizer"};
    rwkv_status st = RWKV_OK;
    for (int c = 0; c < 256 && !st; c++) {
        uint8_t byte = (uint8_t)c;
        st = builder_add(&b, (size_t)c + 1, c, &byte, 1, err);
    }
    if (!st)
        st = builder_finish(&b, out, err);
    builder_free(&b);
    return st;
}

void rwkv_tokenizer_free(struct rwkv_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->pool);
    free(tok->spans);
    free(tok->nodes);
    free(tok->labels);
    free(tok->dense);
    free(tok);
}

size_t rwkv_tokenizer_vocab_size(const struct rwkv_tokenizer *tok)
{
    return tok ? tok->n_ids : 0;
}

rwkv_status rwkv_tokenizer_encode(const struct rwkv_tokenizer *tok, const uint8_t *bytes, size_t n, int32_t **ids,
                                  size_t *n_ids, struct rwkv_error *err)
{
    if (!tok || !ids || !n_ids || (!bytes && n))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    /* World text averages 3-4 bytes a token; grow on demand rather than reserve one id per byte */
    size_t cap = n / 4 + 16, k = 0;
    int32_t *out = malloc(cap * sizeof *out);
    if (!out)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory encoding %zu bytes", n);
    for (size_t pos = 0; pos < n;) {
        size_t len;
        int32_t id = longest_match(tok, bytes + pos, n - pos, &len);
        if (id < 0) {
            free(out);
            return rwkv_fail(err, RWKV_ERR_TOKEN, "no token for byte 0x%02x at offset %zu", bytes[pos], pos);
        }
        if (k == cap) {
            int32_t *grown = realloc(out, 2 * cap * sizeof *out); /* cap <= n: cannot overflow */
            if (!grown) {
                free(out);
                return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory encoding %zu bytes", n);
            }
            out = grown;
            cap *= 2;
        }
        out[k++] = id;
        pos += len;
    }
    *ids = out;
    *n_ids = k;
    return RWKV_OK;
}

rwkv_status rwkv_tokenizer_decode(const struct rwkv_tokenizer *tok, const int32_t *ids, size_t n_ids, uint8_t **bytes,
                                  size_t *n_bytes, struct rwkv_error *err)
{
    if (!tok || !bytes || !n_bytes || (!ids && n_ids))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_decode: NULL argument");
    *bytes = NULL;
    *n_bytes = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t len;
        if (!rwkv_tokenizer_token(tok, ids[i], &len))
            return rwkv_fail(err, RWKV_ERR_TOKEN, "token id %lld at index %zu is not in the vocabulary",
                             (long long)ids[i], i);
        if (!rwkv_add_size(total, len, &total) || total == (size_t)-1)
            return rwkv_fail(err, RWKV_ERR_NOMEM, "decoding %zu tokens: the text would not fit in memory", n_ids);
    }
    uint8_t *out = malloc(total + 1);
    if (!out)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory decoding %zu tokens", n_ids);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const struct tok_span *s = &tok->spans[ids[i]];
        memcpy(out + k, tok->pool + s->off, s->len);
        k += s->len;
    }
    out[k] = 0;
    *bytes = out;
    *n_bytes = k;
    return RWKV_OK;
}

const uint8_t *rwkv_tokenizer_token(const struct rwkv_tokenizer *tok, int32_t id, size_t *len)
{
    if (len)
        *len = 0;
    if (!tok || id < 0 || (size_t)id >= tok->n_ids || tok->spans[id].len == 0)
        return NULL;
    if (len)
        *len = tok->spans[id].len;
    return tok->pool + tok->spans[id].off;
}
