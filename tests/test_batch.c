/* Batching and state management: batched runs equal sequential ones for any chunk size; states
 * continue, fork, reset, save and load; wrong-model state files are rejected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/cases.h"

static struct rwkv_device *dev;
static const char *const models[] = {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-1m", "7v0-834K"};

static uint32_t rng = 12345;
static int32_t next_token(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (int32_t)((rng >> 16) % 256);
}

static struct rwkv_model *load(const char *stem)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/tiny-rwkv-%s.st", stem);
    struct rwkv_model *m = NULL;
    struct rwkv_error err;
    if (rwkv_model_load(dev, tu_shared(rel), NULL, &m, &err))
        fprintf(stderr, "%s\n", err.message);
    return m;
}

#define NSEQ 6
static const size_t lens[NSEQ] = {1, 300, 5, 64, 0, 131};

/* All sequences in one state with `chunk`, every-token output (slot 4 has no input and must stay
 * untouched), compared with each sequence alone in a fresh state. */
static void batched_vs_sequential(struct rwkv_model *m, int32_t *seq[NSEQ], const float *const alone[NSEQ], int chunk)
{
    size_t V = (size_t)rwkv_model_get_info(m)->n_vocab, S = rwkv_model_get_info(m)->state_floats;
    struct rwkv_state_options so = {NSEQ, chunk};
    struct rwkv_state *s;
    struct rwkv_error err;
    CHECK(rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    float *out[NSEQ];
    struct rwkv_slot_io io[NSEQ];
    for (int i = 0; i < NSEQ; i++) {
        out[i] = malloc((lens[i] + 1) * V * sizeof(float));
        io[i] = (struct rwkv_slot_io){seq[i], lens[i], RWKV_OUTPUT_ALL, out[i], lens[i], 0, 0, 0};
    }
    float *before = malloc(S * sizeof(float)), *after = malloc(S * sizeof(float));
    rwkv_state_read(s, 4, before, S, &err);
    int guard = 0, ok = 1;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < NSEQ; i++)
            pending |= io[i].n_tokens > 0;
        if (!pending || guard++ > 100000)
            break;
        if (rwkv_run(s, io, NSEQ, &err) != RWKV_OK) {
            ok = 0;
            fprintf(stderr, "%s\n", err.message);
            break;
        }
        size_t total = 0;
        for (int i = 0; i < NSEQ; i++)
            total += io[i].consumed;
        if (total == 0 || total > (size_t)chunk)
            ok = 0;
    }
    CHECK_MSG(ok, "chunk %d: each run consumes 1..chunk tokens", chunk);
    double worst = 0;
    for (int i = 0; i < NSEQ; i++) {
        double d = tc_max_diff(out[i], alone[i], lens[i] * V);
        worst = d > worst ? d : worst;
    }
    CHECK_MSG(worst <= 2e-5, "chunk %d: batched vs alone max diff %.3g", chunk, worst);
    rwkv_state_read(s, 4, after, S, &err);
    CHECK_MSG(memcmp(before, after, S * sizeof(float)) == 0, "chunk %d: a slot without input changed", chunk);
    for (int i = 0; i < NSEQ; i++)
        free(out[i]);
    free(before);
    free(after);
    rwkv_state_free(s);
}

static void test_batching(const char *stem)
{
    struct rwkv_model *m = load(stem);
    CHECK(m != NULL);
    if (!m)
        return;
    size_t V = (size_t)rwkv_model_get_info(m)->n_vocab;
    int32_t *seq[NSEQ];
    float *alone[NSEQ];
    struct rwkv_error err;
    for (int i = 0; i < NSEQ; i++) {
        seq[i] = malloc((lens[i] + 1) * sizeof(int32_t));
        for (size_t k = 0; k < lens[i]; k++)
            seq[i][k] = next_token();
        alone[i] = malloc((lens[i] + 1) * V * sizeof(float));
        CHECK(tc_run(m, seq[i], lens[i], 512, NULL, alone[i], &err) == RWKV_OK);
    }
    static const int chunks[] = {1, 7, 97, 256, 5000};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++)
        batched_vs_sequential(m, seq, (const float *const *)alone, chunks[c]);
    for (int i = 0; i < NSEQ; i++) {
        free(seq[i]);
        free(alone[i]);
    }
    rwkv_model_free(m);
}

/* Logits of B after A's state (kept, read/written, saved/loaded, or copied) = logits of A+B. */
static void test_continuation(const char *stem)
{
    struct rwkv_model *m = load(stem);
    CHECK(m != NULL);
    if (!m)
        return;
    const struct rwkv_model_info *in = rwkv_model_get_info(m);
    size_t V = (size_t)in->n_vocab, S = in->state_floats;
    enum { NA = 23, NB = 17 };
    int32_t ab[NA + NB];
    for (int i = 0; i < NA + NB; i++)
        ab[i] = next_token();
    float *full = malloc((NA + NB) * V * sizeof(float)), *part = malloc(NB * V * sizeof(float));
    struct rwkv_error err;
    CHECK(tc_run(m, ab, NA + NB, 64, NULL, full, &err) == RWKV_OK);
    const float *want = full + NA * V;

    struct rwkv_state_options so = {3, 8};
    struct rwkv_state *s;
    CHECK(rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    struct rwkv_slot_io io[3] = {{ab, NA, RWKV_OUTPUT_NONE, NULL, 0, 0, 0, 0}};
    while (io[0].n_tokens)
        CHECK(rwkv_run(s, io, 1, &err) == RWKV_OK);
    /* save to a file, fork into slot 2 through host memory, and into slot 1 by copy */
    const char *path = tu_tmp("state.st");
    CHECK(rwkv_state_save(s, 0, path, &err) == RWKV_OK);
    float *host = malloc(S * sizeof(float));
    CHECK(rwkv_state_read(s, 0, host, S, &err) == RWKV_OK);
    CHECK(rwkv_state_write(s, 2, host, S, &err) == RWKV_OK);
    CHECK(rwkv_state_copy(s, 0, 1, &err) == RWKV_OK);
    for (int slot = 0; slot < 3; slot++) {
        memset(io, 0, sizeof io);
        io[slot] = (struct rwkv_slot_io){ab + NA, NB, RWKV_OUTPUT_ALL, part, NB, 0, 0, 0};
        while (io[slot].n_tokens)
            CHECK(rwkv_run(s, io, 3, &err) == RWKV_OK);
        CHECK_MSG(tc_max_diff(part, want, NB * V) <= 2e-5, "%s slot %d continuation: %.3g", stem, slot,
                  tc_max_diff(part, want, NB * V));
    }
    /* reload the file into a fresh state */
    struct rwkv_state *s2;
    so.num_batch = 1;
    CHECK(rwkv_state_new(m, &so, &s2, &err) == RWKV_OK);
    CHECK(rwkv_state_load(s2, 0, path, &err) == RWKV_OK);
    io[0] = (struct rwkv_slot_io){ab + NA, NB, RWKV_OUTPUT_ALL, part, NB, 0, 0, 0};
    while (io[0].n_tokens)
        CHECK(rwkv_run(s2, io, 1, &err) == RWKV_OK);
    CHECK_MSG(tc_max_diff(part, want, NB * V) == 0, "%s: state file round trip is not exact", stem);
    /* reset = fresh */
    CHECK(rwkv_state_reset(s2, 0, &err) == RWKV_OK);
    io[0] = (struct rwkv_slot_io){ab, NA + NB, RWKV_OUTPUT_ALL, full, NA + NB, 0, 0, 0};
    float *again = malloc((NA + NB) * V * sizeof(float));
    io[0].logits = again;
    while (io[0].n_tokens)
        CHECK(rwkv_run(s2, io, 1, &err) == RWKV_OK);
    CHECK(tc_max_diff(again, full, (NA + NB) * V) <= 2e-5);
    free(again);
    rwkv_state_free(s2);
    rwkv_state_free(s);
    free(host);
    free(full);
    free(part);
    rwkv_model_free(m);
}

/* A state file from one model must not load into another. */
static void test_wrong_model(void)
{
    struct rwkv_model *a = load("7v0-834K"), *b = load("6v0-1m"), *c = load("5v1-730K");
    struct rwkv_state_options so = rwkv_state_default_options();
    struct rwkv_state *sa, *sb, *sc;
    struct rwkv_error err;
    CHECK(rwkv_state_new(a, &so, &sa, &err) == RWKV_OK);
    CHECK(rwkv_state_new(b, &so, &sb, &err) == RWKV_OK);
    CHECK(rwkv_state_new(c, &so, &sc, &err) == RWKV_OK);
    const char *path = tu_tmp("state7.st");
    CHECK(rwkv_state_save(sa, 0, path, &err) == RWKV_OK);
    CHECK_ERR(rwkv_state_load(sb, 0, path, &err), RWKV_ERR_MISMATCH, &err, "rwkv.arch is 70, this model has 60");
    CHECK_ERR(rwkv_state_load(sa, 0, tu_shared("states/7v0-834K.state.st"), &err), RWKV_ERR_FORMAT, &err,
              "use --init-state");
    CHECK_ERR(rwkv_state_load_time_state(sb, 0, tu_shared("states/7v0-834K.state.st"), &err), RWKV_ERR_MISMATCH,
              &err, "expected a float tensor [8, 8, 8]");
    CHECK_ERR(rwkv_state_load_time_state(sa, 0, tu_shared("models/tiny-rwkv-7v0-834K.st"), &err), RWKV_ERR_MISMATCH,
              &err, "missing tensor 'blocks.0.att.time_state'");
    CHECK_ERR(rwkv_state_load(sa, 0, tu_tmp("missing.st"), &err), RWKV_ERR_IO, &err, "cannot open");
    remove(path);
    rwkv_state_free(sa);
    rwkv_state_free(sb);
    rwkv_state_free(sc);
    rwkv_model_free(a);
    rwkv_model_free(b);
    rwkv_model_free(c);
}

/* Probabilities instead of logits: the softmax of the same rows, for one slot of a batch only. */
static void test_probabilities(void)
{
    struct rwkv_model *m = load("5v2-730K");
    struct rwkv_state_options so = {2, 4};
    struct rwkv_state *s;
    struct rwkv_error err;
    CHECK(m && rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    int32_t toks[6] = {1, 2, 3, 4, 5, 6};
    float logits[6 * 256], probs[6 * 256], want[256];
    struct rwkv_slot_io io[2] = {{toks, 6, RWKV_OUTPUT_ALL, logits, 6, 0, 0, 0},
                                 {toks, 6, RWKV_OUTPUT_ALL, probs, 6, 0, 0, 1}};
    while (io[0].n_tokens || io[1].n_tokens)
        CHECK(rwkv_run(s, io, 2, &err) == RWKV_OK);
    double worst = 0, sum_err = 0;
    for (int t = 0; t < 6; t++) {
        rwkv_softmax(logits + t * 256, want, 256);
        worst = fmax(worst, tc_max_diff(want, probs + t * 256, 256));
        double sum = 0;
        for (int i = 0; i < 256; i++)
            sum += probs[t * 256 + i];
        sum_err = fmax(sum_err, fabs(sum - 1));
    }
    CHECK_MSG(worst < 1e-7 && sum_err < 1e-5, "probabilities: %.3g, sum off by %.3g", worst, sum_err);
    /* the run statistics: one run per chunk (6 tokens of 2 slots in chunks of 4: 3 runs), time inside
     * rwkv_run, none waiting on the CPU backend; bad arguments refused */
    struct rwkv_run_stats st;
    CHECK(rwkv_state_run_stats(s, &st, &err) == RWKV_OK);
    CHECK_MSG(st.runs == 3 && st.run_seconds > 0 && st.wait_seconds == 0, "run stats: %llu runs, %g s, %g s waiting",
              (unsigned long long)st.runs, st.run_seconds, st.wait_seconds);
    CHECK(rwkv_state_run_stats(NULL, &st, &err) == RWKV_ERR_ARG && strstr(err.message, "rwkv_state_run_stats"));
    CHECK(rwkv_state_run_stats(s, NULL, &err) == RWKV_ERR_ARG);
    rwkv_state_free(s);
    rwkv_model_free(m);
}

/* `rwkv logits` with several sequences, --chunk, --state-out/--state-in: continuation through files. */
static void test_cli(void)
{
    const char *cli = tu_cli(), *model = tu_shared("models/tiny-rwkv-6v0-1m.st");
    const char *o1 = tu_tmp("o1.bin"), *o2 = tu_tmp("o2.bin"), *st = tu_tmp("cli-state.st");
    CHECK(tu_system("%s logits --model %s --tokens 1,2,3,4,5 --tokens 9 --tokens 7,7 --chunk 3 --all --out %s", cli,
                    model, o1) == 0);
    size_t n;
    float *all = (float *)tu_read_file(o1, &n);
    CHECK(n == 8 * 256 * sizeof(float));
    CHECK(tu_system("%s logits --model %s --tokens 1,2,3 --state-out %s --out %s", cli, model, st, o2) == 0);
    CHECK(tu_system("%s logits --model %s --tokens 4,5 --state-in %s --all --out %s", cli, model, st, o2) == 0);
    size_t n2;
    float *cont = (float *)tu_read_file(o2, &n2);
    CHECK(n2 == 2 * 256 * sizeof(float));
    if (all && cont && n2 == 2 * 256 * sizeof(float))
        CHECK(tc_max_diff(cont, all + 3 * 256, 2 * 256) <= 2e-5);
    free(all);
    free(cont);
    remove(o1);
    remove(o2);
    remove(st);
}

int main(void)
{
    dev = tc_cpu_device(0);
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        test_batching(models[i]);
        test_continuation(models[i]);
    }
    test_wrong_model();
    test_probabilities();
    test_cli();
    rwkv_device_free(dev);
    return tu_finish("test_batch");
}
