/* Bad model files and inputs: every one must give a clear error, never a crash or a read out of bounds. */
#include <stdlib.h>
#include <string.h>

#include "io/tensor_table.h"
#include "util/cases.h"

static struct rwkv_device *dev;

static rwkv_status load(const char *path, struct rwkv_error *err)
{
    struct rwkv_model *m = NULL;
    rwkv_status st = rwkv_model_load(dev, path, NULL, &m, err);
    rwkv_model_free(m);
    return st;
}

static void write_raw(const char *path, const char *header, size_t pad_data)
{
    size_t hl = strlen(header);
    size_t n = 8 + hl + pad_data;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    tu_write_file(path, b, n);
    free(b);
}

static void test_headers(void)
{
    struct rwkv_error err;
    const char *p = tu_tmp("bad.st");
    struct {
        const char *header;
        size_t data;
        rwkv_status code;
        const char *needle;
    } cases[] = {
        {"{}", 0, RWKV_ERR_MODEL, "not an RWKV model"},
        {"[1,2]", 0, RWKV_ERR_FORMAT, "not a safetensors file"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}", 8, RWKV_ERR_FORMAT, "JSON error"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 4, RWKV_ERR_FORMAT, "beyond the data"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,6]}}", 8, RWKV_ERR_FORMAT, "6 bytes for 4"},
        {"{\"a\":{\"dtype\":\"Q9\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, RWKV_ERR_FORMAT, "unsupported dtype"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[-4],\"data_offsets\":[0,8]}}", 8, RWKV_ERR_FORMAT, "bad dimension"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[8,0]}}", 8, RWKV_ERR_FORMAT, "bad data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, RWKV_ERR_FORMAT,
         "overflows"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[4,12]}}",
         12, RWKV_ERR_FORMAT, "overlap"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[8,16]}}",
         16, RWKV_ERR_FORMAT, "appears twice"},
        {"{\"__metadata__\":{\"x\":1}}", 0, RWKV_ERR_FORMAT, "not a string"},
        {"{\"a\\nb\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, RWKV_ERR_FORMAT,
         "control character"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,2]}}", 2, RWKV_ERR_FORMAT,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, RWKV_ERR_MODEL, "not an RWKV model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_raw(p, cases[i].header, cases[i].data);
        CHECK_ERR(load(p, &err), cases[i].code, &err, cases[i].needle);
        CHECK_MSG(strstr(err.message, p) != NULL, "message names the file: %s", err.message);
    }
    /* header length larger than the file, and absurd */
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    tu_write_file(p, big, sizeof big);
    CHECK_ERR(load(p, &err), RWKV_ERR_FORMAT, &err, "exceeds");
    unsigned char small[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    tu_write_file(p, small, sizeof small);
    CHECK_ERR(load(p, &err), RWKV_ERR_FORMAT, &err, "truncated");
    tu_write_file(p, "abc", 3);
    CHECK_ERR(load(p, &err), RWKV_ERR_FORMAT, &err, "too short");
    tu_write_file(p, "", 0);
    CHECK_ERR(load(p, &err), RWKV_ERR_FORMAT, &err, "too short");
    CHECK_ERR(load(tu_tmp("does-not-exist.st"), &err), RWKV_ERR_IO, &err, "cannot open");
    CHECK_ERR(load(tu_shared("models"), &err), RWKV_ERR_IO, &err, "not a regular file");
    remove(p);
}

/* Every prefix of a real model file must fail cleanly. */
static void test_truncation(void)
{
    size_t n;
    char *data = tu_read_file(tu_shared("models/tiny-rwkv-7v0-834K.st"), &n);
    CHECK(data != NULL);
    if (!data)
        return;
    const char *p = tu_tmp("trunc.st");
    struct rwkv_error err;
    size_t cuts[] = {0, 1, 7, 8, 9, 100, 1000, 5000, 20000, n / 2, n - 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        tu_write_file(p, data, cuts[i]);
        rwkv_status st = load(p, &err);
        CHECK_MSG(st == RWKV_ERR_FORMAT, "cut at %zu: %s", cuts[i], err.message);
    }
    tu_write_file(p, data, n);
    CHECK(load(p, &err) == RWKV_OK);
    /* random byte flips in the header: must never crash */
    unsigned seed = 1;
    for (int k = 0; k < 200; k++) {
        char *copy = malloc(n);
        memcpy(copy, data, n);
        for (int f = 0; f < 4; f++) {
            seed = seed * 1103515245u + 12345u;
            copy[8 + (seed >> 8) % 4000] ^= (char)(1 + (seed >> 4) % 255);
        }
        tu_write_file(p, copy, n);
        struct rwkv_model *m = NULL;
        if (rwkv_model_load(dev, p, NULL, &m, &err) == RWKV_OK)
            rwkv_model_free(m);
        free(copy);
    }
    CHECK(1);
    free(data);
    remove(p);
}

/* Rewrites the tiny model with one tensor changed by `edit`, and checks the load error. */
typedef void (*edit_fn)(struct rwkv_tensor *ts, size_t *n, void *scratch);

static void edit_and_load(const char *what, edit_fn edit, rwkv_status code, const char *needle)
{
    struct rwkv_tensor_table t;
    struct rwkv_error err;
    CHECK(rwkv_safetensors_open(tu_shared("models/tiny-rwkv-5v2-730K.st"), &t, &err) == RWKV_OK);
    struct rwkv_tensor *ts = malloc(t.n_tensors * sizeof *ts);
    memcpy(ts, t.tensors, t.n_tensors * sizeof *ts);
    size_t n = t.n_tensors;
    static uint8_t scratch[1 << 16];
    edit(ts, &n, scratch);
    const char *p = tu_tmp("edited.st");
    CHECK(rwkv_safetensors_write(p, ts, n, NULL, 0, &err) == RWKV_OK);
    rwkv_status st = load(p, &err);
    CHECK_MSG(st == code && strstr(err.message, needle), "%s: got %s: %s", what, rwkv_status_name(st), err.message);
    free(ts);
    rwkv_table_free(&t);
    remove(p);
}

static size_t find(struct rwkv_tensor *ts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0)
            return i;
    return 0;
}

static void drop_key(struct rwkv_tensor *ts, size_t *n, void *s)
{
    size_t i = find(ts, *n, "blocks.3.att.key.weight");
    ts[i] = ts[--*n];
}

static void shape_key(struct rwkv_tensor *ts, size_t *n, void *s)
{
    size_t i = find(ts, *n, "blocks.3.att.key.weight");
    ts[i].shape[1] = 32;
    ts[i].shape[0] = 128;
}

static void dtype_key(struct rwkv_tensor *ts, size_t *n, void *s)
{
    size_t i = find(ts, *n, "blocks.3.att.key.weight");
    ts[i].dtype = RWKV_DTYPE_I8;
    ts[i].ndim = 2;
    ts[i].shape[0] = 64;
    ts[i].shape[1] = 128;
}

static void vec_len(struct rwkv_tensor *ts, size_t *n, void *s)
{
    size_t i = find(ts, *n, "blocks.7.ln2.bias");
    ts[i].shape[0] = 32;
    ts[i].nbytes = 64;
}

static void drop_emb(struct rwkv_tensor *ts, size_t *n, void *s)
{
    size_t i = find(ts, *n, "emb.weight");
    ts[i] = ts[--*n];
}

static void test_model_errors(void)
{
    edit_and_load("missing tensor", drop_key, RWKV_ERR_MODEL, "missing tensor 'blocks.3.att.key.weight'");
    edit_and_load("wrong shape", shape_key, RWKV_ERR_MODEL, "'blocks.3.att.key.weight': shape [128, 32], expected [64, 64]");
    edit_and_load("wrong dtype", dtype_key, RWKV_ERR_MODEL, "dtype I8 is not a float type");
    edit_and_load("vector length", vec_len, RWKV_ERR_MODEL, "'blocks.7.ln2.bias'");
    edit_and_load("no embedding", drop_emb, RWKV_ERR_MODEL, "not an RWKV model");
}

static void test_run_errors(void)
{
    struct rwkv_error err;
    struct rwkv_model *m;
    CHECK(rwkv_model_load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"), NULL, &m, &err) == RWKV_OK);
    struct rwkv_state *s;
    struct rwkv_state_options so = rwkv_state_default_options();
    so.num_batch = 2;
    CHECK(rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    float logits[256 * 4];
    int32_t bad[3] = {1, 256, 3};
    struct rwkv_slot_io io = {bad, 3, RWKV_OUTPUT_LAST, logits, 1, 0, 0, 0};
    CHECK_ERR(rwkv_run(s, &io, 1, &err), RWKV_ERR_TOKEN, &err, "token 256 at position 1");
    CHECK(io.n_tokens == 3 && io.tokens == bad); /* nothing consumed */
    int32_t neg[1] = {-5};
    io = (struct rwkv_slot_io){neg, 1, RWKV_OUTPUT_LAST, logits, 1, 0, 0, 0};
    CHECK_ERR(rwkv_run(s, &io, 1, &err), RWKV_ERR_TOKEN, &err, "token -5");
    int32_t ok[2] = {1, 2};
    io = (struct rwkv_slot_io){ok, 2, RWKV_OUTPUT_ALL, logits, 1, 0, 0, 0};
    CHECK_ERR(rwkv_run(s, &io, 1, &err), RWKV_ERR_ARG, &err, "needs 2 logits rows, 1 available");
    io = (struct rwkv_slot_io){ok, 2, RWKV_OUTPUT_LAST, NULL, 0, 0, 0, 0};
    CHECK_ERR(rwkv_run(s, &io, 1, &err), RWKV_ERR_ARG, &err, "logits rows");
    io = (struct rwkv_slot_io){NULL, 2, RWKV_OUTPUT_NONE, NULL, 0, 0, 0, 0};
    CHECK_ERR(rwkv_run(s, &io, 1, &err), RWKV_ERR_ARG, &err, "tokens is NULL");
    struct rwkv_slot_io three[3] = {{0}};
    CHECK_ERR(rwkv_run(s, three, 3, &err), RWKV_ERR_ARG, &err, "3 slots given, the state has 2");
    CHECK_ERR(rwkv_state_copy(s, 0, 2, &err), RWKV_ERR_ARG, &err, "slot 2 out of range");
    CHECK_ERR(rwkv_state_reset(s, 5, &err), RWKV_ERR_ARG, &err, "slot 5");
    float small[4];
    CHECK_ERR(rwkv_state_read(s, 0, small, 4, &err), RWKV_ERR_ARG, &err, "buffer of 4 floats");
    so.num_batch = 0;
    struct rwkv_state *s2 = NULL;
    CHECK_ERR(rwkv_state_new(m, &so, &s2, &err), RWKV_ERR_ARG, &err, "num_batch 0");
    so.num_batch = 1;
    so.token_chunk_size = 0;
    CHECK_ERR(rwkv_state_new(m, &so, &s2, &err), RWKV_ERR_ARG, &err, "token_chunk_size 0");
    CHECK(s2 == NULL);
    rwkv_state_free(s);
    rwkv_model_free(m);
    CHECK_ERR(rwkv_model_load(dev, NULL, NULL, &m, &err), RWKV_ERR_ARG, &err, "required");
}

/* The CLI contract: bad arguments exit non-zero with one line on stderr. */
static void test_cli_errors(void)
{
    const char *cli = tu_cli();
    const char *model = tu_shared("models/tiny-rwkv-7v0-834K.st");
    const char *out = tu_tmp("cli.bin");
    CHECK(tu_system("%s logits --model %s --tokens 1,2,x --out %s 2>/dev/null", cli, model, out) == 2);
    CHECK(tu_system("%s logits --model %s --tokens 1,2,999 --out %s 2>/dev/null", cli, model, out) == 1);
    CHECK(tu_system("%s logits --model %s --out %s 2>/dev/null", cli, model, out) == 2);
    CHECK(tu_system("%s logits --model /nonexistent --tokens 1 --out %s 2>/dev/null", cli, out) == 1);
    CHECK(tu_system("%s logits --model %s --tokens 1 --chunk 0 --out %s 2>/dev/null", cli, model, out) == 2);
    CHECK(tu_system("%s logits --model %s --tokens 1 --backend gpu --out %s 2>/dev/null", cli, model, out) == 2);
    CHECK(tu_system("%s logits --model %s --tokens 1 --bogus --out %s 2>/dev/null", cli, model, out) == 2);
    CHECK(tu_system("%s nosuchcommand 2>/dev/null", cli) == 2);
    const char *errf = tu_tmp("cli.err");
    CHECK(tu_system("%s logits --model %s --tokens 1,2,300 --out %s 2>%s", cli, model, out, errf) == 1);
    size_t n;
    char *msg = tu_read_file(errf, &n);
    CHECK_MSG(msg && strstr(msg, "token 300") && strchr(msg, '\n') == msg + n - 1, "one-line error: %s", msg);
    free(msg);
    remove(errf);
    remove(out);
}

int main(void)
{
    dev = tc_cpu_device(0);
    test_headers();
    test_truncation();
    test_model_errors();
    test_run_errors();
    test_cli_errors();
    rwkv_device_free(dev);
    return tu_finish("test_files");
}
