/* PyTorch checkpoints: the reader on the five shared .pth files and on small hand-built archives (valid
 * and hostile), the web-rwkv converter, and `rwkv convert`.
 * With RWKV_PTH_SEEDS=DIR set, the valid hand-built archives are also written to DIR (fuzzer seeds). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/tensor_table.h"
#include "model/convert.h"
#include "util/testutil.h"

static const char *const versions[] = {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-1m", "7v0-834K"};
#define N_VERSIONS (sizeof versions / sizeof versions[0])

/* ---- byte buffers ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_le(struct buf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(b, &c, 1);
    }
}

static void op(struct buf *b, uint8_t o)
{
    put(b, &o, 1);
}

static void set_le(struct buf *b, size_t at, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b->p[at + i] = (uint8_t)(v >> (8 * i));
}

/* ---- pickle writer (the opcodes torch.save uses, protocol 2) ---- */

static void pk_str(struct buf *b, const char *s)
{
    op(b, 'X');
    put_le(b, strlen(s), 4);
    put(b, s, strlen(s));
}

static void pk_int(struct buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        op(b, 'K');
        put_le(b, (uint64_t)v, 1);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        op(b, 'J');
        put_le(b, (uint64_t)v, 4);
    } else {
        op(b, 0x8a);
        put_le(b, 8, 1);
        put_le(b, (uint64_t)v, 8);
    }
}

static void pk_global(struct buf *b, const char *mod, const char *name)
{
    op(b, 'c');
    put(b, mod, strlen(mod));
    op(b, '\n');
    put(b, name, strlen(name));
    op(b, '\n');
}

struct tspec {
    const char *name, *cls, *key;
    int64_t numel, offset;
    int ndim;
    int64_t size[6], stride[6];
};

static void pk_ints(struct buf *b, const int64_t *v, int n)
{
    op(b, '(');
    for (int i = 0; i < n; i++)
        pk_int(b, v[i]);
    op(b, 't');
}

/* _rebuild_tensor_v2(('storage', cls, key, 'cpu', numel), offset, size, stride, False, OrderedDict()) */
static void pk_tensor(struct buf *b, const struct tspec *t)
{
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '(');
    op(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", t->cls);
    pk_str(b, t->key);
    pk_str(b, "cpu");
    pk_int(b, t->numel);
    op(b, 't');
    op(b, 'Q');
    pk_int(b, t->offset);
    pk_ints(b, t->size, t->ndim);
    pk_ints(b, t->stride, t->ndim);
    op(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, 't');
    op(b, 'R');
}

static void pk_state_dict(struct buf *b, const struct tspec *t, size_t n)
{
    op(b, 0x80);
    op(b, 2);
    op(b, '}');
    op(b, '(');
    for (size_t i = 0; i < n; i++) {
        pk_str(b, t[i].name);
        pk_tensor(b, &t[i]);
    }
    op(b, 'u');
    op(b, '.');
}

/* ---- zip writer (stored entries, optionally zip64 for every size and offset) ---- */

struct zent {
    char name[64];
    const void *data;
    size_t len;
};

struct zip_layout {
    size_t cd_off, end_off; /* central directory, end-of-central-directory record */
    size_t local[8];        /* local header offsets */
};

static void zip_local(struct buf *b, const struct zent *e)
{
    put_le(b, 0x04034b50, 4);
    put_le(b, 20, 2);
    put_le(b, 0, 2); /* flags */
    put_le(b, 0, 2); /* method: stored */
    put_le(b, 0, 4); /* time, date */
    put_le(b, 0, 4); /* crc (not checked) */
    put_le(b, e->len, 4);
    put_le(b, e->len, 4);
    put_le(b, strlen(e->name), 2);
    put_le(b, 0, 2);
    put(b, e->name, strlen(e->name));
    put(b, e->data, e->len);
}

static void zip_central(struct buf *b, const struct zent *e, size_t local, int zip64)
{
    uint64_t big = 0xffffffffu;
    put_le(b, 0x02014b50, 4);
    put_le(b, 20, 2);
    put_le(b, 20, 2);
    put_le(b, 0, 2);
    put_le(b, 0, 2);
    put_le(b, 0, 4);
    put_le(b, 0, 4);
    put_le(b, zip64 ? big : e->len, 4);
    put_le(b, zip64 ? big : e->len, 4);
    put_le(b, strlen(e->name), 2);
    put_le(b, zip64 ? 28 : 0, 2);
    put_le(b, 0, 2); /* comment */
    put_le(b, 0, 2); /* disk */
    put_le(b, 0, 2);
    put_le(b, 0, 4);
    put_le(b, zip64 ? big : local, 4);
    put(b, e->name, strlen(e->name));
    if (zip64) { /* usize, csize, offset */
        put_le(b, 1, 2);
        put_le(b, 24, 2);
        put_le(b, e->len, 8);
        put_le(b, e->len, 8);
        put_le(b, local, 8);
    }
}

static void build_zip(struct buf *b, const struct zent *e, size_t n, int zip64, struct zip_layout *lay)
{
    for (size_t i = 0; i < n; i++) {
        lay->local[i] = b->n;
        zip_local(b, &e[i]);
    }
    lay->cd_off = b->n;
    for (size_t i = 0; i < n; i++)
        zip_central(b, &e[i], lay->local[i], zip64);
    size_t cd_size = b->n - lay->cd_off;
    if (zip64) {
        size_t rec = b->n;
        put_le(b, 0x06064b50, 4);
        put_le(b, 44, 8);
        put_le(b, 45, 2);
        put_le(b, 45, 2);
        put_le(b, 0, 4);
        put_le(b, 0, 4);
        put_le(b, n, 8);
        put_le(b, n, 8);
        put_le(b, cd_size, 8);
        put_le(b, lay->cd_off, 8);
        put_le(b, 0x07064b50, 4);
        put_le(b, 0, 4);
        put_le(b, rec, 8);
        put_le(b, 1, 4);
    }
    lay->end_off = b->n;
    put_le(b, 0x06054b50, 4);
    put_le(b, 0, 4);
    put_le(b, zip64 ? 0xffff : n, 2);
    put_le(b, zip64 ? 0xffff : n, 2);
    put_le(b, zip64 ? 0xffffffffu : cd_size, 4);
    put_le(b, zip64 ? 0xffffffffu : lay->cd_off, 4);
    put_le(b, 0, 2);
}

/* ---- the standard small checkpoint ---- */

static const float st_f32[6] = {1, 2, 3, 4, 5, 6};
static const uint16_t st_f16[4] = {0x3c00, 0x4000, 0xc200, 0x3555}; /* 1, 2, -3, ~1/3 */
static const uint16_t st_bf16[4] = {0x3f80, 0x4000, 0xc040, 0x3eab}; /* 1, 2, -3, ~1/3 */

static const struct tspec std_specs[] = {
    {"w", "FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}},
    {"wt", "FloatStorage", "0", 6, 0, 2, {3, 2}, {1, 3}}, /* a transposed view: copied */
    {"tail", "FloatStorage", "0", 6, 3, 1, {3}, {1}},     /* shares storage 0 */
    {"h", "HalfStorage", "1", 4, 0, 1, {4}, {1}},
    {"b", "BFloat16Storage", "2", 4, 0, 2, {2, 2}, {2, 1}},
    {"scalar", "FloatStorage", "0", 6, 5, 0, {0}, {0}},
};
#define N_STD (sizeof std_specs / sizeof std_specs[0])

/* archive/data.pkl, archive/byteorder, archive/data/{0,1,2} */
static void build_ckpt(struct buf *out, const struct buf *pkl, int zip64, struct zip_layout *lay)
{
    struct zent e[5] = {{"archive/data.pkl", pkl->p, pkl->n},
                        {"archive/byteorder", "little", 6},
                        {"archive/data/0", st_f32, sizeof st_f32},
                        {"archive/data/1", st_f16, sizeof st_f16},
                        {"archive/data/2", st_bf16, sizeof st_bf16}};
    struct zip_layout scratch;
    build_zip(out, e, 5, zip64, lay ? lay : &scratch);
}

/* Parses bytes as a table that owns a copy of them (freed by rwkv_table_free, like a read file). */
static rwkv_status parse_bytes(const uint8_t *p, size_t n, struct rwkv_tensor_table *t, struct rwkv_error *err)
{
    memset(t, 0, sizeof *t);
    t->path = strdup("mem.pth");
    uint8_t *copy = malloc(n ? n : 1);
    if (!t->path || !copy) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memcpy(copy, p, n);
    t->map.data = copy;
    t->map.size = n;
    return rwkv_pth_parse(t, err);
}

static rwkv_status try_bytes(const uint8_t *p, size_t n, struct rwkv_error *err)
{
    struct rwkv_tensor_table t;
    rwkv_status st = parse_bytes(p, n, &t, err);
    rwkv_table_free(&t);
    return st;
}

static rwkv_status try_pickle(const struct buf *pkl, struct rwkv_error *err)
{
    struct buf z = {0};
    build_ckpt(&z, pkl, 0, NULL);
    rwkv_status st = try_bytes(z.p, z.n, err);
    free(z.p);
    return st;
}

static rwkv_status try_specs(const struct tspec *specs, size_t n, struct rwkv_error *err)
{
    struct buf pkl = {0};
    pk_state_dict(&pkl, specs, n);
    rwkv_status st = try_pickle(&pkl, err);
    free(pkl.p);
    return st;
}

static void save_seed(const char *name, const struct buf *b)
{
    const char *dir = getenv("RWKV_PTH_SEEDS");
    char path[4096];
    if (!dir || !*dir)
        return;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(tu_write_file(path, b->p, b->n));
}

/* ---- tests: the hand-built checkpoint ---- */

static void check_std_table(const struct rwkv_tensor_table *t, const char *what)
{
    CHECK_MSG(t->n_tensors == N_STD, "%s: %zu tensors", what, t->n_tensors);
    if (t->n_tensors != N_STD)
        return;
    static const float wt[6] = {1, 4, 2, 5, 3, 6};
    const struct rwkv_tensor *w = rwkv_table_get(t, "w"), *x = rwkv_table_get(t, "wt");
    const struct rwkv_tensor *tail = rwkv_table_get(t, "tail"), *h = rwkv_table_get(t, "h");
    const struct rwkv_tensor *b = rwkv_table_get(t, "b"), *s = rwkv_table_get(t, "scalar");
    CHECK(w && x && tail && h && b && s);
    if (!w || !x || !tail || !h || !b || !s)
        return;
    CHECK(w->dtype == RWKV_DTYPE_F32 && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 && w->nbytes == 24);
    CHECK(x->ndim == 2 && x->shape[0] == 3 && x->shape[1] == 2);
    for (size_t i = 0; i < 6; i++) {
        CHECK(rwkv_tensor_get_f32(w, i) == st_f32[i]);
        CHECK(rwkv_tensor_get_f32(x, i) == wt[i]);
    }
    CHECK(tail->nbytes == 12 && rwkv_tensor_get_f32(tail, 0) == 4 && rwkv_tensor_get_f32(tail, 2) == 6);
    CHECK(tail->data == w->data + 12); /* views of one storage point into the mapping */
    CHECK(w->data >= t->map.data && w->data + w->nbytes <= t->map.data + t->map.size);
    /* only the strided view was copied */
    CHECK(t->n_owned == 1 && (const void *)t->owned[0] == (const void *)x->data);
    CHECK(h->dtype == RWKV_DTYPE_F16 && rwkv_tensor_get_f32(h, 2) == -3.0f);
    CHECK(b->dtype == RWKV_DTYPE_BF16 && b->shape[0] == 2 && rwkv_tensor_get_f32(b, 1) == 2.0f);
    CHECK(s->ndim == 0 && s->nbytes == 4 && rwkv_tensor_get_f32(s, 0) == 6.0f);
}

static void test_small_valid(void)
{
    struct buf pkl = {0}, z = {0}, z64 = {0};
    pk_state_dict(&pkl, std_specs, N_STD);
    build_ckpt(&z, &pkl, 0, NULL);
    build_ckpt(&z64, &pkl, 1, NULL);
    struct rwkv_tensor_table t;
    struct rwkv_error err;
    CHECK_ERR(parse_bytes(z.p, z.n, &t, &err), RWKV_OK, &err, NULL);
    check_std_table(&t, "zip");
    rwkv_table_free(&t);
    CHECK_ERR(parse_bytes(z64.p, z64.n, &t, &err), RWKV_OK, &err, NULL);
    check_std_table(&t, "zip64");
    rwkv_table_free(&t);
    save_seed("small.pth", &z);
    save_seed("small64.pth", &z64);
    free(pkl.p);
    free(z.p);
    free(z64.p);
}

/* Protocol 4 style: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, and an OrderedDict root with the
 * _metadata state (BUILD) that nn.Module.state_dict() attaches, a Parameter, and a LONG1 int. */
static void test_protocol4(void)
{
    struct buf p = {0};
    op(&p, 0x80), op(&p, 4);
    op(&p, 0x95), put_le(&p, 0, 8); /* frame length is only checked against the rest */
    op(&p, 0x8c), put_le(&p, 11, 1), put(&p, "collections", 11), op(&p, 0x94);
    op(&p, 0x8c), put_le(&p, 11, 1), put(&p, "OrderedDict", 11), op(&p, 0x94);
    op(&p, 0x93), op(&p, 0x94), op(&p, ')'), op(&p, 'R'), op(&p, 0x94); /* root dict: memo 3 */
    pk_str(&p, "lin.weight");
    pk_global(&p, "torch._utils", "_rebuild_parameter");
    op(&p, '(');
    struct tspec t = {"", "FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};
    pk_tensor(&p, &t);
    op(&p, 0x88), op(&p, '}'), op(&p, 't'), op(&p, 'R');
    op(&p, 's');
    op(&p, '}'), pk_str(&p, "_metadata"), op(&p, '}'), pk_str(&p, ""), op(&p, '}'), pk_str(&p, "version");
    op(&p, 0x8a), put_le(&p, 1, 1), put_le(&p, 1, 1); /* LONG1 1 */
    op(&p, 's'), op(&p, 's'), op(&p, 's');
    op(&p, 'b'), op(&p, '.');
    struct buf z = {0};
    build_ckpt(&z, &p, 0, NULL);
    struct rwkv_tensor_table tab;
    struct rwkv_error err;
    CHECK_ERR(parse_bytes(z.p, z.n, &tab, &err), RWKV_OK, &err, NULL);
    const struct rwkv_tensor *w = rwkv_table_get(&tab, "lin.weight");
    CHECK(tab.n_tensors == 1 && w && w->shape[1] == 3 && rwkv_tensor_get_f32(w, 5) == 6.0f);
    rwkv_table_free(&tab);
    save_seed("proto4.pth", &z);
    free(p.p);
    free(z.p);
}

/* A training checkpoint {'state_dict': {...}, 'epoch': 3}: the tensors come from 'state_dict'. */
static void test_nested_state_dict(void)
{
    struct buf p = {0};
    op(&p, 0x80), op(&p, 2), op(&p, '}'), op(&p, '(');
    pk_str(&p, "epoch"), pk_int(&p, 3);
    pk_str(&p, "state_dict"), op(&p, '}'), op(&p, '(');
    pk_str(&p, std_specs[0].name), pk_tensor(&p, &std_specs[0]);
    op(&p, 'u'), op(&p, 'u'), op(&p, '.');
    struct buf z = {0};
    build_ckpt(&z, &p, 0, NULL);
    struct rwkv_tensor_table t;
    struct rwkv_error err;
    CHECK_ERR(parse_bytes(z.p, z.n, &t, &err), RWKV_OK, &err, NULL);
    CHECK(t.n_tensors == 1 && rwkv_table_get(&t, "w"));
    rwkv_table_free(&t);
    free(p.p);
    free(z.p);
}

/* ---- tests: hostile archives ---- */

static void test_truncation_and_corruption(void)
{
    struct buf pkl = {0}, z = {0};
    pk_state_dict(&pkl, std_specs, N_STD);
    build_ckpt(&z, &pkl, 0, NULL);
    struct rwkv_error err;
    int all_failed = 1;
    for (size_t cut = 0; cut < z.n; cut++)
        all_failed &= try_bytes(z.p, cut, &err) == RWKV_ERR_FORMAT;
    CHECK_MSG(all_failed, "a truncated archive parsed, or failed with another code");
    /* flipped bytes anywhere: any outcome but a crash (the sanitizer build checks memory) */
    static const uint8_t patterns[] = {0x00, 0xff, 0x80, 0x7f};
    for (size_t i = 0; i < z.n; i++) {
        uint8_t saved = z.p[i];
        for (size_t k = 0; k < sizeof patterns; k++) {
            z.p[i] = patterns[k];
            rwkv_status st = try_bytes(z.p, z.n, &err);
            CHECK(st == RWKV_OK || err.code == st);
            z.p[i] = saved ^ 1;
            try_bytes(z.p, z.n, &err);
        }
        z.p[i] = saved;
    }
    free(pkl.p);
    free(z.p);
}

static void test_real_file_truncated(void)
{
    size_t n;
    char *data = tu_read_file(tu_shared("pth/tiny-rwkv-5v2-730K.pth"), &n);
    CHECK(data != NULL);
    if (!data)
        return;
    struct rwkv_error err;
    int all_failed = 1;
    for (size_t i = 0; i < 300; i++) {
        size_t cut = i < 100 ? n - 1 - i * 7 : (size_t)((double)n * (double)(i - 100) / 200.0);
        all_failed &= try_bytes((const uint8_t *)data, cut, &err) == RWKV_ERR_FORMAT;
    }
    CHECK(all_failed);
    CHECK_ERR(try_bytes((const uint8_t *)data, n - 1, &err), RWKV_ERR_FORMAT, &err, "end-of-central-directory");
    free(data);
}

static void test_bad_zip(void)
{
    struct buf pkl = {0};
    pk_state_dict(&pkl, std_specs, N_STD);
    struct zip_layout lay;
    struct rwkv_error err;
    struct buf z = {0};
    build_ckpt(&z, &pkl, 0, &lay);
    struct buf m = {0};
#define MUTATE(stmt, code, needle)                                                                 \
    do {                                                                                           \
        m.n = 0;                                                                                   \
        put(&m, z.p, z.n);                                                                         \
        stmt;                                                                                      \
        CHECK_ERR(try_bytes(m.p, m.n, &err), code, &err, needle);                                  \
    } while (0)
    size_t cd1 = lay.cd_off + 46 + strlen("archive/data.pkl"); /* second central entry (byteorder) */
    MUTATE(set_le(&m, lay.cd_off, 0x12345678, 4), RWKV_ERR_FORMAT, "central directory entry 0: bad signature");
    MUTATE(set_le(&m, lay.end_off + 16, z.n * 2, 4), RWKV_ERR_FORMAT, "lies outside the archive");
    MUTATE(set_le(&m, lay.end_off + 8, 0xfffe, 2); set_le(&m, lay.end_off + 10, 0xfffe, 2), RWKV_ERR_FORMAT,
           "claims 65534 entries");
    MUTATE(set_le(&m, lay.end_off + 10, 0xffff, 2); set_le(&m, lay.end_off + 8, 0xffff, 2), RWKV_ERR_FORMAT,
           "zip64 markers without a zip64 end record");
    MUTATE(set_le(&m, lay.end_off + 4, 1, 2), RWKV_ERR_UNSUPPORTED, "multi-disk");
    /* deflate in both headers */
    MUTATE(set_le(&m, lay.cd_off + 10, 8, 2); set_le(&m, lay.local[0] + 8, 8, 2), RWKV_ERR_UNSUPPORTED,
           "'archive/data.pkl' is compressed (method 8)");
    MUTATE(set_le(&m, lay.cd_off + 8, 1, 2), RWKV_ERR_UNSUPPORTED, "encrypted");
    /* zip-bomb-like sizes: 4 GB claimed in a few hundred bytes */
    MUTATE(set_le(&m, cd1 + 20, 0xfffffff0u, 4); set_le(&m, cd1 + 24, 0xfffffff0u, 4), RWKV_ERR_FORMAT,
           "4294967280 bytes at offset");
    MUTATE(set_le(&m, cd1 + 20, 0xffffffffu, 4); set_le(&m, cd1 + 24, 0xffffffffu, 4), RWKV_ERR_FORMAT,
           "missing or short zip64 extra field");
    MUTATE(set_le(&m, cd1 + 24, 7, 4), RWKV_ERR_FORMAT, "sizes differ");
    /* data.pkl grown over the next entry's header */
    MUTATE(set_le(&m, lay.cd_off + 20, pkl.n + 40, 4); set_le(&m, lay.cd_off + 24, pkl.n + 40, 4),
           RWKV_ERR_FORMAT, "overlap");
    MUTATE(set_le(&m, cd1 + 42, lay.local[0], 4), RWKV_ERR_FORMAT, "bad local header");
    MUTATE(set_le(&m, cd1 + 42, z.n + 100, 4), RWKV_ERR_FORMAT, "local header offset");
#undef MUTATE
    free(m.p);
    free(z.p);
    free(pkl.p);
}

static void test_archive_contents(void)
{
    struct rwkv_error err;
    struct buf pkl = {0}, z = {0};
    pk_state_dict(&pkl, std_specs, N_STD);
    struct zent no_pickle[1] = {{"archive/data/0", st_f32, sizeof st_f32}};
    struct zip_layout lay;
    build_zip(&z, no_pickle, 1, 0, &lay);
    CHECK_ERR(try_bytes(z.p, z.n, &err), RWKV_ERR_FORMAT, &err, "without '<folder>/data.pkl'");
    z.n = 0;
    struct zent big_endian[3] = {{"a/data.pkl", pkl.p, pkl.n}, {"a/byteorder", "big", 3}, {"a/data/0", st_f32, 24}};
    build_zip(&z, big_endian, 3, 0, &lay);
    CHECK_ERR(try_bytes(z.p, z.n, &err), RWKV_ERR_UNSUPPORTED, &err, "byteorder is 'big'");
    z.n = 0;
    struct zent missing[2] = {{"a/data.pkl", pkl.p, pkl.n}, {"a/data/0", st_f32, 24}};
    build_zip(&z, missing, 2, 0, &lay);
    CHECK_ERR(try_bytes(z.p, z.n, &err), RWKV_ERR_FORMAT, &err, "storage '1' has no zip entry 'a/data/1'");
    z.n = 0;
    struct zent dup[2] = {{"a/data.pkl", pkl.p, pkl.n}, {"a/data.pkl", pkl.p, pkl.n}};
    build_zip(&z, dup, 2, 0, &lay);
    CHECK_ERR(try_bytes(z.p, z.n, &err), RWKV_ERR_FORMAT, &err, "'a/data.pkl' appears twice");
    z.n = 0;
    struct zent odd[2] = {{"a/data.pkl", pkl.p, pkl.n}, {"a/\n\x1b[31m", "", 0}};
    build_zip(&z, odd, 2, 0, &lay);
    set_le(&z, lay.cd_off + 46 + 10 + 10, 8, 2); /* the second entry "deflated" */
    CHECK_ERR(try_bytes(z.p, z.n, &err), RWKV_ERR_UNSUPPORTED, &err, "zip entry 'a/??[31m' is compressed");
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20};
    CHECK_ERR(try_bytes(legacy, sizeof legacy, &err), RWKV_ERR_UNSUPPORTED, &err, "legacy torch.save format");
    CHECK_ERR(try_bytes(legacy, 0, &err), RWKV_ERR_FORMAT, &err, "too short for a zip archive");
    free(z.p);
    free(pkl.p);
}

/* A pickle of just `ops` after PROTO 2 (then STOP if `stop`). */
static rwkv_status try_ops(const char *ops, size_t n, int stop, struct rwkv_error *err)
{
    struct buf p = {0};
    op(&p, 0x80), op(&p, 2);
    put(&p, ops, n);
    if (stop)
        op(&p, '.');
    rwkv_status st = try_pickle(&p, err);
    free(p.p);
    return st;
}

#define TRY_OPS(s, stop, err) try_ops((s), sizeof(s) - 1, (stop), (err))

static void test_bad_pickles(void)
{
    struct rwkv_error err;
    CHECK_ERR(TRY_OPS("}(X\x01\x00\x00\x00" "a" "i", 1, &err), RWKV_ERR_FORMAT, &err,
              "data.pkl offset 10: unsupported pickle opcode 0x69 (INST)");
    CHECK_ERR(TRY_OPS("\xff", 1, &err), RWKV_ERR_FORMAT, &err, "unsupported pickle opcode 0xff (unknown)");
    CHECK_ERR(TRY_OPS("cos\nsystem\n", 1, &err), RWKV_ERR_FORMAT, &err, "unsupported global 'os.system'");
    CHECK_ERR(TRY_OPS("cbuiltins\neval\n", 1, &err), RWKV_ERR_FORMAT, &err, "unsupported global 'builtins.eval'");
    CHECK_ERR(TRY_OPS("ctorch\nFloatStorage\n)R", 1, &err), RWKV_ERR_FORMAT, &err, "cannot call a storage class");
    CHECK_ERR(TRY_OPS("h\x05", 1, &err), RWKV_ERR_FORMAT, &err, "BINGET: memo index 5 is out of range");
    CHECK_ERR(TRY_OPS("}r\xff\xff\xff\xff", 1, &err), RWKV_ERR_FORMAT, &err, "memo index 4294967295 exceeds");
    CHECK_ERR(TRY_OPS("q\x00", 1, &err), RWKV_ERR_FORMAT, &err, "stack underflow");
    CHECK_ERR(TRY_OPS("K\x01\x86", 1, &err), RWKV_ERR_FORMAT, &err, "TUPLE2: stack underflow");
    CHECK_ERR(TRY_OPS("K\x01(\x86", 1, &err), RWKV_ERR_FORMAT, &err, "stack underflow"); /* the mark fences */
    CHECK_ERR(TRY_OPS("t", 1, &err), RWKV_ERR_FORMAT, &err, "no MARK");
    CHECK_ERR(TRY_OPS("", 1, &err), RWKV_ERR_FORMAT, &err, "STOP: stack underflow");
    CHECK_ERR(TRY_OPS("}", 0, &err), RWKV_ERR_FORMAT, &err, "ends without STOP");
    CHECK_ERR(TRY_OPS("X\xff\xff", 0, &err), RWKV_ERR_FORMAT, &err, "runs past the end of data.pkl");
    CHECK_ERR(TRY_OPS("X\x00\x00\x10\x00", 0, &err), RWKV_ERR_FORMAT, &err, "string of 1048576 bytes");
    CHECK_ERR(TRY_OPS("\x8a\x09", 0, &err), RWKV_ERR_FORMAT, &err, "integer of 9 bytes");
    CHECK_ERR(TRY_OPS("]K\x01s", 1, &err), RWKV_ERR_FORMAT, &err, "stack underflow");
    CHECK_ERR(TRY_OPS("]K\x01K\x02s", 1, &err), RWKV_ERR_FORMAT, &err, "target is a list, not a dict");
    CHECK_ERR(TRY_OPS("}(K\x01u", 1, &err), RWKV_ERR_FORMAT, &err, "odd number of items");
    CHECK_ERR(TRY_OPS("]", 1, &err), RWKV_ERR_FORMAT, &err, "holds a list, not a dict of tensors");
    CHECK_ERR(TRY_OPS("}K\x01K\x02s", 1, &err), RWKV_ERR_FORMAT, &err, "key is a int");
    CHECK_ERR(TRY_OPS("}X\x01\x00\x00\x00" "aK\x02s", 1, &err), RWKV_ERR_FORMAT, &err,
              "entry 'a' is not a tensor (int)");
    CHECK_ERR(TRY_OPS("}X\x02\x00\x00\x00" "a\x00" "K\x02s", 1, &err), RWKV_ERR_FORMAT, &err, "NUL byte");
    CHECK_ERR(TRY_OPS("(K\x02tQ", 1, &err), RWKV_ERR_FORMAT, &err, "persistent id is not");
    CHECK_ERR(TRY_OPS("ccollections\nOrderedDict\n(K\x01tR", 1, &err), RWKV_ERR_FORMAT, &err,
              "OrderedDict with 1 arguments");
    CHECK_ERR(TRY_OPS("ctorch._utils\n_rebuild_tensor_v2\n)R", 1, &err), RWKV_ERR_FORMAT, &err,
              "_rebuild_tensor_v2 with 0 arguments");
    CHECK_ERR(TRY_OPS("ctorch._utils\n_rebuild_tensor_v2\nK\x01R", 1, &err), RWKV_ERR_FORMAT, &err,
              "arguments are a int, not a tuple");
    CHECK_ERR(TRY_OPS("cos", 0, &err), RWKV_ERR_FORMAT, &err, "unterminated or overlong name");
    CHECK_ERR(TRY_OPS("\x8c\x03o\ns\x8c\x01x\x93", 1, &err), RWKV_ERR_FORMAT, &err, "unsupported global 'o?s.x'");
    CHECK_ERR(try_ops("\x80\x01", 2, 1, &err), RWKV_ERR_FORMAT, &err, "pickle protocol 1 is not supported");
    CHECK_ERR(TRY_OPS("\x95\xff\x00\x00\x00\x00\x00\x00\x00}", 1, &err), RWKV_ERR_FORMAT, &err,
              "frame of 255 bytes");
    char deep[1000];
    memset(deep, '(', sizeof deep);
    CHECK_ERR(try_ops(deep, sizeof deep, 1, &err), RWKV_ERR_FORMAT, &err, "MARK nesting deeper than 256");
    /* tuples nested 200000 deep cost no recursion, only objects */
    struct buf p = {0};
    op(&p, 0x80), op(&p, 2), op(&p, ')');
    for (int i = 0; i < 200000; i++)
        op(&p, 0x85);
    op(&p, '.');
    CHECK_ERR(try_pickle(&p, &err), RWKV_ERR_FORMAT, &err, "holds a tuple");
    free(p.p);
}

/* One tensor spec changed from the standard set, and the message that must name it. */
static void check_spec(struct tspec t, rwkv_status code, const char *needle)
{
    struct tspec specs[N_STD];
    memcpy(specs, std_specs, sizeof specs);
    specs[0] = t;
    struct rwkv_error err;
    CHECK_ERR(try_specs(specs, N_STD, &err), code, &err, needle);
}

static void test_bad_tensors(void)
{
    const struct tspec w = std_specs[0];
    struct tspec t;
    t = w, t.numel = INT64_C(1) << 40;
    check_spec(t, RWKV_ERR_FORMAT, "storage '0': 1099511627776 elements of float32 but its zip entry has 24 bytes");
    t = w, t.numel = INT64_C(1) << 62;
    check_spec(t, RWKV_ERR_FORMAT, "elements of float32 but its zip entry has 24 bytes");
    t = w, t.numel = -1;
    check_spec(t, RWKV_ERR_FORMAT, "persistent id is not");
    t = w, t.stride[1] = -1;
    check_spec(t, RWKV_ERR_FORMAT, "tensor 'w': negative size or stride in dimension 1");
    t = w, t.size[0] = -2;
    check_spec(t, RWKV_ERR_FORMAT, "negative size");
    t = w, t.size[0] = INT64_C(1) << 40, t.size[1] = INT64_C(1) << 30, t.stride[0] = INT64_C(1) << 30;
    check_spec(t, RWKV_ERR_FORMAT, "tensor 'w': size or stride overflows");
    t = w, t.size[0] = INT64_C(1) << 31, t.size[1] = INT64_C(1) << 31, t.stride[0] = 0, t.stride[1] = 0;
    check_spec(t, RWKV_ERR_FORMAT, "overlapping strides are not supported");
    t = w, t.ndim = 1, t.size[0] = 4, t.stride[0] = 2;
    check_spec(t, RWKV_ERR_FORMAT, "element index 6 lies beyond its storage of 6 elements");
    t = w, t.offset = 7;
    check_spec(t, RWKV_ERR_FORMAT, "storage offset 7 beyond its storage of 6 elements");
    t = w, t.offset = -1;
    check_spec(t, RWKV_ERR_FORMAT, "storage offset -1");
    t = w, t.offset = 4;
    check_spec(t, RWKV_ERR_FORMAT, "element index 9 lies beyond");
    t = w, t.ndim = 5, t.size[2] = t.size[3] = t.size[4] = 1, t.stride[2] = t.stride[3] = t.stride[4] = 1;
    check_spec(t, RWKV_ERR_FORMAT, "size and stride must be tuples of at most 4 ints");
    t = w, t.cls = "LongStorage", t.numel = 3;
    check_spec(t, RWKV_ERR_UNSUPPORTED, "tensor 'w': dtype int64 is not supported");
    t = w, t.cls = "DoubleStorage", t.numel = 3, t.size[0] = 1;
    check_spec(t, RWKV_ERR_UNSUPPORTED, "dtype float64");
    t = w, t.cls = "QInt8Storage";
    check_spec(t, RWKV_ERR_FORMAT, "unsupported global 'torch.QInt8Storage'");
    t = w, t.name = "h";
    check_spec(t, RWKV_ERR_FORMAT, "tensor 'h' appears twice");
    t = w, t.name = "bad\nname", t.cls = "LongStorage", t.numel = 3; /* messages stay on one line */
    check_spec(t, RWKV_ERR_UNSUPPORTED, "tensor 'bad?name': dtype int64");
    t = w, t.size[0] = 0, t.size[1] = INT64_C(1) << 62; /* empty: valid whatever the other sizes */
    check_spec(t, RWKV_OK, NULL);
}

/* A small file that names one strided view a thousand times must not cost a thousand copies. */
static void test_alias_budget(void)
{
    struct buf p = {0};
    struct tspec t = {"", "FloatStorage", "0", 6, 0, 2, {3, 2}, {1, 3}};
    op(&p, 0x80), op(&p, 2), op(&p, '}'), op(&p, '(');
    pk_str(&p, "t0");
    pk_tensor(&p, &t);
    op(&p, 'q'), op(&p, 200);
    for (int i = 1; i < 20000; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        pk_str(&p, name);
        op(&p, 'h'), op(&p, 200);
    }
    op(&p, 'u'), op(&p, '.');
    struct rwkv_error err;
    CHECK_ERR(try_pickle(&p, &err), RWKV_ERR_FORMAT, &err, "strided copies would exceed the file size");
    free(p.p);
}

/* ---- converter ---- */

/* Adds an F32 tensor that the table owns. */
static void table_add(struct rwkv_tensor_table *t, const char *name, int ndim, const int64_t *shape,
                      const float *values)
{
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)shape[i];
    t->tensors = realloc(t->tensors, (t->n_tensors + 1) * sizeof *t->tensors);
    t->owned = realloc(t->owned, (t->n_owned + 1) * sizeof *t->owned);
    float *data = malloc(numel * 4 + 1);
    if (!t->tensors || !t->owned || !data) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memcpy(data, values, numel * 4);
    struct rwkv_tensor *x = &t->tensors[t->n_tensors++];
    memset(x, 0, sizeof *x);
    x->name = strdup(name);
    x->dtype = RWKV_DTYPE_F32;
    x->ndim = ndim;
    memcpy(x->shape, shape, (size_t)ndim * sizeof *shape);
    x->data = (const uint8_t *)data;
    x->nbytes = numel * 4;
    t->owned[t->n_owned++] = data;
}

static const float iota[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                               22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
                               44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

static void test_convert_rules(void)
{
    struct rwkv_tensor_table in = {0}, out;
    struct rwkv_error err;
    in.path = strdup("synthetic");
    /* gated v5.1: C = 8, H = 2 */
    table_add(&in, "emb.weight", 2, (const int64_t[]){4, 8}, iota);
    table_add(&in, "blocks.0.att.time_decay", 1, (const int64_t[]){2}, (const float[]){-1, 2});
    table_add(&in, "blocks.0.att.time_faaaa", 1, (const int64_t[]){2}, (const float[]){0.5f, 1.0f / 3});
    table_add(&in, "blocks.0.att.gate.weight", 2, (const int64_t[]){8, 8}, iota);
    table_add(&in, "blocks.0.att.ln_x.weight", 1, (const int64_t[]){8}, iota);
    table_add(&in, "blocks.0.att.W1", 2, (const int64_t[]){3, 2}, iota);             /* lower-cased, transposed */
    table_add(&in, "x.lora_A", 2, (const int64_t[]){2, 3}, iota);
    table_add(&in, "x.lora_B", 2, (const int64_t[]){3, 2}, iota);
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_F32, &out, &err), RWKV_OK, &err, NULL);
    CHECK(out.n_tensors == in.n_tensors && out.n_meta == 1 && strcmp(rwkv_table_meta(&out, "format"), "pt") == 0);
    for (size_t i = 1; i < out.n_tensors; i++)
        CHECK(strcmp(out.tensors[i - 1].name, out.tensors[i].name) < 0);
    const struct rwkv_tensor *d = rwkv_table_get(&out, "blocks.0.att.time_decay");
    const struct rwkv_tensor *u = rwkv_table_get(&out, "blocks.0.att.time_first");
    const struct rwkv_tensor *w1 = rwkv_table_get(&out, "blocks.0.att.w1");
    const struct rwkv_tensor *la = rwkv_table_get(&out, "x.lora.0"), *lb = rwkv_table_get(&out, "x.lora.1");
    CHECK(d && u && w1 && la && lb);
    if (d && u && w1 && la && lb) {
        CHECK(d->ndim == 2 && d->shape[0] == 2 && d->shape[1] == 4 && u->shape[1] == 4);
        CHECK(rwkv_tensor_get_f32(d, 3) == -1 && rwkv_tensor_get_f32(d, 4) == 2);
        CHECK(rwkv_tensor_get_f32(u, 7) == 1.0f / 3);
        CHECK(w1->shape[0] == 2 && w1->shape[1] == 3);
        CHECK(rwkv_tensor_get_f32(w1, 1) == 2 && rwkv_tensor_get_f32(w1, 3) == 1);
        CHECK(la->shape[0] == 3 && la->shape[1] == 2 && rwkv_tensor_get_f32(la, 1) == 3); /* lora.0 transposed */
        CHECK(lb->shape[0] == 3 && lb->shape[1] == 2 && rwkv_tensor_get_f32(lb, 1) == 1); /* lora.1 as is */
    }
    rwkv_table_free(&out);
    /* F16: round to nearest even, like torch's .half() */
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_F16, &out, &err), RWKV_OK, &err, NULL);
    u = rwkv_table_get(&out, "blocks.0.att.time_first");
    CHECK(u && u->dtype == RWKV_DTYPE_F16 && u->nbytes == 16);
    if (u) {
        uint16_t h;
        memcpy(&h, u->data + 2 * 4, 2);
        CHECK(h == rwkv_f32_to_f16(1.0f / 3) && h == 0x3555);
    }
    rwkv_table_free(&out);
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_I8, &out, &err), RWKV_ERR_ARG, &err, "output dtype I8");
    table_add(&in, "X.lora_A", 2, (const int64_t[]){2, 3}, iota); /* collides with x.lora_A once converted */
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_F16, &out, &err), RWKV_ERR_MODEL, &err,
              "two tensors are both converted to 'x.lora.0'");
    CHECK(out.n_tensors == 0 && out.tensors == NULL);
    rwkv_table_free(&in);

    /* v6: a 3-D time_maa_w2 [5,D,C] has its last two dimensions swapped; time_decay is not expanded */
    memset(&in, 0, sizeof in);
    table_add(&in, "emb.weight", 2, (const int64_t[]){4, 8}, iota);
    table_add(&in, "blocks.0.att.gate.weight", 2, (const int64_t[]){8, 8}, iota);
    table_add(&in, "blocks.0.att.time_decay", 3, (const int64_t[]){1, 1, 8}, iota);
    table_add(&in, "blocks.0.att.time_maa_w2", 3, (const int64_t[]){2, 3, 4}, iota);
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_F32, &out, &err), RWKV_OK, &err, NULL);
    const struct rwkv_tensor *w2 = rwkv_table_get(&out, "blocks.0.att.time_mix_w2");
    d = rwkv_table_get(&out, "blocks.0.att.time_decay");
    CHECK(w2 && w2->ndim == 3 && w2->shape[0] == 2 && w2->shape[1] == 4 && w2->shape[2] == 3);
    CHECK(w2 && rwkv_tensor_get_f32(w2, 12 + 2 * 3 + 1) == 18); /* out[1][2][1] = in[1][1][2] */
    CHECK(d && d->ndim == 3 && d->shape[2] == 8);
    rwkv_table_free(&out);
    rwkv_table_free(&in);

    /* v5.0 (ln_x, no gate): per-head vectors stay as they are */
    memset(&in, 0, sizeof in);
    table_add(&in, "emb.weight", 2, (const int64_t[]){4, 8}, iota);
    table_add(&in, "blocks.0.att.time_decay", 1, (const int64_t[]){2}, iota);
    table_add(&in, "blocks.0.att.ln_x.weight", 1, (const int64_t[]){8}, iota);
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_F16, &out, &err), RWKV_OK, &err, NULL);
    d = rwkv_table_get(&out, "blocks.0.att.time_decay");
    CHECK(d && d->ndim == 1 && d->shape[0] == 2);
    rwkv_table_free(&out);
    /* gated v5.1 without emb.weight cannot be expanded */
    table_add(&in, "blocks.0.att.gate.weight", 2, (const int64_t[]){8, 8}, iota);
    free(in.tensors[0].name);
    in.tensors[0].name = strdup("emb.bogus");
    CHECK_ERR(rwkv_convert_to_webrwkv(&in, RWKV_DTYPE_F16, &out, &err), RWKV_ERR_MODEL, &err,
              "v5.1 checkpoint without a 2-D emb.weight");
    rwkv_table_free(&in);
}

/* ---- the shared checkpoints ---- */

static void check_same(const struct rwkv_tensor_table *got, const struct rwkv_tensor_table *want, const char *what)
{
    CHECK_MSG(got->n_tensors == want->n_tensors, "%s: %zu tensors, want %zu", what, got->n_tensors, want->n_tensors);
    size_t bad = 0;
    for (size_t i = 0; i < want->n_tensors; i++) {
        const struct rwkv_tensor *w = &want->tensors[i], *g = rwkv_table_get(got, w->name);
        int same = g && g->dtype == w->dtype && g->ndim == w->ndim &&
                   memcmp(g->shape, w->shape, (size_t)w->ndim * sizeof *w->shape) == 0 && g->nbytes == w->nbytes &&
                   memcmp(g->data, w->data, w->nbytes) == 0;
        if (!same && bad++ < 3)
            fprintf(stderr, "%s: tensor '%s' differs\n", what, w->name);
    }
    CHECK_MSG(bad == 0, "%s: %zu tensors differ", what, bad);
    const char *fmt = rwkv_table_meta(got, "format");
    CHECK_MSG(fmt && strcmp(fmt, "pt") == 0, "%s: metadata format", what);
}

/* LoRA-style matrices (w1, time_decay_w2, ...) are transposed by the conversion, even square ones. */
static int is_lora_style(const char *name)
{
    static const char *const parts[] = {"w1", "w2", "a1", "a2", "g1", "g2", "v1", "v2"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (strstr(name, parts[i]))
            return 1;
    return 0;
}

/* Tensors whose official name is also the web-rwkv name and that are not transposed: compared with the
 * .f32.st values directly, so that the reader is checked apart from the converter. */
static void check_direct(const struct rwkv_tensor_table *pth, const struct rwkv_tensor_table *f32, const char *v)
{
    size_t compared = 0, bad = 0;
    for (size_t i = 0; i < pth->n_tensors; i++) {
        const struct rwkv_tensor *p = &pth->tensors[i], *r = rwkv_table_get(f32, p->name);
        if (!r || is_lora_style(p->name) || r->ndim != p->ndim ||
            memcmp(r->shape, p->shape, (size_t)p->ndim * sizeof *p->shape) != 0)
            continue;
        compared++;
        for (int64_t k = 0; k < rwkv_tensor_numel(p); k++)
            if (rwkv_tensor_get_f32(p, (size_t)k) != rwkv_tensor_get_f32(r, (size_t)k)) {
                bad++;
                break;
            }
    }
    CHECK_MSG(compared * 2 > pth->n_tensors && bad == 0, "%s: %zu of %zu compared directly, %zu differ", v, compared,
              pth->n_tensors, bad);
}

/* Opens shared/<rel> as a checkpoint or safetensors file; a missing file is one failed check. */
static int open_shared(const char *rel, int pth, struct rwkv_tensor_table *t)
{
    struct rwkv_error err;
    rwkv_status st = pth ? rwkv_pth_open(tu_shared(rel), t, &err) : rwkv_safetensors_open(tu_shared(rel), t, &err);
    CHECK_ERR(st, RWKV_OK, &err, NULL);
    return st == RWKV_OK;
}

static void check_checkpoint(const char *v)
{
    char rel[3][128], what[64];
    struct rwkv_tensor_table pth, st, f32, conv;
    struct rwkv_error err;
    snprintf(rel[0], sizeof rel[0], "pth/tiny-rwkv-%s.pth", v);
    snprintf(rel[1], sizeof rel[1], "models/tiny-rwkv-%s.st", v);
    snprintf(rel[2], sizeof rel[2], "models/tiny-rwkv-%s.f32.st", v);
    int ok = open_shared(rel[0], 1, &pth);
    ok &= open_shared(rel[1], 0, &st);
    ok &= open_shared(rel[2], 0, &f32);
    if (ok) {
        CHECK(pth.n_tensors == st.n_tensors && pth.n_owned == 0);
        check_direct(&pth, &f32, v);
        snprintf(what, sizeof what, "%s F16", v);
        CHECK_ERR(rwkv_convert_to_webrwkv(&pth, RWKV_DTYPE_F16, &conv, &err), RWKV_OK, &err, NULL);
        check_same(&conv, &st, what);
        rwkv_table_free(&conv);
        snprintf(what, sizeof what, "%s F32", v);
        CHECK_ERR(rwkv_convert_to_webrwkv(&pth, RWKV_DTYPE_F32, &conv, &err), RWKV_OK, &err, NULL);
        check_same(&conv, &f32, what);
        rwkv_table_free(&conv);
    }
    rwkv_table_free(&pth);
    rwkv_table_free(&st);
    rwkv_table_free(&f32);
}

static void test_shared_checkpoints(void)
{
    for (size_t v = 0; v < N_VERSIONS; v++)
        check_checkpoint(versions[v]);
}

/* ---- rwkv convert ---- */

/* tu_shared() and tu_tmp() return rotating static buffers: every path used across other tu_* calls is
 * copied here first, or a later call would turn an output path into a shared (input) one. */
static const char *keep_path(char buf[4096], const char *path)
{
    snprintf(buf, 4096, "%s", path);
    return buf;
}

static void test_cli(void)
{
    char out_buf[4096], log_buf[4096], pth_buf[4096], st_buf[4096];
    const char *cli = tu_cli(), *out = keep_path(out_buf, tu_tmp("convert.st"));
    const char *log = keep_path(log_buf, tu_tmp("convert.log"));
    const char *shared = tu_shared("");
    if (strncmp(out, shared, strlen(shared)) == 0 || strncmp(log, shared, strlen(shared)) == 0) {
        CHECK_MSG(0, "scratch paths %s, %s lie under the shared folder: not running rwkv convert", out, log);
        return;
    }
    for (size_t v = 0; v < N_VERSIONS; v++) {
        char pth[160], model[160];
        snprintf(pth, sizeof pth, "pth/tiny-rwkv-%s.pth", versions[v]);
        snprintf(model, sizeof model, "models/tiny-rwkv-%s.st", versions[v]);
        int rc = tu_system("'%s' convert --in '%s' --out '%s' > '%s' 2>&1", cli, tu_shared(pth), out, log);
        CHECK_MSG(rc == 0, "rwkv convert %s: exit %d", versions[v], rc);
        struct rwkv_tensor_table got, want = {0};
        if (rc == 0 && open_shared(model, 0, &want)) {
            struct rwkv_error err;
            CHECK_ERR(rwkv_safetensors_open(out, &got, &err), RWKV_OK, &err, NULL);
            check_same(&got, &want, versions[v]);
            rwkv_table_free(&got);
            /* stronger than needed, and true: the whole file is the one the Python script writes */
            size_t n_got = 0, n_want = 0;
            char *a = tu_read_file(out, &n_got), *b = tu_read_file(tu_shared(model), &n_want);
            CHECK_MSG(a && b && n_got == n_want && memcmp(a, b, n_got) == 0, "%s: not byte-identical", versions[v]);
            free(a);
            free(b);
        }
        rwkv_table_free(&want);
    }
    const char *pth = keep_path(pth_buf, tu_shared("pth/tiny-rwkv-5v2-730K.pth"));
    const char *st = keep_path(st_buf, tu_shared("models/tiny-rwkv-5v2-730K.st"));
    CHECK(tu_system("'%s' convert --in '%s' --out '%s' --dtype f32 >/dev/null 2>&1", cli, pth, out) == 0);
    CHECK(tu_system("'%s' convert --help >/dev/null", cli) == 0);
    CHECK(tu_system("'%s' convert 2>/dev/null", cli) == 2);
    CHECK(tu_system("'%s' convert --in '%s' 2>/dev/null", cli, pth) == 2);
    CHECK(tu_system("'%s' convert --in '%s' --out 2>/dev/null", cli, pth) == 2);
    CHECK(tu_system("'%s' convert --in '%s' --out '%s' --bogus 2>/dev/null", cli, pth, out) == 2);
    CHECK(tu_system("'%s' convert --in '%s' --out '%s' --dtype f8 2>/dev/null", cli, pth, out) == 2);
    CHECK(tu_system("'%s' convert --in /nonexistent.pth --out '%s' 2>/dev/null", cli, out) == 1);
    /* a safetensors input is not a checkpoint: one line on stderr */
    CHECK(tu_system("'%s' convert --in '%s' --out '%s' 2>'%s'", cli, st, out, log) == 1);
    size_t n = 0;
    char *text = tu_read_file(log, &n);
    CHECK(text && strncmp(text, "rwkv convert: ", 14) == 0 && strchr(text, '\n') == text + n - 1);
    free(text);
    remove(out);
    remove(log);
}

int main(void)
{
    test_small_valid();
    test_protocol4();
    test_nested_state_dict();
    test_truncation_and_corruption();
    test_real_file_truncated();
    test_bad_zip();
    test_archive_contents();
    test_bad_pickles();
    test_bad_tensors();
    test_alias_budget();
    test_convert_rules();
    test_shared_checkpoints();
    test_cli();
    return tu_finish("test_pth");
}
