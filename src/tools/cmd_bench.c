/* rwkv bench: llama-bench style rows. pp<P> prefills P tokens of one sequence in one chunk; tg<N> runs
 * N single-token steps (B sequences per step with --batch B). Each row is repeated and reported as
 * median / min / max with derived rates: tokens/s, the bandwidth the weight reads imply during
 * generation (compared with the device's copy bandwidth measured in the same run), and FLOP/s. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/platform.h"
#include "tools/cli.h"
#include "tools/common.h"
#include "tools/synth_cli.h"

static const char usage_text[] =
    "usage: rwkv bench [--model PATH | --size 0.1b|0.4b|1.5b|2.9b|7.2b |\n"
    "                   --synth-version V --layers L --embd D [--n-vocab V] [--dtype f16|f32|bf16]]\n"
    "                  [-p 512] [-n 128] [-r 3] [--batch B] [--json]\n"
    "                  [--backend cpu|vulkan|auto] [--device N] [--threads N] [--lora FILE[:ALPHA]]...\n"
    "  -p LIST     prefill tests: P tokens of one sequence in one chunk (comma list; 0 = none)\n"
    "  -n LIST     generation tests: N steps of one token per sequence (comma list; 0 = none)\n"
    "  --batch L   also run the generation tests with B sequences per step (comma list)\n"
    "  -r R        repetitions per test (default 3), after a short warm-up\n"
    "  --json      one JSON object per row on stdout (keys: test, batch, n_tokens, reps, model, backend,\n"
    "              device, n_params, weight_bytes, tokens_per_s, median_ms, min_ms, max_ms, ms_per_step,\n"
    "              gbps_weights, gbps_total, copy_gbps, ratio_to_copy, tflops, ratio_to_990_tflops,\n"
    "              host_us_per_step, one_dispatch_share)\n"
    "  Without --model a synthetic model is built in memory (default --size 0.1b).\n";

#define MAX_REPS 1000
/* copy buffer: the weights' size, within bounds: well beyond the last-level cache, small enough to take
 * well under a second (a GPU copies faster and gets a larger bound) */
#define COPY_MIN ((size_t)64 << 20)
#define COPY_MAX_CPU ((size_t)256 << 20)
#define COPY_MAX_GPU ((size_t)1 << 30)

struct bench_args {
    struct cli_model_args ma;
    struct rwkv_synth_options synth;
    int synth_given;
    int32_t *pp, *tg, *batch;
    size_t n_pp, n_tg, n_batch;
    long reps;
    int json;
};

struct progress {
    int tty;
    double last;
    int shown; /* a \r line is on screen */
};

struct bench {
    const struct bench_args *args;
    struct cli_session ses;
    const struct rwkv_model_info *info;
    char model_name[200];
    double copy_gbps;
    size_t copy_bytes;
    int n_threads;
    struct progress progress;
};

/* One finished row. */
struct row {
    char test[32];
    int batch;
    long n_tokens;           /* per sequence */
    double ms[MAX_REPS];     /* per repetition */
    int reps;
    double median, min, max; /* ms */
    int is_gen;
    double host_us;          /* generation: host time per step (rwkv_state_run_stats), -1 if unknown */
    double one_dispatch;     /* generation: the share of steps run as one GPU dispatch, -1 if unknown */
};

/* Dense fp16 tensor-core peak of an H100 SXM, the yardstick the prefill ratio uses on every card. */
#define PEAK_TFLOPS 990.0

/* ---- arguments ---- */

static int parse_list(const char *opt, const char *v, int32_t **out, size_t *n)
{
    free(*out);
    if (cli_parse_ids(v, out, n))
        return 2;
    cli_error("bench", "%s '%s': expected comma-separated non-negative integers", opt, v);
    return -1;
}

static int parse_reps(const char *v, long *reps)
{
    if (cli_parse_int(v, 1, MAX_REPS, reps))
        return 2;
    cli_error("bench", "-r '%s': expected 1 to %d", v, MAX_REPS);
    return -1;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(struct bench_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        enum cli_first k = cli_first_option(&a->ma, "bench", usage_text, argc, argv, &i);
        if (k == CLI_HELP || k == CLI_BAD)
            return k == CLI_HELP ? 0 : 2;
        if (k == CLI_TAKEN)
            continue;
        int used = cli_synth_parse(&a->synth, &a->synth_given, "bench", o, v);
        if (used == 0 && !strcmp(o, "--json")) {
            a->json = 1;
            continue;
        }
        if (used == 0 && !v) {
            cli_error("bench", "unknown option '%s', or it needs a value (rwkv bench --help)", o);
            return 2;
        }
        if (used == 0 && !strcmp(o, "-p"))
            used = parse_list(o, v, &a->pp, &a->n_pp);
        else if (used == 0 && !strcmp(o, "-n"))
            used = parse_list(o, v, &a->tg, &a->n_tg);
        else if (used == 0 && !strcmp(o, "--batch"))
            used = parse_list(o, v, &a->batch, &a->n_batch);
        else if (used == 0 && !strcmp(o, "-r"))
            used = parse_reps(v, &a->reps);
        else if (used == 0)
            cli_error("bench", "unknown option '%s' (rwkv bench --help)", o);
        if (used <= 0)
            return 2;
        i += used - 1;
    }
    if (a->ma.model && a->synth_given) {
        cli_error("bench", "--model and the synthetic-model options (--size, --layers, ...) exclude each other");
        return 2;
    }
    for (size_t i = 0; i < a->n_batch; i++)
        if (a->batch[i] < 1 || a->batch[i] > 65536) {
            cli_error("bench", "--batch %d: expected 1 to 65536", (int)a->batch[i]);
            return 2;
        }
    return -1;
}

/* ---- measurements ---- */

static void progress_show(struct bench *b, const char *test, int rep, int reps, long done, long total)
{
    struct progress *p = &b->progress;
    double now = rwkv_time_seconds();
    if (now - p->last < (p->tty ? 0.25 : 5.0))
        return;
    p->last = now;
    fprintf(stderr, "%srwkv bench: %s: repetition %d/%d, %ld/%ld%s", p->tty ? "\r" : "", test, rep, reps, done, total,
            p->tty ? "   " : "\n");
    p->shown = p->tty;
}

static void progress_clear(struct bench *b)
{
    if (b->progress.shown)
        fprintf(stderr, "\r%70s\r", "");
    b->progress.shown = 0;
}

/* Deterministic token ids spread over the vocabulary. */
static int32_t token_at(const struct bench *b, long i)
{
    return (int32_t)(((uint64_t)i * 2654435761u + 12345u) % (uint64_t)b->info->n_vocab);
}

static int new_state(struct bench *b, int num_batch, int chunk, struct rwkv_state **s)
{
    struct rwkv_error err;
    struct rwkv_state_options o = rwkv_state_default_options();
    o.num_batch = num_batch;
    o.token_chunk_size = chunk;
    if (rwkv_state_new(b->ses.model, &o, s, &err)) {
        cli_error("bench", "%s", err.message);
        return 1;
    }
    return 0;
}

/* Runs every slot's io to completion. */
static int run_io(struct rwkv_state *s, struct rwkv_slot_io *io, int n)
{
    struct rwkv_error err;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n; i++)
            pending |= io[i].n_tokens > 0;
        if (!pending)
            return 0;
        if (rwkv_run(s, io, n, &err)) {
            cli_error("bench", "%s", err.message);
            return 1;
        }
    }
}

/* One prefill of n tokens (one chunk); *ms = its time. */
static int prefill_once(struct bench *b, struct rwkv_state *s, const int32_t *ids, long n, float *logits, double *ms)
{
    struct rwkv_error err;
    struct rwkv_slot_io io = {.tokens = ids, .n_tokens = (size_t)n, .output = RWKV_OUTPUT_LAST, .logits = logits,
                              .logits_rows = 1};
    if (rwkv_state_reset(s, -1, &err)) {
        cli_error("bench", "%s", err.message);
        return 1;
    }
    double t0 = rwkv_time_seconds();
    int rc = run_io(s, &io, 1);
    *ms = 1e3 * (rwkv_time_seconds() - t0);
    return rc;
}

/* n_steps steps of one token in each of `batch` slots. */
static int generate_once(struct bench *b, struct rwkv_state *s, struct rwkv_slot_io *io, int batch, long n_steps,
                         float *logits, const char *test, int rep, double *ms)
{
    struct rwkv_error err;
    int32_t *ids = malloc((size_t)batch * sizeof *ids);
    if (!ids || rwkv_state_reset(s, -1, &err)) {
        free(ids);
        cli_error("bench", "%s", ids ? err.message : "out of memory");
        return 1;
    }
    double t0 = rwkv_time_seconds();
    int rc = 0;
    for (long step = 0; step < n_steps && !rc; step++) {
        for (int k = 0; k < batch; k++) {
            ids[k] = token_at(b, step * batch + k);
            io[k] = (struct rwkv_slot_io){.tokens = &ids[k], .n_tokens = 1, .output = RWKV_OUTPUT_LAST,
                                          .logits = logits + (size_t)k * (size_t)b->info->n_vocab, .logits_rows = 1};
        }
        rc = run_io(s, io, batch);
        progress_show(b, test, rep, (int)b->args->reps, step + 1, n_steps);
    }
    *ms = 1e3 * (rwkv_time_seconds() - t0);
    free(ids);
    return rc;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void finish_row(struct row *r)
{
    double sorted[MAX_REPS];
    memcpy(sorted, r->ms, (size_t)r->reps * sizeof *sorted);
    qsort(sorted, (size_t)r->reps, sizeof *sorted, cmp_double);
    r->min = sorted[0];
    r->max = sorted[r->reps - 1];
    r->median = r->reps % 2 ? sorted[r->reps / 2] : 0.5 * (sorted[r->reps / 2 - 1] + sorted[r->reps / 2]);
}

/* Runs a pp (batch 0) or tg row: warm-up, then the repetitions. */
static int run_row(struct bench *b, long n, int batch, struct row *r)
{
    int gen = batch > 0, slots = gen ? batch : 1, chunk = gen ? batch : (int)n;
    memset(r, 0, sizeof *r);
    snprintf(r->test, sizeof r->test, "%s%ld", gen ? "tg" : "pp", n);
    r->batch = slots;
    r->n_tokens = n;
    r->is_gen = gen;
    b->progress.last = rwkv_time_seconds(); /* show progress only for rows that take a while */
    struct rwkv_state *s = NULL;
    int32_t *ids = malloc((size_t)(gen ? 1 : n) * sizeof *ids);
    float *logits = malloc((size_t)slots * (size_t)b->info->n_vocab * sizeof *logits);
    struct rwkv_slot_io *io = calloc((size_t)slots, sizeof *io);
    int rc = 1;
    if (!ids || !logits || !io)
        cli_error("bench", "out of memory");
    else
        rc = new_state(b, slots, chunk, &s);
    for (long i = 0; !rc && !gen && i < n; i++)
        ids[i] = token_at(b, i);
    /* generation reads its logits where the state puts them (a GPU's readback buffer: no copy) */
    float *out = logits, *area = NULL;
    size_t area_rows = 0;
    struct rwkv_error aerr;
    if (!rc && gen && !rwkv_state_logits_area(s, &area, &area_rows, &aerr) && area_rows >= (size_t)slots)
        out = area;
    double warm;
    if (!rc) /* warm-up: scratch buffers, page faults, caches (llama-bench: at most 32 tokens / 1 step) */
        rc = gen ? generate_once(b, s, io, slots, 1, out, r->test, 0, &warm)
                 : prefill_once(b, s, ids, n < 32 ? n : 32, logits, &warm);
    struct rwkv_run_stats st0 = {0}, st1 = {0};
    struct rwkv_error err;
    r->host_us = r->one_dispatch = -1;
    if (!rc && rwkv_state_run_stats(s, &st0, &err))
        rc = 1;
    for (int k = 0; !rc && k < (int)b->args->reps; k++) {
        rc = gen ? generate_once(b, s, io, slots, n, out, r->test, k + 1, &r->ms[k])
                 : prefill_once(b, s, ids, n, logits, &r->ms[k]);
        r->reps = k + 1;
        progress_show(b, r->test, k + 1, (int)b->args->reps, n, n);
    }
    /* host time per step: inside rwkv_run but not waiting for the device (GPU backends only) */
    if (!rc && gen && rwkv_device_backend(b->ses.device) != RWKV_BACKEND_CPU && !rwkv_state_run_stats(s, &st1, &err) &&
        st1.runs > st0.runs)
    {
        r->host_us = 1e6 * ((st1.run_seconds - st0.run_seconds) - (st1.wait_seconds - st0.wait_seconds)) /
                     (double)(st1.runs - st0.runs);
        r->one_dispatch = (double)(st1.single_dispatch_runs - st0.single_dispatch_runs) / (double)(st1.runs - st0.runs);
    }
    progress_clear(b);
    if (!rc)
        finish_row(r);
    rwkv_state_free(s);
    free(io);
    free(logits);
    free(ids);
    return rc;
}

/* ---- reporting ---- */

struct rates {
    double tokens_per_s, ms_per_step, gbps_weights, gbps_total, ratio, tflops;
};

/* Bytes a generation step reads: every weight except the embedding table (one row per token), plus
 * the recurrent state read and written. FLOPs: 2 per block parameter per token, plus the head
 * (2 V C) per logits row; the WKV recurrence is not counted. */
static struct rates rates_of(const struct bench *b, const struct row *r)
{
    const struct rwkv_model_info *in = b->info;
    struct rates x = {0};
    double sec = r->median / 1e3, tokens = (double)r->n_tokens * r->batch;
    double head = 2.0 * in->n_vocab * in->n_embd, rows = r->is_gen ? tokens : 1;
    x.tokens_per_s = tokens / sec;
    x.tflops = (2.0 * (double)in->n_params_layers * tokens + head * rows) / sec / 1e12;
    if (!r->is_gen)
        return x;
    double esize = (double)rwkv_dtype_size(in->matrix_dtype), emb = (double)in->n_vocab * in->n_embd * esize;
    double weights = (double)in->weight_bytes - emb + r->batch * in->n_embd * esize;
    double state = 2.0 * r->batch * (double)in->state_floats * sizeof(float);
    double steps_per_s = (double)r->n_tokens / sec;
    x.ms_per_step = 1e3 / steps_per_s;
    x.gbps_weights = weights * steps_per_s / 1e9;
    x.gbps_total = (weights + state) * steps_per_s / 1e9;
    x.ratio = b->copy_gbps > 0 ? x.gbps_total / b->copy_gbps : 0;
    return x;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_number(const char *key, double v, int valid)
{
    if (valid)
        printf(",\"%s\":%.6g", key, v);
    else
        printf(",\"%s\":null", key);
}

static void print_json(const struct bench *b, const struct row *r)
{
    struct rates x = rates_of(b, r);
    enum rwkv_backend be = rwkv_device_backend(b->ses.device);
    printf("{\"test\":");
    json_string(r->test);
    printf(",\"batch\":%d,\"n_tokens\":%ld,\"reps\":%d,\"model\":", r->batch, r->n_tokens, r->reps);
    json_string(b->model_name);
    printf(",\"backend\":\"%s\",\"device\":", be == RWKV_BACKEND_VULKAN ? "vulkan" : "cpu");
    json_string(rwkv_device_description(b->ses.device));
    printf(",\"n_params\":%lld,\"weight_bytes\":%lld", (long long)b->info->n_params, (long long)b->info->weight_bytes);
    json_number("tokens_per_s", x.tokens_per_s, 1);
    json_number("median_ms", r->median, 1);
    json_number("min_ms", r->min, 1);
    json_number("max_ms", r->max, 1);
    json_number("ms_per_step", x.ms_per_step, r->is_gen);
    json_number("gbps_weights", x.gbps_weights, r->is_gen);
    json_number("gbps_total", x.gbps_total, r->is_gen);
    json_number("copy_gbps", b->copy_gbps, 1);
    json_number("ratio_to_copy", x.ratio, r->is_gen && b->copy_gbps > 0);
    json_number("tflops", x.tflops, 1);
    json_number("ratio_to_990_tflops", x.tflops / PEAK_TFLOPS, !r->is_gen);
    json_number("host_us_per_step", r->host_us, r->host_us >= 0);
    json_number("one_dispatch_share", r->one_dispatch, r->one_dispatch >= 0);
    printf("}\n");
    fflush(stdout);
}

static void print_text(const struct bench *b, const struct row *r)
{
    struct rates x = rates_of(b, r);
    printf("| %-7s | %5d | %9.2f | %10.2f | %10.2f | %10.2f |", r->test, r->batch, x.tokens_per_s, r->median, r->min,
           r->max);
    if (r->is_gen)
        printf(" %8.2f | %8.2f | %8.2f | %5.0f%% |", x.ms_per_step, x.gbps_weights, x.gbps_total, 100 * x.ratio);
    else
        printf(" %8s | %8s | %8s | %6s |", "-", "-", "-", "-");
    printf(" %7.4f |", x.tflops);
    if (r->host_us >= 0)
        printf(" %7.1f |", r->host_us);
    else
        printf(" %7s |", "-");
    printf("\n");
    fflush(stdout);
}

static void print_header(const struct bench *b)
{
    const struct rwkv_model_info *in = b->info;
    FILE *f = b->args->json ? stderr : stdout;
    fprintf(f, "model:  %s: RWKV v%s L%d D%d V%d, %.1fM params (%.1fM in blocks), %.1f MB of weights (%s)\n",
            b->model_name, rwkv_arch_name(in->arch), in->n_layer, in->n_embd, in->n_vocab, (double)in->n_params / 1e6,
            (double)in->n_params_layers / 1e6, (double)in->weight_bytes / 1e6, rwkv_dtype_name(in->matrix_dtype));
    fprintf(f, "device: %s\n", rwkv_device_description(b->ses.device));
    fprintf(f, "device copy: %.2f GB/s (%zu MiB buffer to buffer, bytes read + written, best run)\n", b->copy_gbps,
            b->copy_bytes >> 20);
    if (b->args->json)
        return;
    printf("\n| test    | batch |     t/s   |  median ms |     min ms |     max ms | ms/step  | GB/s wt  "
           "| GB/s all | %% copy | TFLOP/s | host us |\n");
    printf("| ------- | ----- | --------- | ---------- | ---------- | ---------- | -------- | -------- "
           "| -------- | ------ | ------- | ------- |\n");
}

static void print_notes(const struct bench *b)
{
    if (b->args->json)
        return;
    printf("\nms columns: one repetition (all tokens of the test); t/s = tokens / median.\n"
           "GB/s wt: weight bytes read per generation step (all weights but the embedding table, of which one\n"
           "row per sequence) x steps/s; GB/s all adds the recurrent state read and written; %% copy = GB/s all /\n"
           "the device's copy bandwidth. TFLOP/s: 2 x block parameters per token + 2 x vocab x embd per logits row (the head:\n"
           "once per prefill, every token in generation); the WKV recurrence is not counted. host us: per generation\n"
           "step, the time inside rwkv_run not spent waiting for the device (GPU backends); generation takes its\n"
           "logits from the state's own area (rwkv_state_logits_area: no copy out of a GPU's readback buffer).\n"
           "JSON also gives ratio_to_990_tflops (prefill TFLOP/s over an H100's dense fp16 peak),\n"
           "host_us_per_step and one_dispatch_share (steps run as one GPU dispatch: Vulkan, v7, batch 1).\n");
}

/* ---- main ---- */

static int open_bench(struct bench *b)
{
    const struct bench_args *a = b->args;
    int rc = cli_session_open_synth(&b->ses, &a->ma, a->ma.model ? NULL : &a->synth, 0, 1, "bench");
    if (rc)
        return rc;
    b->info = rwkv_model_get_info(b->ses.model);
    if (a->ma.model)
        snprintf(b->model_name, sizeof b->model_name, "%s", a->ma.model);
    else
        cli_synth_name(&a->synth, b->model_name, sizeof b->model_name);
    b->n_threads = a->ma.threads > 0 ? a->ma.threads : rwkv_cpu_count();
    size_t w = (size_t)b->info->weight_bytes;
    size_t copy_max = rwkv_device_backend(b->ses.device) == RWKV_BACKEND_CPU ? COPY_MAX_CPU : COPY_MAX_GPU;
    b->copy_bytes = w < COPY_MIN ? COPY_MIN : w > copy_max ? copy_max : w;
    struct rwkv_error err;
    if (rwkv_device_copy_bandwidth(b->ses.device, b->copy_bytes, &b->copy_gbps, &err))
        fprintf(stderr, "rwkv bench: no copy bandwidth: %s\n", err.message);
    b->progress.tty = isatty(2);
    return 0;
}

static int run_and_print(struct bench *b, long n, int batch, struct row *r)
{
    int rc = run_row(b, n, batch, r);
    if (!rc && b->args->json)
        print_json(b, r);
    else if (!rc)
        print_text(b, r);
    return rc;
}

static int run_rows(struct bench *b)
{
    const struct bench_args *a = b->args;
    struct row *r = malloc(sizeof *r);
    int rc = r ? 0 : 1;
    for (size_t i = 0; !rc && i < a->n_pp; i++)
        if (a->pp[i] > 0)
            rc = run_and_print(b, a->pp[i], 0, r);
    for (size_t i = 0; !rc && i < a->n_tg; i++) {
        for (size_t k = 0; !rc && k <= a->n_batch; k++) { /* batch 1, then each --batch */
            int batch = k == 0 ? 1 : (int)a->batch[k - 1];
            if (a->tg[i] > 0 && (k == 0 || batch > 1))
                rc = run_and_print(b, a->tg[i], batch, r);
        }
    }
    free(r);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    memset(&a, 0, sizeof a);
    cli_model_args_init(&a.ma);
    a.synth = rwkv_synth_default_options();
    a.reps = 3;
    struct bench b;
    memset(&b, 0, sizeof b);
    b.args = &a;
    int rc = parse_args(&a, argc, argv);
    if (rc < 0 && !a.pp && !(parse_list("-p", "512", &a.pp, &a.n_pp) > 0))
        rc = 1;
    if (rc < 0 && !a.tg && !(parse_list("-n", "128", &a.tg, &a.n_tg) > 0))
        rc = 1;
    if (rc < 0) {
        rc = open_bench(&b);
        if (!rc) {
            print_header(&b);
            rc = run_rows(&b);
            print_notes(&b);
        }
    }
    cli_session_close(&b.ses);
    cli_model_args_free(&a.ma);
    free(a.pp);
    free(a.tg);
    free(a.batch);
    return rc;
}
