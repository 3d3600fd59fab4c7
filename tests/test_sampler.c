/* Sampler: greedy, reproducibility, top-k/top-p/min-p against references computed the slow way, the
 * sampled distribution against softmax, penalties and decay, option checks, and speed at 65536. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/platform.h"
#include "util/testutil.h"

#define NV 65536

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float rnd_float(void) /* [-4, 4) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * 0x1.0p-53 * 8.0 - 4.0);
}

static struct rwkv_sampler *make(struct rwkv_sampler_options o, size_t n_vocab)
{
    struct rwkv_error err;
    struct rwkv_sampler *s = NULL;
    rwkv_status st = rwkv_sampler_new(&o, n_vocab, &s, &err);
    CHECK_MSG(st == RWKV_OK, "%s", err.message);
    return s;
}

static int32_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return (int32_t)b;
}

static void test_greedy(float *logits)
{
    struct rwkv_sampler_options o = rwkv_sampler_default_options();
    o.temperature = 0.0f;
    struct rwkv_sampler *greedy = make(o, NV);
    o = rwkv_sampler_default_options();
    o.top_k = 1;
    struct rwkv_sampler *k1 = make(o, NV);
    o = rwkv_sampler_default_options();
    o.top_p = 1e-6f;
    struct rwkv_sampler *p0 = make(o, NV);
    o.top_p = 1.0f;
    o.min_p = 1.0f;
    struct rwkv_sampler *m1 = make(o, NV);
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < NV; i++)
            logits[i] = rnd_float();
        int32_t want = argmax(logits, NV);
        CHECK(rwkv_sampler_sample(greedy, logits) == want);
        CHECK(rwkv_sampler_sample(k1, logits) == want);
        CHECK(rwkv_sampler_sample(p0, logits) == want);
        CHECK(rwkv_sampler_sample(m1, logits) == want);
    }
    rwkv_sampler_free(k1);
    rwkv_sampler_free(p0);
    rwkv_sampler_free(m1);
    /* ties go to the lowest id; NaN is never picked; +inf always is */
    rwkv_sampler_free(greedy);
    o = rwkv_sampler_default_options();
    o.temperature = 0.0f;
    greedy = make(o, 5);
    o.temperature = 1.0f;
    o.top_p = 1e-6f;
    p0 = make(o, 5);
    float tie[5] = {1.0f, 3.0f, NAN, 3.0f, 0.0f};
    CHECK(rwkv_sampler_sample(greedy, tie) == 1);
    CHECK(rwkv_sampler_sample(p0, tie) == 1);
    tie[4] = INFINITY;
    CHECK(rwkv_sampler_sample(greedy, tie) == 4);
    CHECK(rwkv_sampler_sample(p0, tie) == 4);
    rwkv_sampler_free(greedy);
    rwkv_sampler_free(p0);
    /* two equal tokens, top_p 0.3: the first (0.5 >= 0.3) is the whole nucleus */
    o.top_p = 0.3f;
    p0 = make(o, 2);
    const float two[2] = {1.0f, 1.0f};
    int all_first = 1;
    for (int i = 0; i < 100; i++)
        all_first &= rwkv_sampler_sample(p0, two) == 0;
    CHECK(all_first);
    rwkv_sampler_free(p0);
}

static void test_seed(const float *logits)
{
    struct rwkv_sampler_options o = rwkv_sampler_default_options();
    o.seed = 42;
    o.top_p = 0.9f;
    struct rwkv_sampler *a = make(o, NV), *b = make(o, NV);
    o.seed = 43;
    struct rwkv_sampler *c = make(o, NV);
    int32_t first[200];
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        first[i] = rwkv_sampler_sample(a, logits);
        CHECK(first[i] == rwkv_sampler_sample(b, logits));
        differ |= first[i] != rwkv_sampler_sample(c, logits);
    }
    CHECK(differ);
    rwkv_sampler_reset(a); /* reset restarts the stream */
    int same = 1;
    for (int i = 0; i < 200; i++)
        same &= first[i] == rwkv_sampler_sample(a, logits);
    CHECK(same);
    rwkv_sampler_free(a);
    rwkv_sampler_free(b);
    rwkv_sampler_free(c);
}

/* Draws `n` samples and checks each token's frequency against `want` (probabilities, summing to 1):
 * within 5 standard deviations, and never a token with probability 0. */
static void check_distribution(struct rwkv_sampler *s, const float *logits, const double *want, size_t n_vocab,
                               int n, const char *what)
{
    int *count = calloc(n_vocab, sizeof *count);
    for (int i = 0; i < n; i++) {
        int32_t t = rwkv_sampler_sample(s, logits);
        CHECK(t >= 0 && (size_t)t < n_vocab);
        if (t >= 0 && (size_t)t < n_vocab)
            count[t]++;
    }
    for (size_t t = 0; t < n_vocab; t++) {
        double mean = n * want[t], sd = sqrt(n * want[t] * (1.0 - want[t]));
        if (want[t] == 0.0)
            CHECK_MSG(count[t] == 0, "%s: token %zu drawn %d times, want never", what, t, count[t]);
        else
            CHECK_MSG(fabs(count[t] - mean) <= 5.0 * sd + 1.0, "%s: token %zu drawn %d times, want %.1f +- %.1f",
                      what, t, count[t], mean, sd);
    }
    free(count);
}

/* Softmax of logits / T restricted to `keep` (NULL = all), normalised. */
static void reference(const float *logits, size_t n, float temperature, const int *keep, double *p)
{
    double max = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!keep || keep[i])
            max = logits[i] > max ? logits[i] : max;
    for (size_t i = 0; i < n; i++) {
        p[i] = !keep || keep[i] ? exp((logits[i] - max) / temperature) : 0.0;
        sum += p[i];
    }
    for (size_t i = 0; i < n; i++)
        p[i] /= sum;
}

static const float *sort_base;
static int by_logit_desc(const void *a, const void *b)
{
    float x = sort_base[*(const int *)a], y = sort_base[*(const int *)b];
    return x > y ? -1 : x < y ? 1 : *(const int *)a - *(const int *)b;
}

/* Samples with `o` and compares with the softmax at o.temperature restricted to `keep` (NULL = all). */
static void expect_softmax(struct rwkv_sampler_options o, const float *logits, size_t n, const int *keep,
                           const char *what)
{
    double *want = malloc(n * sizeof *want);
    reference(logits, n, o.temperature, keep, want);
    struct rwkv_sampler *s = make(o, n);
    check_distribution(s, logits, want, n, 20000, what);
    rwkv_sampler_free(s);
    free(want);
}

static void test_distributions(void)
{
    enum { N = 8 };
    const float logits[N] = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 3.0f, -INFINITY, 1.5f};
    int keep[N], order[N];
    struct rwkv_sampler_options o = rwkv_sampler_default_options();
    o.seed = 7;
    expect_softmax(o, logits, N, NULL, "temperature 1");
    o.temperature = 0.5f;
    expect_softmax(o, logits, N, NULL, "temperature 0.5");

    for (int i = 0; i < N; i++)
        order[i] = i;
    sort_base = logits;
    qsort(order, N, sizeof *order, by_logit_desc);

    o.temperature = 1.0f; /* top-k 3: the three best, renormalised */
    o.top_k = 3;
    memset(keep, 0, sizeof keep);
    for (int i = 0; i < 3; i++)
        keep[order[i]] = 1;
    expect_softmax(o, logits, N, keep, "top_k 3");

    o.top_k = 0; /* top-p 0.8: the smallest best-first prefix with mass >= 0.8 */
    o.top_p = 0.8f;
    double all[N], acc = 0.0;
    reference(logits, N, 1.0f, NULL, all);
    memset(keep, 0, sizeof keep);
    for (int i = 0; i < N && acc < 0.8; i++) {
        keep[order[i]] = 1;
        acc += all[order[i]];
    }
    expect_softmax(o, logits, N, keep, "top_p 0.8");

    o.top_p = 1.0f; /* min-p 0.2: tokens with p >= 0.2 * p_max, i.e. logit >= max + ln 0.2 */
    o.min_p = 0.2f;
    for (int i = 0; i < N; i++)
        keep[i] = logits[i] >= 3.0f + logf(0.2f);
    expect_softmax(o, logits, N, keep, "min_p 0.2");
}

/* top-p over a full random vocabulary, against a full sort. */
static void test_top_p_large(const float *logits)
{
    for (int k = 0; k < 2; k++) {
        float top_p = k ? 0.3f : 0.95f;
        int *order = malloc(NV * sizeof *order), *keep = calloc(NV, sizeof *keep);
        double *p = malloc(NV * sizeof *p), acc = 0.0;
        for (int i = 0; i < NV; i++)
            order[i] = i;
        sort_base = logits;
        qsort(order, NV, sizeof *order, by_logit_desc);
        reference(logits, NV, 1.0f, NULL, p);
        size_t n_keep = 0;
        for (int i = 0; i < NV && acc < top_p; i++, n_keep++) {
            keep[order[i]] = 1;
            acc += p[order[i]];
        }
        struct rwkv_sampler_options o = rwkv_sampler_default_options();
        o.top_p = top_p;
        struct rwkv_sampler *s = make(o, NV);
        int outside = 0;
        for (int i = 0; i < 1000; i++)
            outside += !keep[rwkv_sampler_sample(s, logits)];
        CHECK_MSG(outside == 0, "top_p %.2f: %d draws outside the %zu-token nucleus", top_p, outside, n_keep);
        rwkv_sampler_free(s);
        free(order);
        free(keep);
        free(p);
    }
}

static struct rwkv_sampler *greedy_with(float rep, float presence, float freq, float decay)
{
    struct rwkv_sampler_options o = rwkv_sampler_default_options();
    o.temperature = 0.0f;
    o.repetition_penalty = rep;
    o.presence_penalty = presence;
    o.frequency_penalty = freq;
    o.penalty_decay = decay;
    return make(o, 4);
}

static void test_penalties(void)
{
    const float pos[4] = {2.0f, 1.5f, 0.0f, -5.0f};
    const float neg[4] = {-1.0f, -1.2f, -3.0f, -5.0f};
    struct rwkv_sampler *s = greedy_with(1.5f, 0, 0, 1); /* 2 / 1.5 = 1.33 < 1.5 */
    CHECK(rwkv_sampler_sample(s, pos) == 0);
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, pos) == 1);
    CHECK(rwkv_sampler_sample(s, neg) == 1); /* -1 * 1.5 = -1.5 < -1.2 */
    rwkv_sampler_reset(s);
    CHECK(rwkv_sampler_sample(s, pos) == 0);
    rwkv_sampler_accept(s, -1); /* ignored */
    rwkv_sampler_accept(s, 4);
    CHECK(rwkv_sampler_sample(s, pos) == 0);
    rwkv_sampler_free(s);

    s = greedy_with(1, 0.6f, 0, 1); /* presence: once, however often */
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, pos) == 1);
    rwkv_sampler_accept(s, 1);
    rwkv_sampler_accept(s, 1);
    rwkv_sampler_accept(s, 1);
    CHECK(rwkv_sampler_sample(s, pos) == 0); /* 1.4 vs 0.9 */
    rwkv_sampler_free(s);

    const float close[4] = {1.0f, 0.5f, 0.0f, 0.0f};
    s = greedy_with(1, 0, 0.3f, 1); /* frequency: per occurrence */
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, close) == 0); /* 0.7 */
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, close) == 1); /* 0.4 */
    rwkv_sampler_free(s);

    s = greedy_with(1, 0, 0.3f, 0.5f); /* decay: 0.5 * 1 + 1 = 1.5 occurrences -> 0.55 */
    rwkv_sampler_accept(s, 0);
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, close) == 0);
    rwkv_sampler_accept(s, 2);
    rwkv_sampler_accept(s, 0); /* 1.5 * 0.25 + 1 = 1.375 -> 0.5875 */
    CHECK(rwkv_sampler_sample(s, close) == 0);
    rwkv_sampler_free(s);

    s = greedy_with(1, 0.6f, 0, 0.0f); /* decay 0: only the last token counts */
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, close) == 1);
    rwkv_sampler_accept(s, 1);
    CHECK(rwkv_sampler_sample(s, close) == 0);
    rwkv_sampler_free(s);

    /* an infinite logit minus an infinite penalty must not become NaN and win */
    s = greedy_with(1, 0, 3e38f, 1);
    const float inf[4] = {INFINITY, 0.0f, -1.0f, -2.0f};
    rwkv_sampler_accept(s, 0);
    rwkv_sampler_accept(s, 0);
    CHECK(rwkv_sampler_sample(s, inf) == 1);
    rwkv_sampler_free(s);
}

static void test_bad_options(void)
{
    struct bad {
        const char *needle;
        struct rwkv_sampler_options o;
    } cases[12];
    int n = 0;
    struct rwkv_sampler_options d = rwkv_sampler_default_options();
#define BAD(field, value)                                                                                             \
    do {                                                                                                              \
        cases[n].needle = #field;                                                                                     \
        cases[n].o = d;                                                                                               \
        cases[n++].o.field = value;                                                                                   \
    } while (0)
    BAD(temperature, -0.1f);
    BAD(temperature, NAN);
    BAD(temperature, INFINITY);
    BAD(top_p, 0.0f);
    BAD(top_p, 1.01f);
    BAD(top_p, NAN);
    BAD(top_k, -1);
    BAD(min_p, -0.5f);
    BAD(repetition_penalty, 0.0f);
    BAD(presence_penalty, NAN);
    BAD(frequency_penalty, -INFINITY);
    BAD(penalty_decay, 1.5f);
#undef BAD
    for (int i = 0; i < n; i++) {
        struct rwkv_error err;
        struct rwkv_sampler *s = (struct rwkv_sampler *)&err;
        CHECK_ERR(rwkv_sampler_new(&cases[i].o, 10, &s, &err), RWKV_ERR_ARG, &err, cases[i].needle);
        CHECK(s == NULL);
    }
    struct rwkv_error err;
    struct rwkv_sampler *s;
    CHECK_ERR(rwkv_sampler_new(&d, 0, &s, &err), RWKV_ERR_ARG, &err, "n_vocab");
    CHECK_ERR(rwkv_sampler_new(&d, 10, NULL, &err), RWKV_ERR_ARG, &err, NULL);
    CHECK(rwkv_sampler_new(NULL, 10, &s, &err) == RWKV_OK); /* NULL options: the defaults */
    CHECK(rwkv_sampler_sample(s, NULL) == -1);
    rwkv_sampler_free(s);
    rwkv_sampler_free(NULL);
}

static void bench(const float *logits)
{
    static const struct {
        const char *name;
        float top_p;
        int top_k;
    } cfg[] = {{"plain", 1.0f, 0}, {"top_p 0.9", 0.9f, 0}, {"top_k 40 + top_p 0.9", 0.9f, 40}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        struct rwkv_sampler_options o = rwkv_sampler_default_options();
        o.top_p = cfg[c].top_p;
        o.top_k = cfg[c].top_k;
        o.presence_penalty = 0.3f;
        o.frequency_penalty = 0.3f;
        o.penalty_decay = 0.996f;
        struct rwkv_sampler *s = make(o, NV);
        double t0 = rwkv_time_seconds();
        for (int i = 0; i < 200; i++)
            rwkv_sampler_accept(s, rwkv_sampler_sample(s, logits));
        fprintf(stderr, "bench: %s over %d tokens: %.3f ms/sample\n", cfg[c].name, NV,
                (rwkv_time_seconds() - t0) / 200 * 1e3);
        rwkv_sampler_free(s);
    }
}

int main(void)
{
    float *logits = malloc(NV * sizeof *logits);
    test_greedy(logits);
    for (size_t i = 0; i < NV; i++)
        logits[i] = rnd_float();
    test_seed(logits);
    test_distributions();
    test_top_p_large(logits);
    test_penalties();
    test_bad_options();
    bench(logits);
    free(logits);
    return tu_finish("test_sampler");
}
