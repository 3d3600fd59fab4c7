/* The sampler: penalties -> temperature -> top-k -> softmax -> top-p -> min-p -> draw.
 *
 * Penalties follow ChatRWKV / llama.cpp: a seen token's logit is divided (positive) or multiplied
 * (negative) by repetition_penalty, then presence_penalty + frequency_penalty * weight is subtracted,
 * where weight is the token's occurrence count with every older occurrence scaled by penalty_decay once
 * per later accepted token. Nothing is sorted: top-k keeps a heap, top-p partitions like quickselect.
 * The random generator is xoshiro256** seeded through splitmix64: a seed gives the same stream on every
 * platform (rand() would not). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

struct cand {
    float p; /* logit, then exp((logit - max) / temperature): the top candidate has p == 1 */
    int32_t id;
};

struct rwkv_sampler {
    struct rwkv_sampler_options opt;
    size_t n_vocab;
    float *work;        /* [n_vocab] penalised logits */
    struct cand *cands; /* [n_vocab] */
    float *weight;      /* [n_vocab] decayed occurrence counts; > 0 means seen */
    int32_t *seen;      /* [n_vocab] ids with weight > 0, in no order */
    size_t n_seen;
    struct rwkv_rng rng;
};

/* ---- random numbers ----------------------------------------------------------------------------- */

/* ---- options ------------------------------------------------------------------------------------ */

struct rwkv_sampler_options rwkv_sampler_default_options(void)
{
    return (struct rwkv_sampler_options){
        .temperature = 1.0f,
        .top_p = 1.0f,
        .top_k = 0,
        .min_p = 0.0f,
        .repetition_penalty = 1.0f,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .penalty_decay = 1.0f,
        .seed = 0,
    };
}

/* The name of the first bad option, or NULL. Comparisons are written so that NaN fails them. */
static const char *bad_option(const struct rwkv_sampler_options *o, size_t n_vocab)
{
    if (!(o->temperature >= 0.0f && isfinite(o->temperature)))
        return "temperature (want a finite value >= 0)";
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return "top_p (want (0, 1])";
    if (o->top_k < 0)
        return "top_k (want >= 0)";
    if (!(o->min_p >= 0.0f && o->min_p <= 1.0f))
        return "min_p (want [0, 1])";
    if (!(o->repetition_penalty > 0.0f && isfinite(o->repetition_penalty)))
        return "repetition_penalty (want a finite value > 0)";
    if (!isfinite(o->presence_penalty))
        return "presence_penalty (want a finite value)";
    if (!isfinite(o->frequency_penalty))
        return "frequency_penalty (want a finite value)";
    if (!(o->penalty_decay >= 0.0f && o->penalty_decay <= 1.0f))
        return "penalty_decay (want [0, 1])";
    if (n_vocab == 0 || n_vocab > INT32_MAX)
        return "n_vocab (want 1 .. 2^31-1)";
    return NULL;
}

rwkv_status rwkv_sampler_new(const struct rwkv_sampler_options *options, size_t n_vocab, struct rwkv_sampler **out,
                             struct rwkv_error *err)
{
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_sampler_new: out is NULL");
    *out = NULL;
    struct rwkv_sampler_options opt = options ? *options : rwkv_sampler_default_options();
    const char *bad = bad_option(&opt, n_vocab);
    if (bad)
        return rwkv_fail(err, RWKV_ERR_ARG, "sampler: bad %s", bad);
    struct rwkv_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "sampler: out of memory");
    s->opt = opt;
    s->n_vocab = n_vocab;
    s->work = malloc(n_vocab * sizeof *s->work);
    s->cands = malloc(n_vocab * sizeof *s->cands);
    s->weight = malloc(n_vocab * sizeof *s->weight);
    s->seen = malloc(n_vocab * sizeof *s->seen);
    if (!s->work || !s->cands || !s->weight || !s->seen) {
        rwkv_sampler_free(s);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "sampler: out of memory for %zu tokens", n_vocab);
    }
    rwkv_sampler_reset(s);
    *out = s;
    return RWKV_OK;
}

void rwkv_sampler_free(struct rwkv_sampler *s)
{
    if (!s)
        return;
    free(s->work);
    free(s->cands);
    free(s->weight);
    free(s->seen);
    free(s);
}

/* Forgets every accepted token and restarts the random stream from the seed: a reset sampler repeats
 * what a new one would do. */
void rwkv_sampler_reset(struct rwkv_sampler *s)
{
    if (!s)
        return;
    memset(s->weight, 0, s->n_vocab * sizeof *s->weight);
    s->n_seen = 0;
    rwkv_rng_seed(&s->rng, s->opt.seed);
}

/* Older occurrences fade by penalty_decay, then the new one counts 1 (ChatRWKV's order). Tokens whose
 * weight reaches 0 (decay 0, or underflow) are no longer seen. Ids outside the vocabulary are ignored. */
void rwkv_sampler_accept(struct rwkv_sampler *s, int32_t token)
{
    if (!s || token < 0 || (size_t)token >= s->n_vocab)
        return;
    float decay = s->opt.penalty_decay;
    if (decay != 1.0f) {
        size_t k = 0;
        for (size_t i = 0; i < s->n_seen; i++) {
            int32_t t = s->seen[i];
            s->weight[t] *= decay;
            if (s->weight[t] > 0.0f)
                s->seen[k++] = t;
        }
        s->n_seen = k;
    }
    if (!(s->weight[token] > 0.0f)) {
        s->weight[token] = 0.0f;
        s->seen[s->n_seen++] = token;
    }
    s->weight[token] += 1.0f;
}

/* ---- sampling ----------------------------------------------------------------------------------- */

static int penalties_on(const struct rwkv_sampler_options *o)
{
    return o->repetition_penalty != 1.0f || o->presence_penalty != 0.0f || o->frequency_penalty != 0.0f;
}

/* work = logits with NaN read as -inf (a NaN would poison every comparison), penalties applied. */
static void apply_penalties(struct rwkv_sampler *s, const float *logits)
{
    for (size_t i = 0; i < s->n_vocab; i++)
        s->work[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    if (!penalties_on(&s->opt))
        return;
    const struct rwkv_sampler_options *o = &s->opt;
    for (size_t i = 0; i < s->n_seen; i++) {
        int32_t t = s->seen[i];
        float l = s->work[t];
        l = l > 0.0f ? l / o->repetition_penalty : l * o->repetition_penalty;
        l = l - o->presence_penalty - o->frequency_penalty * s->weight[t];
        s->work[t] = isnan(l) ? -INFINITY : l; /* inf - inf, from an infinite logit */
    }
}

/* Candidate order: higher first, lower id first among equals. A total order, so which tokens top-k and
 * top-p keep never depends on how ties happen to be arranged. */
static int cand_before(struct cand a, struct cand b)
{
    return a.p > b.p || (a.p == b.p && a.id < b.id);
}

static int32_t argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* Restores the heap property below `i` in a heap whose root is the worst candidate. */
static void heap_sift(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cand_before(h[w], h[l]))
            w = l;
        if (r < n && cand_before(h[w], h[r]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k best of work[] into cands[0, k), in heap order: O(n log k). */
static void select_top_k(struct rwkv_sampler *s, size_t k)
{
    struct cand *h = s->cands;
    for (size_t i = 0; i < k; i++)
        h[i] = (struct cand){s->work[i], (int32_t)i};
    for (size_t i = k / 2; i-- > 0;)
        heap_sift(h, k, i);
    for (size_t i = k; i < s->n_vocab; i++) {
        struct cand c = {s->work[i], (int32_t)i};
        if (cand_before(c, h[0])) {
            h[0] = c;
            heap_sift(h, k, 0);
        }
    }
}

/* The largest p. Eight running maxima rather than one: a single one is a serial dependency chain, eight
 * independent lanes let the compiler use vector instructions. */
static float max_p(const struct cand *c, size_t n)
{
    float m[8];
    for (int j = 0; j < 8; j++)
        m[j] = -INFINITY;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m[j] = c[i + j].p > m[j] ? c[i + j].p : m[j];
    for (; i < n; i++)
        m[0] = c[i].p > m[0] ? c[i].p : m[0];
    for (int j = 1; j < 8; j++)
        m[0] = m[j] > m[0] ? m[j] : m[0];
    return m[0];
}

static double mass(const struct cand *c, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += c[i].p;
    return sum;
}

/* Turns logits into unnormalised probabilities exp((l - max) / T); returns their sum. */
static double exponentiate(struct cand *c, size_t n, float temperature)
{
    float max = max_p(c, n);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        /* l == max also covers max = +-inf, where l - max would be NaN */
        c[i].p = c[i].p == max ? 1.0f : expf((c[i].p - max) / temperature);
        sum += c[i].p;
    }
    return sum;
}

/* Keeps the candidates with p >= cut (in order), returns their count. */
static size_t keep_at_least(struct cand *c, size_t n, double cut)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].p >= cut)
            c[k++] = c[i];
    return k;
}

static void swap_cand(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Median of three as the pivot (so input already in order is not the worst case);
 * moves the candidates that come before it to the front of [lo, hi). Returns the pivot's new index. */
static size_t partition(struct cand *c, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (cand_before(c[mid], c[lo]))
        swap_cand(&c[mid], &c[lo]);
    if (cand_before(c[last], c[mid])) {
        swap_cand(&c[last], &c[mid]);
        if (cand_before(c[mid], c[lo]))
            swap_cand(&c[mid], &c[lo]);
    }
    swap_cand(&c[mid], &c[last]);
    size_t m = lo;
    for (size_t i = lo; i < last; i++)
        if (cand_before(c[i], c[last]))
            swap_cand(&c[i], &c[m++]);
    swap_cand(&c[m], &c[last]);
    return m;
}

/* Top-p: keeps the smallest best-first prefix whose mass reaches top_p, found like quickselect (expected
 * O(n), where sorting 65536 candidates per token would cost milliseconds). The kept candidates end up
 * in c[0, count) in no particular (but deterministic) order. Returns the count.
 *
 * First, tokens under (1 - top_p) / (n - 1) of the mass are dropped: all of them together hold less
 * than 1 - top_p, so the better tokens reach top_p before any of them is needed, the best token itself
 * excepted (it has p = 1, hence the clamp). In a peaked distribution that leaves few candidates. */
static size_t nucleus(struct cand *c, size_t n, double sum, float top_p)
{
    if (n > 1)
        n = keep_at_least(c, n, fmin((1.0 - top_p) / (double)(n - 1) * sum, 1.0));
    double want = top_p * sum, acc = 0.0; /* acc: the mass of c[0, lo), all of it in the nucleus */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = partition(c, lo, hi);
        double before = mass(c + lo, m - lo);
        if (acc + before >= want) { /* the prefix ends before the pivot */
            hi = m;
            continue;
        }
        acc += before + c[m].p;
        if (acc >= want)
            return m + 1;
        lo = m + 1;
    }
    return hi; /* rounding: the mass found differs in the last bits from `sum` */
}

/* `sum` is the mass of c[0, n). */
static int32_t draw(const struct cand *c, size_t n, double sum, struct rwkv_rng *rng)
{
    double r = rwkv_rng_uniform(rng) * sum, acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += c[i].p;
        if (r < acc)
            return c[i].id;
    }
    return c[n - 1].id; /* r fell in the rounding gap at the end */
}

int32_t rwkv_sampler_sample(struct rwkv_sampler *s, const float *logits)
{
    if (!s || !logits)
        return -1;
    const struct rwkv_sampler_options *o = &s->opt;
    apply_penalties(s, logits);
    if (o->temperature == 0.0f || o->top_k == 1)
        return argmax(s->work, s->n_vocab);
    size_t n = s->n_vocab;
    if (o->top_k > 0 && (size_t)o->top_k < n) {
        n = (size_t)o->top_k;
        select_top_k(s, n);
    } else {
        for (size_t i = 0; i < n; i++)
            s->cands[i] = (struct cand){s->work[i], (int32_t)i};
    }
    double sum = exponentiate(s->cands, n, o->temperature);
    size_t all = n;
    if (o->top_p < 1.0f)
        n = nucleus(s->cands, n, sum, o->top_p);
    if (o->min_p > 0.0f) /* relative to the best token, whose p is 1 */
        n = keep_at_least(s->cands, n, o->min_p);
    return draw(s->cands, n, n == all ? sum : mass(s->cands, n), &s->rng);
}
