/* The Vulkan backend: the reference logits of every case file (tiny models with F16 and F32 weights,
 * LoRA and initial-state cases, every position, <= 1e-4); every op against the CPU backend on
 * synthetic models of awkward sizes (logits and states after several chunks, F16/F32/BF16 matrices,
 * split weights and per-output tiles, the shared-memory reduction path); batched slots against each
 * sequence alone; state read/write/copy and a state too large for any device.
 *
 * Without a Vulkan build or device the test passes with a note, unless RWKV_REQUIRE_VULKAN is set. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "util/cases.h"
#include "util/testutil.h"

static struct rwkv_device *g_vk, *g_cpu;

/* ---- helpers ---- */

/* max |a - b| / (1 + |b|); NaN counts as infinite */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= worst))
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

struct seqs {
    int n;
    const int32_t *tok[12];
    size_t len[12];
    enum rwkv_output mode[12];
};

/* Rows of logits slot i produces under its mode. */
static size_t rows_of(const struct seqs *q, int i)
{
    return q->mode[i] == RWKV_OUTPUT_ALL ? q->len[i] : q->mode[i] == RWKV_OUTPUT_LAST && q->len[i] > 0;
}

/* Runs the sequences as slots of one state with `chunk` tokens per call. `logits` gets every slot's
 * rows one after another; `states` (optional) each slot's final state. Returns 0 on success. */
static int run_seqs(struct rwkv_model *m, int chunk, const struct seqs *q, float *logits, float *states)
{
    const struct rwkv_model_info *info = rwkv_model_get_info(m);
    struct rwkv_state_options so = rwkv_state_default_options();
    so.num_batch = q->n;
    so.token_chunk_size = chunk;
    struct rwkv_state *s;
    struct rwkv_error err;
    if (rwkv_state_new(m, &so, &s, &err)) {
        CHECK_MSG(0, "%s", err.message);
        return 1;
    }
    struct rwkv_slot_io io[12];
    memset(io, 0, sizeof io);
    size_t row = 0;
    for (int i = 0; i < q->n; i++) {
        io[i] = (struct rwkv_slot_io){.tokens = q->tok[i], .n_tokens = q->len[i], .output = q->mode[i],
                                      .logits = logits + row * (size_t)info->n_vocab, .logits_rows = rows_of(q, i)};
        row += rows_of(q, i);
    }
    int rc = 0;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < q->n; i++)
            pending |= io[i].n_tokens > 0;
        if (!pending)
            break;
        if (rwkv_run(s, io, q->n, &err)) {
            CHECK_MSG(0, "rwkv_run: %s", err.message);
            rc = 1;
            break;
        }
    }
    for (int i = 0; states && !rc && i < q->n; i++)
        if (rwkv_state_read(s, i, states + (size_t)i * info->state_floats, info->state_floats, &err)) {
            CHECK_MSG(0, "rwkv_state_read: %s", err.message);
            rc = 1;
        }
    rwkv_state_free(s);
    return rc;
}

static size_t total_rows(const struct seqs *q)
{
    size_t r = 0;
    for (int i = 0; i < q->n; i++)
        r += rows_of(q, i);
    return r;
}

static struct rwkv_model *load(struct rwkv_device *dev, const char *path)
{
    struct rwkv_model *m = NULL;
    struct rwkv_error err;
    if (rwkv_model_load(dev, path, NULL, &m, &err))
        CHECK_MSG(0, "%s", err.message);
    return m;
}

/* ---- synthetic models ---- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float rnd(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * 0x1.0p-24);
}

struct dims {
    enum rwkv_arch arch;
    int L, C, H, F, V;
    int D, DD;              /* v6 mix / decay LoRA ranks */
    int WL, AL, VL, GL;     /* v7 LoRA ranks */
    enum rwkv_dtype mdt;    /* matrices */
};

struct synth {
    struct rwkv_tensor_table t;
    size_t cap;
    const struct dims *d;
    int failed;
};

/* Adds a tensor of random values in [lo, hi); matrices get the model's dtype, vectors F32. */
static void add(struct synth *s, const char *name, int ndim, const int64_t *shape, int matrix, float lo, float hi)
{
    if (s->failed)
        return;
    struct rwkv_tensor_table *t = &s->t;
    if (t->n_tensors == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 64;
        struct rwkv_tensor *nt = realloc(t->tensors, nc * sizeof *nt);
        void **no = realloc(t->owned, nc * sizeof *no);
        if (nt)
            t->tensors = nt;
        if (no)
            t->owned = no;
        if (!nt || !no) {
            s->failed = 1;
            return;
        }
        s->cap = nc;
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    enum rwkv_dtype dt = matrix ? s->d->mdt : RWKV_DTYPE_F32;
    uint8_t *data = malloc(n * rwkv_dtype_size(dt) + 1);
    char *nm = rwkv_strdup(name);
    if (!data || !nm) {
        free(data);
        free(nm);
        s->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = rnd(lo, hi);
        if (dt == RWKV_DTYPE_F32)
            memcpy(data + 4 * i, &v, 4);
        else {
            uint16_t h = dt == RWKV_DTYPE_F16 ? rwkv_f32_to_f16(v) : rwkv_f32_to_bf16(v);
            memcpy(data + 2 * i, &h, 2);
        }
    }
    struct rwkv_tensor *x = &t->tensors[t->n_tensors++];
    memset(x, 0, sizeof *x);
    x->name = nm;
    x->dtype = dt;
    x->ndim = ndim;
    memcpy(x->shape, shape, (size_t)ndim * sizeof *shape);
    x->data = data;
    x->nbytes = n * rwkv_dtype_size(dt);
    t->owned[t->n_owned++] = data;
}

static void mat(struct synth *s, int l, const char *name, int rows, int cols)
{
    char full[128];
    snprintf(full, sizeof full, "blocks.%d.%s", l, name);
    int64_t shape[2] = {rows, cols};
    float a = 1.0f / sqrtf((float)cols);
    add(s, full, 2, shape, 1, -a, a);
}

static void vec(struct synth *s, int l, const char *name, int a, int b, float lo, float hi)
{
    char full[128];
    snprintf(full, sizeof full, "blocks.%d.%s", l, name);
    int64_t shape[2] = {a, b};
    add(s, full, b ? 2 : 1, shape, 0, lo, hi);
}

static void add_common(struct synth *s, int l)
{
    const struct dims *d = s->d;
    vec(s, l, "ln1.weight", d->C, 0, 0.8f, 1.2f);
    vec(s, l, "ln1.bias", d->C, 0, -0.1f, 0.1f);
    vec(s, l, "ln2.weight", d->C, 0, 0.8f, 1.2f);
    vec(s, l, "ln2.bias", d->C, 0, -0.1f, 0.1f);
    static const char *const rkvo[4] = {"att.receptance.weight", "att.key.weight", "att.value.weight",
                                        "att.output.weight"};
    for (int i = 0; i < 4; i++)
        mat(s, l, rkvo[i], d->C, d->C);
    mat(s, l, "ffn.key.weight", d->F, d->C);
    mat(s, l, "ffn.value.weight", d->C, d->F);
    if (d->arch != RWKV_ARCH_V7) {
        mat(s, l, "ffn.receptance.weight", d->C, d->C);
        vec(s, l, "ffn.time_mix_k", d->C, 0, 0.0f, 1.0f);
        vec(s, l, "ffn.time_mix_r", d->C, 0, 0.0f, 1.0f);
    }
}

static void add_v4_v5(struct synth *s, int l)
{
    const struct dims *d = s->d;
    int H = d->H, N = d->C / d->H;
    vec(s, l, "att.time_mix_k", d->C, 0, 0.0f, 1.0f);
    vec(s, l, "att.time_mix_v", d->C, 0, 0.0f, 1.0f);
    vec(s, l, "att.time_mix_r", d->C, 0, 0.0f, 1.0f);
    if (d->arch == RWKV_ARCH_V4) {
        vec(s, l, "att.time_decay", d->C, 0, -1.0f, 1.0f);
        vec(s, l, "att.time_first", d->C, 0, -1.0f, 1.0f);
        return;
    }
    vec(s, l, "att.ln_x.weight", d->C, 0, 0.8f, 1.2f);
    vec(s, l, "att.ln_x.bias", d->C, 0, -0.1f, 0.1f);
    if (d->arch == RWKV_ARCH_V5_0) {
        vec(s, l, "att.time_decay", H, 0, -2.0f, 1.0f);
        vec(s, l, "att.time_first", H, 0, -1.0f, 0.5f);
        return;
    }
    vec(s, l, "att.time_mix_g", d->C, 0, 0.0f, 1.0f);
    mat(s, l, "att.gate.weight", d->C, d->C);
    vec(s, l, "att.time_decay", H, N, -2.0f, 1.0f);
    vec(s, l, "att.time_first", H, N, -0.5f, 0.5f);
}

static void add_v6(struct synth *s, int l)
{
    const struct dims *d = s->d;
    static const char *const mixes[6] = {"att.time_mix_x", "att.time_mix_w", "att.time_mix_k", "att.time_mix_v",
                                         "att.time_mix_r", "att.time_mix_g"};
    for (int i = 0; i < 6; i++)
        vec(s, l, mixes[i], d->C, 0, 0.0f, 1.0f);
    mat(s, l, "att.time_mix_w1", 5 * d->D, d->C);
    char name[96];
    snprintf(name, sizeof name, "blocks.%d.att.time_mix_w2", l);
    int64_t w2[3] = {5, d->C, d->D};
    float a = 1.0f / sqrtf((float)d->D);
    add(s, name, 3, w2, 1, -a, a);
    vec(s, l, "att.time_decay", d->C, 0, -2.0f, 0.0f);
    mat(s, l, "att.time_decay_w1", d->DD, d->C);
    mat(s, l, "att.time_decay_w2", d->C, d->DD);
    vec(s, l, "att.time_first", d->H, d->C / d->H, -0.5f, 0.5f);
    mat(s, l, "att.gate.weight", d->C, d->C);
    vec(s, l, "att.ln_x.weight", d->C, 0, 0.8f, 1.2f);
    vec(s, l, "att.ln_x.bias", d->C, 0, -0.1f, 0.1f);
}

static void add_v7(struct synth *s, int l)
{
    const struct dims *d = s->d;
    static const char *const xs[7] = {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g", "ffn.x_k"};
    for (int i = 0; i < 7; i++)
        vec(s, l, xs[i], d->C, 0, 0.0f, 1.0f);
    vec(s, l, "att.w0", d->C, 0, -1.0f, 1.0f);
    mat(s, l, "att.w1", d->WL, d->C);
    mat(s, l, "att.w2", d->C, d->WL);
    vec(s, l, "att.a0", d->C, 0, -1.0f, 1.0f);
    mat(s, l, "att.a1", d->AL, d->C);
    mat(s, l, "att.a2", d->C, d->AL);
    if (l > 0) {
        vec(s, l, "att.v0", d->C, 0, -1.0f, 1.0f);
        mat(s, l, "att.v1", d->VL, d->C);
        mat(s, l, "att.v2", d->C, d->VL);
    }
    mat(s, l, "att.g1", d->GL, d->C);
    mat(s, l, "att.g2", d->C, d->GL);
    vec(s, l, "att.k_k", d->C, 0, 0.5f, 1.5f);
    vec(s, l, "att.k_a", d->C, 0, 0.0f, 1.0f);
    vec(s, l, "att.r_k", d->H, d->C / d->H, -0.5f, 0.5f);
    vec(s, l, "att.ln_x.weight", d->C, 0, 0.8f, 1.2f);
    vec(s, l, "att.ln_x.bias", d->C, 0, -0.1f, 0.1f);
}

/* A model of random weights with dimensions `d` on `dev` (the same seed gives the same weights). */
static struct rwkv_model *synth_model(struct rwkv_device *dev, const struct dims *d, uint64_t seed)
{
    struct synth s;
    memset(&s, 0, sizeof s);
    s.d = d;
    rng = seed;
    s.t.path = rwkv_strdup("synthetic");
    int64_t emb[2] = {d->V, d->C}, c1[1] = {d->C};
    add(&s, "emb.weight", 2, emb, 1, -1.0f, 1.0f);
    add(&s, "blocks.0.ln0.weight", 1, c1, 0, 0.8f, 1.2f);
    add(&s, "blocks.0.ln0.bias", 1, c1, 0, -0.1f, 0.1f);
    add(&s, "ln_out.weight", 1, c1, 0, 0.8f, 1.2f);
    add(&s, "ln_out.bias", 1, c1, 0, -0.1f, 0.1f);
    float a = 1.0f / sqrtf((float)d->C);
    add(&s, "head.weight", 2, emb, 1, -a, a);
    for (int l = 0; l < d->L; l++) {
        add_common(&s, l);
        if (d->arch == RWKV_ARCH_V6)
            add_v6(&s, l);
        else if (d->arch == RWKV_ARCH_V7)
            add_v7(&s, l);
        else
            add_v4_v5(&s, l);
    }
    CHECK(!s.failed && s.t.path);
    struct rwkv_model *m = NULL;
    struct rwkv_error err;
    if (rwkv_model_build(dev, &s.t, NULL, &m, &err))
        CHECK_MSG(0, "synthetic v%s model: %s", rwkv_arch_name(d->arch), err.message);
    return m;
}

/* ---- (3) every op against the CPU, on synthetic models ---- */

static void random_tokens(int32_t *t, size_t n, int V)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (int32_t)(rnd(0.0f, 1.0f) * (float)V) % V;
}

/* Runs the same slots on the CPU and on `vk` with chunk sizes 41 (all tokens: the prefill matmul
 * kernels), 13 (GEMV, several tokens), 3 and 1 (the first `n_chunks` of them); compares logits and
 * states within `tol` (relative). */
static void compare_cpu_tol(struct rwkv_device *vk, const struct dims *d, const char *label, int n_chunks,
                            double tol)
{
    struct rwkv_model *mc = synth_model(g_cpu, d, 1234), *mv = synth_model(vk, d, 1234);
    if (!mc || !mv) {
        rwkv_model_free(mc);
        rwkv_model_free(mv);
        return;
    }
    const struct rwkv_model_info *info = rwkv_model_get_info(mc);
    int32_t tok[4][24];
    for (int i = 0; i < 4; i++)
        random_tokens(tok[i], 24, d->V);
    /* lengths 1, 13, 7, 20: a 1-token slot, an output-less slot and a last-only slot among them */
    struct seqs q = {4, {tok[0], tok[1], tok[2], tok[3]}, {1, 13, 7, 20},
                     {RWKV_OUTPUT_ALL, RWKV_OUTPUT_NONE, RWKV_OUTPUT_LAST, RWKV_OUTPUT_ALL}};
    size_t R = total_rows(&q), V = (size_t)info->n_vocab, SF = info->state_floats;
    float *lc = malloc(R * V * sizeof *lc), *lv = malloc(R * V * sizeof *lv);
    float *sc = malloc(4 * SF * sizeof *sc), *sv = malloc(4 * SF * sizeof *sv);
    static const int chunks[4] = {41, 13, 3, 1};
    for (int k = 0; k < n_chunks && lc && lv && sc && sv; k++) {
        if (run_seqs(mc, chunks[k], &q, lc, sc) || run_seqs(mv, chunks[k], &q, lv, sv))
            break;
        double dl = rel_diff(lv, lc, R * V), ds = rel_diff(sv, sc, 4 * SF);
        CHECK_MSG(dl <= tol && ds <= tol, "%s, chunk %d: logits diff %g, state diff %g (relative)", label,
                  chunks[k], dl, ds);
        if (k < 2)
            fprintf(stderr, "  %-40s chunk %2d: logits %.2g, state %.2g (max |diff| / (1 + |cpu|))\n", label,
                    chunks[k], dl, ds);
    }
    free(lc);
    free(lv);
    free(sc);
    free(sv);
    rwkv_model_free(mc);
    rwkv_model_free(mv);
}

static void compare_cpu(struct rwkv_device *vk, const struct dims *d, const char *label, int n_chunks)
{
    compare_cpu_tol(vk, d, label, n_chunks, 1e-4);
}

static const struct dims synth_dims[] = {
    {RWKV_ARCH_V4, 2, 39, 1, 98, 67, 0, 0, 0, 0, 0, 0, RWKV_DTYPE_F16},
    {RWKV_ARCH_V5_0, 2, 72, 3, 98, 67, 0, 0, 0, 0, 0, 0, RWKV_DTYPE_F16},
    {RWKV_ARCH_V5_2, 2, 45, 5, 98, 67, 0, 0, 0, 0, 0, 0, RWKV_DTYPE_F16},
    {RWKV_ARCH_V6, 2, 72, 3, 98, 67, 7, 9, 0, 0, 0, 0, RWKV_DTYPE_F16},
    {RWKV_ARCH_V7, 3, 72, 3, 98, 67, 0, 0, 9, 11, 7, 13, RWKV_DTYPE_F16},
    {RWKV_ARCH_V7, 3, 40, 1, 98, 67, 0, 0, 9, 11, 7, 13, RWKV_DTYPE_F32},
    {RWKV_ARCH_V6, 2, 72, 3, 98, 67, 7, 9, 0, 0, 0, 0, RWKV_DTYPE_BF16},
    {RWKV_ARCH_V5_2, 1, 72, 9, 98, 67, 0, 0, 0, 0, 0, 0, RWKV_DTYPE_F32},
    /* every K a multiple of 8: the 16-byte-load kernels (GEMV, tensor cores) take every matrix */
    {RWKV_ARCH_V7, 2, 128, 2, 256, 300, 0, 0, 16, 8, 16, 24, RWKV_DTYPE_F16},
};
#define ALIGNED_DIMS (&synth_dims[sizeof synth_dims / sizeof synth_dims[0] - 1])

static const char *dtype_label(enum rwkv_dtype t)
{
    return t == RWKV_DTYPE_F16 ? "f16" : t == RWKV_DTYPE_F32 ? "f32" : "bf16";
}

static void test_synthetic(struct rwkv_device *vk, const char *what, int n_chunks)
{
    for (size_t i = 0; i < sizeof synth_dims / sizeof synth_dims[0]; i++) {
        const struct dims *d = &synth_dims[i];
        char label[96];
        snprintf(label, sizeof label, "%sv%s C=%d H=%d %s", what, rwkv_arch_name(d->arch), d->C, d->H,
                 dtype_label(d->mdt));
        compare_cpu(vk, d, label, n_chunks);
    }
}

/* A big odd head ([5003][72]) and FFN ([1030][72], K = 1030): many row blocks, several K steps. */
static void test_large(struct rwkv_device *vk, const char *what)
{
    struct dims d = {RWKV_ARCH_V7, 1, 72, 3, 1030, 5003, 0, 0, 0, 0, 0, 0, RWKV_DTYPE_F16};
    d.WL = 9;
    d.AL = 11;
    d.VL = 7;
    d.GL = 13;
    char label[96];
    snprintf(label, sizeof label, "%slarge odd matrices (5003x72, 72x1030)", what);
    compare_cpu(vk, &d, label, 1);
}

/* A Vulkan device opened while env `name` = `value` (the backend reads its knobs at open). */
static struct rwkv_device *open_with_env(const char *name, const char *value)
{
    setenv(name, value, 1);
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_VULKAN;
    struct rwkv_device *dev = NULL;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &dev, &err))
        CHECK_MSG(0, "%s", err.message);
    unsetenv(name);
    return dev;
}

/* One sequence fed one token per run (chunks of one token of one segment: the one-dispatch v7 step,
 * token7.comp, on a device that runs it) against the CPU: logits of every step (OUTPUT_ALL) or of
 * none but the last (OUTPUT_LAST: steps without the head), then the state. `expect` is how many runs
 * must have gone as one dispatch. */
static void compare_steps(struct rwkv_model *mc, struct rwkv_model *mv, enum rwkv_output mode,
                          uint64_t expect, const char *label)
{
    const struct rwkv_model_info *info = rwkv_model_get_info(mc);
    enum { STEPS = 9 };
    int32_t tok[STEPS];
    random_tokens(tok, STEPS, info->n_vocab);
    size_t V = (size_t)info->n_vocab, SF = info->state_floats, R = mode == RWKV_OUTPUT_ALL ? STEPS : 1;
    float *lg[2] = {calloc(R * V, sizeof(float)), calloc(R * V, sizeof(float))};
    float *st[2] = {malloc(SF * sizeof(float)), malloc(SF * sizeof(float))};
    struct rwkv_model *m[2] = {mc, mv};
    struct rwkv_run_stats stats = {0};
    for (int k = 0; k < 2 && lg[0] && lg[1] && st[0] && st[1]; k++) {
        struct rwkv_state_options so = rwkv_state_default_options();
        so.token_chunk_size = 1;
        struct rwkv_state *s;
        struct rwkv_error err;
        if (rwkv_state_new(m[k], &so, &s, &err)) {
            CHECK_MSG(0, "%s: %s", label, err.message);
            break;
        }
        struct rwkv_slot_io io = {.tokens = tok, .n_tokens = STEPS, .output = mode, .logits = lg[k], .logits_rows = R};
        while (io.n_tokens > 0)
            if (rwkv_run(s, &io, 1, &err)) {
                CHECK_MSG(0, "%s: rwkv_run: %s", label, err.message);
                break;
            }
        CHECK(rwkv_state_read(s, 0, st[k], SF, &err) == RWKV_OK);
        if (k == 1)
            CHECK(rwkv_state_run_stats(s, &stats, &err) == RWKV_OK);
        rwkv_state_free(s);
    }
    if (lg[0] && lg[1] && st[0] && st[1]) {
        double dl = rel_diff(lg[1], lg[0], R * V), ds = rel_diff(st[1], st[0], SF);
        CHECK_MSG(dl <= 1e-4 && ds <= 1e-4, "%s: logits diff %g, state diff %g (relative)", label, dl, ds);
        CHECK_MSG(stats.single_dispatch_runs == expect, "%s: %llu of %llu runs as one dispatch, expected %llu", label,
                  (unsigned long long)stats.single_dispatch_runs, (unsigned long long)stats.runs,
                  (unsigned long long)expect);
        fprintf(stderr, "  %-40s logits %.2g, state %.2g, %llu of %llu runs in one dispatch\n", label, dl, ds,
                (unsigned long long)stats.single_dispatch_runs, (unsigned long long)stats.runs);
    }
    for (int k = 0; k < 2; k++) {
        free(lg[k]);
        free(st[k]);
    }
}

/* The one-dispatch v7 generation step (token7.comp, off by default). With RWKV_VK_PERSISTENT=1 one
 * workgroup runs it (its grid barriers pass at once), so lavapipe checks the math: synthetic and
 * trained models, steps with and without logits, the reference cases (those run a token at a time go
 * through it). On a GPU, =sm (a workgroup per multiprocessor) runs the same. With 1024 workgroups,
 * more than can run at once on an H100/H200, a barrier must give up: the run fails with
 * RWKV_ERR_DEVICE, and the device then runs v7 steps by ops (a CPU device takes only one workgroup). */
static void test_token_step(void)
{
    int cpu_device = strstr(rwkv_device_description(g_vk), " cpu,") != NULL;
    struct rwkv_model *mc = NULL, *mv = NULL;
    struct rwkv_device *dev = NULL;
    static const char *const groups[2] = {"1", "sm"};
    for (int g = 0; g < 2 - cpu_device; g++) {
        if (!(dev = open_with_env("RWKV_VK_PERSISTENT", groups[g])))
            return;
        char label[96];
        mc = synth_model(g_cpu, ALIGNED_DIMS, 99);
        mv = synth_model(dev, ALIGNED_DIMS, 99);
        if (mc && mv) {
            snprintf(label, sizeof label, "one dispatch (%s), v7 C=128, logits each step", groups[g]);
            compare_steps(mc, mv, RWKV_OUTPUT_ALL, 9, label);
            snprintf(label, sizeof label, "one dispatch (%s), v7 C=128, last logits", groups[g]);
            compare_steps(mc, mv, RWKV_OUTPUT_LAST, 9, label);
        }
        rwkv_model_free(mc);
        rwkv_model_free(mv);
        mc = load(g_cpu, tu_shared("models/tiny-rwkv-7v0-834K.st"));
        mv = load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"));
        if (mc && mv) {
            snprintf(label, sizeof label, "one dispatch (%s), tiny v7", groups[g]);
            compare_steps(mc, mv, RWKV_OUTPUT_ALL, 9, label);
        }
        rwkv_model_free(mv);
        if (g == 0) { /* a v6 model is not for it: every run goes by ops */
            struct rwkv_model *c6 = synth_model(g_cpu, &synth_dims[3], 5), *v6 = synth_model(dev, &synth_dims[3], 5);
            if (c6 && v6)
                compare_steps(c6, v6, RWKV_OUTPUT_ALL, 0, "one dispatch device, v6 by ops");
            rwkv_model_free(c6);
            rwkv_model_free(v6);
        }
        tc_run_all_cases(dev, 1e-4, "vulkan one-dispatch step");
        rwkv_device_free(dev);
        if (g + 1 < 2 - cpu_device)
            rwkv_model_free(mc);
    }

    /* not on a CPU device (lavapipe): it runs one workgroup at a time and takes 1024 as 1 */
    if (!mc || cpu_device || !(dev = open_with_env("RWKV_VK_PERSISTENT", "1024"))) {
        rwkv_model_free(mc);
        return;
    }
    mv = load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"));
    struct rwkv_state *s = NULL;
    struct rwkv_state_options so = rwkv_state_default_options();
    so.token_chunk_size = 1;
    struct rwkv_error err;
    if (mv && rwkv_state_new(mv, &so, &s, &err) == RWKV_OK) {
        int32_t tok = 65;
        float *logits = malloc(256 * sizeof(float));
        struct rwkv_slot_io io = {.tokens = &tok, .n_tokens = 1, .output = RWKV_OUTPUT_LAST, .logits = logits,
                                  .logits_rows = 1};
        rwkv_status st = logits ? rwkv_run(s, &io, 1, &err) : RWKV_ERR_NOMEM;
        CHECK_MSG(st == RWKV_ERR_DEVICE && strstr(err.message, "grid barrier"),
                  "1024 workgroups: expected the grid barrier to give up, got status %d", (int)st);
        fprintf(stderr, "  one dispatch, 1024 workgroups: %s\n", st ? err.message : "ran");
        free(logits);
        rwkv_state_free(s);
        compare_steps(mc, mv, RWKV_OUTPUT_ALL, 0, "after a barrier gave up: by ops");
    } else {
        CHECK_MSG(0, "1024 workgroups: %s", mv ? err.message : "model not loaded");
    }
    rwkv_model_free(mc);
    rwkv_model_free(mv);
    rwkv_device_free(dev);
}

/* The tensor-core kernel's other modes, where the device has it (RWKV_VK_COOPMAT; the default mode
 * ran above): each tile forced, split-K forced and off, the fp32 overflow path, and F16 activations
 * (looser: ~1e-3 per product), and the fp32 tiles it replaces. */
static void test_coopmat_modes(void)
{
    static const struct {
        const char *env, *value, *label;
        double tol;
    } modes[8] = {
        {"RWKV_VK_CM_TILE", "big", "coopmat big tiles: ", 1e-4},
        {"RWKV_VK_KSPLIT", "3", "coopmat split along K in 3: ", 1e-4},
        {"RWKV_VK_KSPLIT", "0", "coopmat never split along K: ", 1e-4},
        {"RWKV_VK_CM_TILE", "small", "coopmat small tiles: ", 1e-4},
        {"RWKV_VK_CM_TILE", "tiny", "coopmat tiny tiles: ", 1e-4},
        {"RWKV_VK_COOPMAT", "fallback", "coopmat fp32 fallback: ", 1e-4},
        {"RWKV_VK_COOPMAT", "fp16", "coopmat fp16 activations: ", 3e-2},
        {"RWKV_VK_COOPMAT", "0", "coopmat off: ", 1e-4},
    };
    if (!strstr(rwkv_device_description(g_vk), "coopmat")) {
        fprintf(stderr, "  (no cooperative-matrix kernel on this device)\n");
        return;
    }
    for (int i = 0; i < 8; i++) {
        struct rwkv_device *dev = open_with_env(modes[i].env, modes[i].value);
        if (dev) {
            compare_cpu_tol(dev, ALIGNED_DIMS, modes[i].label, 1, modes[i].tol);
            rwkv_device_free(dev);
        }
    }
}

/* WKV7 split over state rows (wkv7.comp MODES 1 and 2), forced on every chunk with a segment longer
 * than one token (RWKV_VK_WKV7_ROWS=P: P invocations per row), and never (=0), on the v7 models:
 * head sizes 24 and 40 (P = 2 only; 4 falls back to the plain kernel) and 64. */
static void test_wkv7_rows(void)
{
    static const char *const modes[3] = {"4", "2", "0"};
    for (int i = 0; i < 3; i++) {
        struct rwkv_device *dev = open_with_env("RWKV_VK_WKV7_ROWS", modes[i]);
        for (size_t k = 0; dev && k < sizeof synth_dims / sizeof synth_dims[0]; k++) {
            const struct dims *d = &synth_dims[k];
            if (d->arch != RWKV_ARCH_V7)
                continue;
            char label[96];
            snprintf(label, sizeof label, "wkv7 rows P=%s: C=%d H=%d", modes[i], d->C, d->H);
            compare_cpu(dev, d, label, 3);
        }
        rwkv_device_free(dev);
    }
}

/* ---- (4) batched slots give what each sequence gives alone ---- */

static void test_batched(const char *model_rel)
{
    struct rwkv_model *m = load(g_vk, tu_shared(model_rel));
    if (!m)
        return;
    size_t V = (size_t)rwkv_model_get_info(m)->n_vocab;
    /* 12 slots: chunks of one token per slot have more segments than VK_LORA_MAX_SEG */
    static const char *const text[12] = {"The quick", "jumps over the dog.", "in", "a", "brown fox", "lazy",
                                         "Once upon", "a time", "there", "was", "nothing.", "Then"};
    struct seqs all = {12, {0}, {0}, {0}};
    int32_t tok[12][64];
    for (int i = 0; i < 12; i++) {
        all.mode[i] = RWKV_OUTPUT_ALL;
        all.len[i] = strlen(text[i]);
        for (size_t k = 0; k < all.len[i]; k++)
            tok[i][k] = (unsigned char)text[i][k];
        all.tok[i] = tok[i];
    }
    size_t R = total_rows(&all);
    float *alone = malloc(R * V * sizeof *alone), *batch = malloc(R * V * sizeof *batch);
    size_t row = 0;
    for (int i = 0; i < 12 && alone; i++) {
        struct seqs one = {1, {tok[i]}, {all.len[i]}, {RWKV_OUTPUT_ALL}};
        run_seqs(m, 64, &one, alone + row * V, NULL);
        row += all.len[i];
    }
    static const int chunks[4] = {1, 7, 12, 64};
    for (int k = 0; k < 4 && alone && batch; k++) {
        if (run_seqs(m, chunks[k], &all, batch, NULL))
            break;
        /* relative: the chunk's token count picks the matmul kernel (GEMV, fp32 or tensor-core tiles),
         * whose sums round differently */
        double d = rel_diff(batch, alone, R * V);
        CHECK_MSG(d <= 5e-5, "%s: 12 slots, chunk %d: diff %g from each sequence alone", model_rel, chunks[k], d);
        fprintf(stderr, "  batched %s chunk %2d: max |diff| / (1 + |alone|) %.3g\n", model_rel, chunks[k], d);
    }
    free(alone);
    free(batch);
    rwkv_model_free(m);
}

/* The state's logits area (rwkv_state_logits_area): rows at their own places (no copy on a GPU), out
 * of order, and a user buffer give the same logits; a state read between runs leaves the area alone. */
static void test_logits_area(struct rwkv_device *dev, const char *label)
{
    struct rwkv_model *m = load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"));
    if (!m)
        return;
    size_t V = (size_t)rwkv_model_get_info(m)->n_vocab, SF = rwkv_model_get_info(m)->state_floats;
    struct rwkv_state_options so = rwkv_state_default_options();
    so.num_batch = 3;
    so.token_chunk_size = 3;
    struct rwkv_state *s[3] = {NULL, NULL, NULL};
    struct rwkv_error err;
    float *user = malloc(3 * V * sizeof *user), *st = malloc(SF * sizeof *st), *area[3] = {NULL, NULL, NULL};
    size_t rows = 0;
    for (int k = 0; k < 3; k++) {
        CHECK(rwkv_state_new(m, &so, &s[k], &err) == RWKV_OK);
        CHECK(s[k] && rwkv_state_logits_area(s[k], &area[k], &rows, &err) == RWKV_OK && area[k] && rows == 3);
    }
    CHECK(rwkv_state_logits_area(NULL, &area[0], &rows, &err) == RWKV_ERR_ARG);
    static const int32_t text[3][4] = {{72, 101, 108, 108}, {111, 32, 119, 111}, {114, 108, 100, 33}};
    double worst = 0;
    for (int t = 0; t < 4 && user && st && area[0] && area[1] && area[2]; t++) {
        struct rwkv_slot_io io[3][3];
        for (int i = 0; i < 3; i++) {
            float *dst[3] = {user + i * V, area[1] + i * V, area[2] + (2 - i) * V}; /* user, in place, reversed */
            for (int k = 0; k < 3; k++)
                io[k][i] = (struct rwkv_slot_io){.tokens = &text[i][t], .n_tokens = 1, .output = RWKV_OUTPUT_LAST,
                                                 .logits = dst[k], .logits_rows = 1};
        }
        for (int k = 0; k < 3; k++)
            CHECK(rwkv_run(s[k], io[k], 3, &err) == RWKV_OK);
        CHECK(rwkv_state_read(s[1], 0, st, SF, &err) == RWKV_OK); /* must not touch the area */
        for (int i = 0; i < 3; i++) {
            worst = fmax(worst, tc_max_diff(user + i * V, area[1] + i * V, V));
            worst = fmax(worst, tc_max_diff(user + i * V, area[2] + (2 - i) * V, V));
        }
    }
    CHECK_MSG(worst == 0, "%s: logits through the state's area differ by %g", label, worst);
    fprintf(stderr, "  %slogits area: in place and out of order equal to a user buffer\n", label);
    for (int k = 0; k < 3; k++)
        rwkv_state_free(s[k]);
    free(user);
    free(st);
    rwkv_model_free(m);
}

/* Probabilities computed on the device (softmax.comp) for the slots that ask, logits for the others:
 * the same tokens in both slots, so the probabilities must be rwkv_softmax of the other slot's logits;
 * also with more rows than a per-output tile (split 4 KiB). */
static void test_probabilities(struct rwkv_device *dev, const char *label)
{
    struct rwkv_model *m = load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"));
    if (!m)
        return;
    size_t V = (size_t)rwkv_model_get_info(m)->n_vocab;
    struct rwkv_state_options so = rwkv_state_default_options();
    so.num_batch = 3;
    so.token_chunk_size = 16;
    struct rwkv_state *s = NULL;
    struct rwkv_error err;
    CHECK(rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    static const int32_t toks[6] = {72, 101, 108, 108, 111, 33};
    float *lg = malloc(6 * V * sizeof *lg), *pr = malloc(6 * V * sizeof *pr), *pr2 = malloc(6 * V * sizeof *pr2);
    float *want = malloc(V * sizeof *want);
    double worst = 0, sum_err = 0;
    if (s && lg && pr && pr2 && want) {
        struct rwkv_slot_io io[3] = {{toks, 6, RWKV_OUTPUT_ALL, lg, 6, 0, 0, 0},
                                     {toks, 6, RWKV_OUTPUT_ALL, pr, 6, 0, 0, 1},
                                     {toks, 6, RWKV_OUTPUT_ALL, pr2, 6, 0, 0, 1}};
        while (io[0].n_tokens || io[1].n_tokens || io[2].n_tokens)
            if (rwkv_run(s, io, 3, &err) != RWKV_OK) {
                CHECK_MSG(0, "%s", err.message);
                break;
            }
        for (int t = 0; t < 6; t++) {
            rwkv_softmax(lg + t * V, want, V);
            worst = fmax(worst, tc_max_diff(want, pr + t * V, V));
            worst = fmax(worst, tc_max_diff(want, pr2 + t * V, V));
            double sum = 0;
            for (size_t i = 0; i < V; i++)
                sum += pr[t * V + i];
            sum_err = fmax(sum_err, fabs(sum - 1));
        }
    }
    CHECK_MSG(worst < 1e-6 && sum_err < 1e-5, "%sdevice probabilities off by %.3g, sum by %.3g", label, worst, sum_err);
    fprintf(stderr, "  %sprobabilities on the device: max diff %.2g from rwkv_softmax\n", label, worst);
    rwkv_state_free(s);
    free(lg);
    free(pr);
    free(pr2);
    free(want);
    rwkv_model_free(m);
}

/* ---- (5) state read / write / copy ---- */

static void test_state_io(void)
{
    struct rwkv_model *m = load(g_vk, tu_shared("models/tiny-rwkv-4v0-660K.st"));
    if (!m)
        return;
    const struct rwkv_model_info *info = rwkv_model_get_info(m);
    size_t SF = info->state_floats, V = (size_t)info->n_vocab;
    struct rwkv_state_options so = rwkv_state_default_options();
    so.num_batch = 3;
    so.token_chunk_size = 5;
    struct rwkv_state *s = NULL;
    struct rwkv_error err;
    float *a = malloc(SF * sizeof *a), *b = malloc(SF * sizeof *b), *init = malloc(SF * sizeof *init);
    float *lg = malloc(3 * V * sizeof *lg);
    CHECK(rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    if (!s || !a || !b || !init || !lg)
        goto done;
    /* fresh slots hold the initial state (v4: pp = -1e30) */
    CHECK(rwkv_state_read(s, 2, init, SF, &err) == RWKV_OK);
    CHECK(init[3 * (size_t)info->n_embd] == -1e30f && init[0] == 0.0f);
    /* slot 0 runs a prompt; slot 1 gets its state written, slot 2 copied: all then agree exactly */
    static const int32_t prompt[9] = {84, 104, 101, 32, 113, 117, 105, 99, 107};
    struct rwkv_slot_io io[3] = {{.tokens = prompt, .n_tokens = 9, .output = RWKV_OUTPUT_NONE}};
    while (io[0].n_tokens > 0 && rwkv_run(s, io, 1, &err) == RWKV_OK)
        ;
    CHECK(io[0].n_tokens == 0);
    CHECK(rwkv_state_read(s, 0, a, SF, &err) == RWKV_OK);
    CHECK(rwkv_state_write(s, 1, a, SF, &err) == RWKV_OK);
    CHECK(rwkv_state_copy(s, 0, 2, &err) == RWKV_OK);
    for (int slot = 1; slot < 3; slot++) {
        CHECK(rwkv_state_read(s, slot, b, SF, &err) == RWKV_OK);
        CHECK_MSG(memcmp(a, b, SF * sizeof *a) == 0, "slot %d differs from slot 0 after write/copy", slot);
    }
    static const int32_t next[2] = {32, 98};
    for (int i = 0; i < 3; i++)
        io[i] = (struct rwkv_slot_io){.tokens = next, .n_tokens = 2, .output = RWKV_OUTPUT_LAST,
                                      .logits = lg + (size_t)i * V, .logits_rows = 1};
    while ((io[0].n_tokens | io[1].n_tokens | io[2].n_tokens) > 0 && rwkv_run(s, io, 3, &err) == RWKV_OK)
        ;
    CHECK(memcmp(lg, lg + V, V * sizeof *lg) == 0 && memcmp(lg, lg + 2 * V, V * sizeof *lg) == 0);
    /* arbitrary values round-trip bit for bit; reset restores the initial state */
    for (size_t i = 0; i < SF; i++)
        a[i] = rnd(-3.0f, 3.0f);
    CHECK(rwkv_state_write(s, 2, a, SF, &err) == RWKV_OK);
    CHECK(rwkv_state_read(s, 2, b, SF, &err) == RWKV_OK);
    CHECK(memcmp(a, b, SF * sizeof *a) == 0);
    CHECK(rwkv_state_reset(s, 2, &err) == RWKV_OK);
    CHECK(rwkv_state_read(s, 2, b, SF, &err) == RWKV_OK);
    CHECK(memcmp(init, b, SF * sizeof *b) == 0);
    CHECK_ERR(rwkv_state_read(s, 3, b, SF, &err), RWKV_ERR_ARG, &err, "slot 3");
done:
    free(a);
    free(b);
    free(init);
    free(lg);
    rwkv_state_free(s);
    rwkv_model_free(m);
}

/* A state no descriptor can cover (2^20 slots x 16 KiB of a layer's WKV state: beyond the 4 GiB any
 * maxStorageBufferRange allows) fails cleanly. */
static void test_state_limit(void)
{
    struct rwkv_model *m = load(g_vk, tu_shared("models/tiny-rwkv-7v0-834K.st"));
    if (!m)
        return;
    struct rwkv_state_options so = rwkv_state_default_options();
    so.num_batch = 1 << 20;
    struct rwkv_state *huge = NULL;
    struct rwkv_error err;
    CHECK_ERR(rwkv_state_new(m, &so, &huge, &err), RWKV_ERR_UNSUPPORTED, &err, "slots");
    CHECK(huge == NULL);
    rwkv_model_free(m);
}

/* ---- main ---- */

int main(void)
{
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_VULKAN;
    o.verbose = 1;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &g_vk, &err)) {
        const char *req = getenv("RWKV_REQUIRE_VULKAN");
        fprintf(stderr, "test_vulkan: no Vulkan: %s\n", err.message);
        if (req && *req) {
            fprintf(stderr, "test_vulkan: RWKV_REQUIRE_VULKAN is set: failing\n");
            return 1;
        }
        fprintf(stderr, "test_vulkan: skipped (set RWKV_REQUIRE_VULKAN to make this a failure)\n");
        return 0;
    }
    o.backend = RWKV_BACKEND_CPU;
    o.verbose = 0;
    CHECK(rwkv_device_open(&o, &g_cpu, &err) == RWKV_OK);
    CHECK(rwkv_device_backend(g_vk) == RWKV_BACKEND_VULKAN);
    fprintf(stderr, "test_vulkan: %s\n", rwkv_device_description(g_vk));

    /* every case file (plain, LoRA, initial state), both weight files, every position */
    tc_run_all_cases(g_vk, 1e-4, "vulkan");

    fprintf(stderr, "against the CPU backend:\n");
    test_synthetic(g_vk, "", 4);
    test_large(g_vk, "");
    /* weights split into parts of at most 4 KiB, per-output tiles that small */
    struct rwkv_device *split = open_with_env("RWKV_VK_SPLIT_BYTES", "4096");
    if (split) {
        test_synthetic(split, "split 4 KiB: ", 2);
        rwkv_device_free(split);
    }
    if ((split = open_with_env("RWKV_VK_SPLIT_BYTES", "65536"))) {
        test_large(split, "split 64 KiB: ");
        rwkv_device_free(split);
    }
    struct rwkv_device *nosg = open_with_env("RWKV_VK_NO_SUBGROUP", "1");
    if (nosg) {
        test_synthetic(nosg, "no subgroups: ", 2);
        rwkv_device_free(nosg);
    }
    /* chunk tables copied to the device (where the host cannot write device memory) */
    struct rwkv_device *copy = open_with_env("RWKV_VK_TABLE_COPY", "1");
    if (copy) {
        compare_cpu(copy, &synth_dims[4], "table by copy: v7 C=72 H=3 f16", 2);
        rwkv_device_free(copy);
    }
    test_coopmat_modes();
    test_wkv7_rows();
    test_token_step();
    /* one-token chunks: the one-token kernels without the LoRA fusion, and the general kernels */
    static const char *const one_modes[2][2] = {{"nolora", "one-token kernels without LoRA: "},
                                                {"0", "general kernels for one token: "}};
    for (int i = 0; i < 2; i++) {
        struct rwkv_device *dev = open_with_env("RWKV_VK_ONE_TOKEN", one_modes[i][0]);
        if (dev) {
            compare_cpu(dev, ALIGNED_DIMS, one_modes[i][1], 4);
            rwkv_device_free(dev);
        }
    }
    /* chunks of one token with the layer norms in their own dispatches (the default folds them into
     * the GEMVs that read them: every v7 model at chunk 1 above) */
    struct rwkv_device *nofuse = open_with_env("RWKV_VK_MIX_FUSE", "0");
    if (nofuse) {
        compare_cpu(nofuse, ALIGNED_DIMS, "layer norms not folded: ", 4);
        rwkv_device_free(nofuse);
    }
    /* one-token FFN values over the transposed matrices, skipping ReLU^2's zeros (chunk 1 runs it) */
    struct rwkv_device *sparse = open_with_env("RWKV_VK_SPARSE_FFN", "1");
    if (sparse) {
        compare_cpu(sparse, ALIGNED_DIMS, "sparse FFN value, v7: ", 4);
        compare_cpu(sparse, &synth_dims[3], "sparse FFN value, v6: ", 4);
        compare_cpu(sparse, &synth_dims[6], "sparse FFN value, v6 bf16: ", 4);
        rwkv_device_free(sparse);
    }

    fprintf(stderr, "batching and state:\n");
    test_batched("models/tiny-rwkv-7v0-834K.st");
    test_batched("models/tiny-rwkv-5v2-730K.st");
    test_state_io();
    test_state_limit();
    test_logits_area(g_vk, "vulkan: ");
    test_probabilities(g_vk, "");
    if ((split = open_with_env("RWKV_VK_SPLIT_BYTES", "4096"))) {
        test_probabilities(split, "split 4 KiB: ");
        rwkv_device_free(split);
    }
    test_logits_area(g_cpu, "cpu: ");

    rwkv_device_free(g_cpu);
    rwkv_device_free(g_vk);
    return tu_finish("test_vulkan");
}
