/* rwkv gen: prefill a prompt, sample tokens, stream the text, and report prefill and generation speed.
 * Without --model it runs a built-in synthetic RWKV-7 of the 0.1B shape, so that the first command of
 * the README works with nothing downloaded. */
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/platform.h"
#include "tools/cli.h"
#include "tools/common.h"
#include "tools/synth_cli.h"

static const char usage_text[] =
    "usage: rwkv gen [--model PATH | --size 0.1b|...] [--vocab PATH]\n"
    "                [--prompt TEXT | --prompt-file FILE | --prompt-ids IDS] [-n N]\n"
    "                [--temperature T] [--top-p P] [--top-k K] [--min-p M] [--repetition-penalty R]\n"
    "                [--presence-penalty P] [--frequency-penalty F] [--penalty-decay D] [--seed S]\n"
    "                [--greedy] [--ignore-eos] [--chunk N] [--backend cpu|vulkan|auto] [--device N]\n"
    "                [--threads N] [--lora FILE[:ALPHA]]...\n"
    "  Prefills the prompt, generates N tokens (default 500, as web-rwkv's perf test) and\n"
    "  streams them to stdout; prints prefill and generation speed to stderr.\n"
    "  --model     .st or .pth model; without it a synthetic RWKV-7 0.1B (random weights, fixed seed) is\n"
    "              built in memory (--size picks another released shape)\n"
    "  --vocab     World vocabulary (rwkv_vocab_v20230424.txt); without it a 256-token model is byte\n"
    "              level, and any other model reads prompt bytes as token ids and prints token ids\n"
    "  --prompt-file FILE  the prompt's bytes ('-' = stdin); --prompt-ids 1,2,3 gives token ids\n"
    "  sampling    defaults: temperature 1, top-p 0.85, presence 0.2, frequency 0.2, penalty decay\n"
    "              0.996 (penalties count generated tokens), seed 0; --greedy = argmax\n"
    "  --ignore-eos  keep going after token 0 (end of text; only stops with a --vocab file)\n"
    "  --chunk     tokens per prefill step (default 256)\n"
    "  --chat      interactive: each stdin line is a user turn (\"User: ...\\n\\nAssistant:\"), the reply ends at a\n"
    "              blank line or after N tokens; the prompt, if given, is fed first; /reset, /quit\n";

static const char default_prompt[] =
    "\nIn a shocking finding, scientists discovered a herd of dragons living in a remote, previously "
    "unexplored valley in Tibet. Even more surprising to the researchers was the fact that the dragons "
    "spoke perfect Chinese.";

struct gen {
    struct cli_model_args ma;
    struct rwkv_synth_options synth;
    int synth_given;
    const char *vocab, *prompt, *prompt_file, *prompt_ids;
    long n_gen, chunk;
    int ignore_eos;
    int chat;
    struct rwkv_sampler_options sampling;
};

/* What a run needs besides the session. */
struct run {
    struct cli_session ses;
    struct rwkv_tokenizer *tok; /* NULL: token ids in and out */
    int stop_at_eos;
    struct rwkv_sampler *sampler;
    float *logits;              /* [n_vocab] */
    const uint8_t *text;        /* the prompt's bytes (unless --prompt-ids) */
    size_t n_text;
    uint8_t *text_owned;        /* read from a file or stdin */
    int32_t *prompt;
    size_t n_prompt;
};

/* ---- options ---- */

static const struct {
    const char *name;
    size_t offset;
    char kind; /* f: float, i: int, u: uint64 */
} sampler_opts[] = {
    {"--temperature", offsetof(struct rwkv_sampler_options, temperature), 'f'},
    {"--top-p", offsetof(struct rwkv_sampler_options, top_p), 'f'},
    {"--top-k", offsetof(struct rwkv_sampler_options, top_k), 'i'},
    {"--min-p", offsetof(struct rwkv_sampler_options, min_p), 'f'},
    {"--repetition-penalty", offsetof(struct rwkv_sampler_options, repetition_penalty), 'f'},
    {"--presence-penalty", offsetof(struct rwkv_sampler_options, presence_penalty), 'f'},
    {"--frequency-penalty", offsetof(struct rwkv_sampler_options, frequency_penalty), 'f'},
    {"--penalty-decay", offsetof(struct rwkv_sampler_options, penalty_decay), 'f'},
    {"--seed", offsetof(struct rwkv_sampler_options, seed), 'u'},
};

/* A sampler option into g->sampling (ranges are checked by rwkv_sampler_new). Returns 2, 0 (not one),
 * or -1 after an error. */
static int parse_sampler_opt(struct gen *g, const char *a, const char *v)
{
    for (size_t i = 0; i < sizeof sampler_opts / sizeof sampler_opts[0]; i++) {
        if (strcmp(a, sampler_opts[i].name) != 0)
            continue;
        char *field = (char *)&g->sampling + sampler_opts[i].offset;
        float f;
        long n;
        int ok = sampler_opts[i].kind == 'f' ? cli_parse_float(v, &f) : cli_parse_int(v, 0, 0x7fffffffL, &n);
        if (!ok) {
            cli_error("gen", "%s '%s': expected a %s", a, v, sampler_opts[i].kind == 'f' ? "number"
                                                                                    : "non-negative integer");
            return -1;
        }
        if (sampler_opts[i].kind == 'f')
            memcpy(field, &f, sizeof f);
        else if (sampler_opts[i].kind == 'i')
            *(int *)(void *)field = (int)n;
        else
            *(uint64_t *)(void *)field = (uint64_t)n;
        return 2;
    }
    return 0;
}

/* Options of this command that take a value. Returns 2, 0 (not one), or -1 after an error. */
static int parse_own_opt(struct gen *g, const char *a, const char *v)
{
    const char **strs[] = {&g->vocab, &g->prompt, &g->prompt_file, &g->prompt_ids};
    static const char *const str_names[] = {"--vocab", "--prompt", "--prompt-file", "--prompt-ids"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!strcmp(a, str_names[i])) {
            *strs[i] = v;
            return 2;
        }
    if (!strcmp(a, "-n") || !strcmp(a, "--n-tokens")) {
        if (cli_parse_int(v, 0, 1L << 30, &g->n_gen))
            return 2;
        cli_error("gen", "%s '%s': expected a token count from 0 to %ld", a, v, 1L << 30);
        return -1;
    }
    if (!strcmp(a, "--chunk")) {
        if (cli_parse_int(v, 1, 1L << 20, &g->chunk))
            return 2;
        cli_error("gen", "--chunk '%s': expected an integer from 1 to %ld", v, 1L << 20);
        return -1;
    }
    return parse_sampler_opt(g, a, v);
}

static void gen_init(struct gen *g)
{
    memset(g, 0, sizeof *g);
    cli_model_args_init(&g->ma);
    g->synth = rwkv_synth_default_options(); /* the 0.1B shape, seed 0 */
    g->n_gen = -1; /* 500 unless given */
    g->chunk = 256;
    g->sampling = rwkv_sampler_default_options();
    /* the defaults of the rwkv pip package's PIPELINE_ARGS and generate loop */
    g->sampling.top_p = 0.85f;
    g->sampling.presence_penalty = 0.2f;
    g->sampling.frequency_penalty = 0.2f;
    g->sampling.penalty_decay = 0.996f;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(struct gen *g, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        enum cli_first k = cli_first_option(&g->ma, "gen", usage_text, argc, argv, &i);
        if (k == CLI_HELP || k == CLI_BAD)
            return k == CLI_HELP ? 0 : 2;
        if (k == CLI_TAKEN)
            continue;
        int used = cli_synth_parse(&g->synth, &g->synth_given, "gen", a, v);
        if (used == 0 && !strcmp(a, "--greedy")) {
            g->sampling.temperature = 0.0f;
            continue;
        }
        if (used == 0 && !strcmp(a, "--chat")) {
            g->chat = 1;
            continue;
        }
        if (used == 0 && !strcmp(a, "--ignore-eos")) {
            g->ignore_eos = 1;
            continue;
        }
        if (used == 0 && !v) {
            cli_error("gen", "unknown option '%s', or it needs a value (rwkv gen --help)", a);
            return 2;
        }
        if (used == 0)
            used = parse_own_opt(g, a, v);
        if (used == 0)
            cli_error("gen", "unknown option '%s' (rwkv gen --help)", a);
        if (used <= 0)
            return 2;
        i += used - 1;
    }
    if (!!g->prompt + !!g->prompt_file + !!g->prompt_ids > 1) {
        cli_error("gen", "give one of --prompt, --prompt-file and --prompt-ids");
        return 2;
    }
    if (g->ma.model && g->synth_given) {
        cli_error("gen", "--model and the synthetic-model options (--size, --layers, ...) exclude each other");
        return 2;
    }
    if (g->n_gen < 0)
        g->n_gen = 500;
    return -1;
}

/* ---- setup ---- */

static int open_model(const struct gen *g, struct run *r)
{
    double t0 = rwkv_time_seconds();
    char name[160];
    int rc = cli_session_open_synth(&r->ses, &g->ma, g->ma.model ? NULL : &g->synth, 1, (int)g->chunk, "gen");
    if (rc)
        return rc;
    const struct rwkv_model_info *in = rwkv_model_get_info(r->ses.model);
    if (g->ma.model)
        snprintf(name, sizeof name, "%s", g->ma.model);
    else
        cli_synth_name(&g->synth, name, sizeof name);
    fprintf(stderr, "rwkv gen: %s: RWKV v%s L%d D%d V%d, %.1fM params, %.0f MB of weights (%s), %s in %.2f s\n", name,
            rwkv_arch_name(in->arch), in->n_layer, in->n_embd, in->n_vocab, (double)in->n_params / 1e6,
            (double)in->weight_bytes / 1e6, rwkv_dtype_name(in->matrix_dtype), g->ma.model ? "loaded" : "built",
            rwkv_time_seconds() - t0);
    fprintf(stderr, "rwkv gen: device: %s\n", rwkv_device_description(r->ses.device));
    return 0;
}

/* Reads the prompt (ids, or bytes from --prompt, --prompt-file, stdin or the default text) and the
 * --vocab file: inputs that can be wrong are checked before a model is built. */
static int read_inputs(const struct gen *g, struct run *r)
{
    struct rwkv_error err;
    if (g->prompt_ids && !cli_parse_ids(g->prompt_ids, &r->prompt, &r->n_prompt)) {
        cli_error("gen", "--prompt-ids '%.40s': expected comma-separated token ids", g->prompt_ids);
        return 2;
    }
    if (g->prompt_file && !strcmp(g->prompt_file, "-")) {
        if (!(r->text_owned = cli_read_stdin(&r->n_text))) {
            cli_error("gen", "cannot read the prompt from stdin");
            return 1;
        }
    } else if (g->prompt_file) {
        struct rwkv_file_map map;
        if (rwkv_map_file(g->prompt_file, &map, &err)) {
            cli_error("gen", "%s", err.message);
            return 1;
        }
        r->text_owned = malloc(map.size + 1);
        if (r->text_owned && map.size)
            memcpy(r->text_owned, map.data, map.size);
        r->n_text = map.size;
        rwkv_unmap_file(&map);
        if (!r->text_owned) {
            cli_error("gen", "out of memory");
            return 1;
        }
    }
    /* with no prompt: the default text, except in a chat, which then starts with no preamble */
    r->text = r->text_owned ? r->text_owned
                            : (const uint8_t *)(g->prompt ? g->prompt : g->chat ? "" : default_prompt);
    if (!r->text_owned)
        r->n_text = strlen((const char *)r->text);
    if (g->vocab && rwkv_tokenizer_load(g->vocab, &r->tok, &err)) {
        cli_error("gen", "%s", err.message);
        return 1;
    }
    return 0;
}

/* Tokenizes the prompt (echoing its text to stdout as the start of the output): with --vocab, byte
 * level for a 256-token model, else its bytes are the ids. */
static int tokenize_prompt(const struct gen *g, struct run *r)
{
    struct rwkv_error err;
    size_t V = (size_t)rwkv_model_get_info(r->ses.model)->n_vocab;
    r->stop_at_eos = g->vocab && !g->ignore_eos; /* id 0 ends a text only in the World vocabulary */
    if (!r->tok && V == 256 && rwkv_tokenizer_new_bytes(&r->tok, &err)) {
        cli_error("gen", "%s", err.message);
        return 1;
    }
    if (!r->tok)
        fprintf(stderr, "rwkv gen: no --vocab: prompt bytes are token ids, and token ids are printed\n");
    if (r->tok && rwkv_tokenizer_vocab_size(r->tok) > V) {
        cli_error("gen", "the vocabulary has %zu tokens, the model %zu: they do not belong together",
                  rwkv_tokenizer_vocab_size(r->tok), V);
        return 2;
    }
    if (g->prompt_ids)
        return 0;
    if (r->tok && rwkv_tokenizer_encode(r->tok, r->text, r->n_text, &r->prompt, &r->n_prompt, &err)) {
        cli_error("gen", "%s", err.message);
        return 1;
    }
    if (r->tok) {
        fwrite(r->text, 1, r->n_text, stdout);
        return 0;
    }
    if (!(r->prompt = malloc((r->n_text ? r->n_text : 1) * sizeof *r->prompt))) {
        cli_error("gen", "out of memory");
        return 1;
    }
    for (size_t i = 0; i < r->n_text; i++)
        r->prompt[i] = r->text[i];
    r->n_prompt = r->n_text;
    return 0;
}

/* ---- running ---- */

/* Runs `ids` through the model, leaving the last token's logits in r->logits. */
static int feed(struct run *r, const int32_t *ids, size_t n)
{
    struct rwkv_error err;
    struct rwkv_slot_io io = {.tokens = ids, .n_tokens = n, .output = RWKV_OUTPUT_LAST, .logits = r->logits,
                              .logits_rows = 1};
    while (io.n_tokens > 0)
        if (rwkv_run(r->ses.state, &io, 1, &err)) {
            cli_error("gen", "%s", err.message);
            return 1;
        }
    return 0;
}

static void emit(const struct run *r, int32_t id)
{
    size_t len = 0;
    const uint8_t *b = r->tok ? rwkv_tokenizer_token(r->tok, id, &len) : NULL;
    if (b)
        fwrite(b, 1, len, stdout);
    else
        printf(r->tok ? "<%d>" : "%d ", (int)id); /* ids mode, or an id the vocabulary lacks */
    fflush(stdout);
}

struct timing {
    double prefill_s, model_s, sample_s;
    size_t n_generated;
};

/* Samples the next token from r->logits and records it for the penalties. */
static int32_t pick(struct run *r)
{
    /* the model's head may be wider than the vocabulary (65536 vs 65530): never pick those ids */
    size_t V = (size_t)rwkv_model_get_info(r->ses.model)->n_vocab;
    for (size_t k = r->tok ? rwkv_tokenizer_vocab_size(r->tok) : V; k < V; k++)
        r->logits[k] = -INFINITY;
    int32_t id = rwkv_sampler_sample(r->sampler, r->logits);
    rwkv_sampler_accept(r->sampler, id);
    return id;
}

static int generate(const struct gen *g, struct run *r, struct timing *t)
{
    for (long i = 0; i < g->n_gen; i++) {
        double t0 = rwkv_time_seconds();
        int32_t id = pick(r);
        double t1 = rwkv_time_seconds();
        t->sample_s += t1 - t0;
        if (id == 0 && r->stop_at_eos)
            break;
        emit(r, id);
        t->n_generated++;
        if (feed(r, &id, 1))
            return 1;
        t->model_s += rwkv_time_seconds() - t1;
    }
    if (!r->tok || t->n_generated > 0)
        putchar('\n');
    return 0;
}

static void report(const struct gen *g, const struct run *r, const struct timing *t)
{
    if (r->n_prompt > 0)
        fprintf(stderr, "rwkv gen: prefill: %zu tokens in %.3f s = %.1f tokens/s (chunk %ld)\n", r->n_prompt,
                t->prefill_s, (double)r->n_prompt / t->prefill_s, g->chunk);
    if (t->n_generated > 0) {
        double total = t->model_s + t->sample_s, n = (double)t->n_generated;
        fprintf(stderr, "rwkv gen: generation: %zu tokens in %.3f s = %.2f tokens/s, %.2f ms/token "
                "(model %.2f ms, sampling %.2f ms)\n", t->n_generated, total, n / total, 1e3 * total / n,
                1e3 * t->model_s / n, 1e3 * t->sample_s / n);
    }
}

/* ---- chat ---- */

/* One line of stdin without its line break (malloc'ed); NULL at end of input. */
static char *read_line(void)
{
    size_t cap = 256, n = 0;
    char *line = malloc(cap);
    int c;
    while (line && (c = getchar()) != EOF && c != '\n') {
        if (n + 2 > cap) {
            char *nl = realloc(line, cap *= 2);
            if (!nl) {
                free(line);
                return NULL;
            }
            line = nl;
        }
        line[n++] = (char)c;
    }
    if (!line || (n == 0 && c == EOF)) {
        free(line);
        return NULL;
    }
    while (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return line;
}

/* Encodes and feeds `text`. */
static int feed_text(struct run *r, const char *text)
{
    struct rwkv_error err;
    int32_t *ids;
    size_t n;
    if (rwkv_tokenizer_encode(r->tok, (const uint8_t *)text, strlen(text), &ids, &n, &err)) {
        cli_error("gen", "%s", err.message);
        return 1;
    }
    int rc = n ? feed(r, ids, n) : 0;
    free(ids);
    return rc;
}

/* The reply: tokens until a blank line ("\n\n"), end of text or -n tokens; every token is fed, so the
 * state holds the whole conversation. */
static int reply(const struct gen *g, struct run *r)
{
    char tail[2] = {0, 0};
    for (long i = 0; i < g->n_gen; i++) {
        int32_t id = pick(r);
        if (id == 0 && r->stop_at_eos)
            break;
        emit(r, id);
        if (feed(r, &id, 1))
            return 1;
        size_t len = 0;
        const uint8_t *b = rwkv_tokenizer_token(r->tok, id, &len);
        for (size_t k = 0; b && k < len; k++) {
            tail[0] = tail[1];
            tail[1] = (char)b[k];
        }
        if (tail[0] == '\n' && tail[1] == '\n')
            break;
    }
    if (tail[1] != '\n')
        putchar('\n');
    return 0;
}

/* Interactive chat: "User: <line>\n\nAssistant:" turns over one state. /reset starts over, /quit ends. */
static int chat(const struct gen *g, struct run *r)
{
    struct rwkv_error err;
    int tty = isatty(0);
    if (!r->tok) {
        cli_error("gen", "--chat needs --vocab (or a 256-token byte-level model)");
        return 2;
    }
    if (tty)
        fprintf(stderr, "rwkv gen: chat: type a message and Enter; /reset starts over, /quit or end of input ends\n");
    for (;;) {
        if (tty)
            fputs("User: ", stderr);
        char *line = read_line();
        if (!line || !strcmp(line, "/quit")) {
            free(line);
            return 0;
        }
        int rc = 0;
        if (!strcmp(line, "/reset")) {
            rwkv_sampler_reset(r->sampler);
            rc = rwkv_state_reset(r->ses.state, 0, &err) ? (cli_error("gen", "%s", err.message), 1)
                 : r->n_prompt ? feed(r, r->prompt, r->n_prompt) : 0;
        } else if (*line) {
            size_t n = strlen(line) + 32;
            char *turn = malloc(n);
            if (!turn) {
                free(line);
                cli_error("gen", "out of memory");
                return 1;
            }
            snprintf(turn, n, "User: %s\n\nAssistant:", line);
            fputs("Assistant:", stdout);
            rc = feed_text(r, turn);
            if (!rc)
                rc = reply(g, r);
            fflush(stdout);
            free(turn);
        }
        free(line);
        if (rc)
            return rc;
    }
}

static int run_all(const struct gen *g, struct run *r)
{
    struct rwkv_error err;
    int rc = read_inputs(g, r);
    if (!rc)
        rc = open_model(g, r);
    if (!rc)
        rc = tokenize_prompt(g, r);
    if (rc)
        return rc;
    size_t V = (size_t)rwkv_model_get_info(r->ses.model)->n_vocab;
    if (rwkv_sampler_new(&g->sampling, V, &r->sampler, &err)) {
        cli_error("gen", "%s", err.message);
        return 2;
    }
    r->logits = malloc(V * sizeof *r->logits);
    if (!r->logits) {
        cli_error("gen", "out of memory");
        return 1;
    }
    if (g->chat) /* the prompt, if any, is a preamble fed before the first turn */
        return (r->n_prompt && feed(r, r->prompt, r->n_prompt)) ? 1 : chat(g, r);
    struct timing t = {0};
    static const int32_t start = 0; /* an empty prompt starts from end-of-text, as a new document */
    double t0 = rwkv_time_seconds();
    if (feed(r, r->n_prompt ? r->prompt : &start, r->n_prompt ? r->n_prompt : 1))
        return 1;
    t.prefill_s = rwkv_time_seconds() - t0;
    fflush(stdout);
    rc = generate(g, r, &t);
    fflush(stdout);
    report(g, r, &t);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("gen", "cannot write to stdout");
        rc = 1;
    }
    return rc;
}

int cmd_gen(int argc, char **argv)
{
    struct gen g;
    gen_init(&g);
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = parse_args(&g, argc, argv);
    if (rc < 0)
        rc = run_all(&g, &r);
    free(r.logits);
    free(r.prompt);
    free(r.text_owned);
    rwkv_sampler_free(r.sampler);
    rwkv_tokenizer_free(r.tok);
    cli_session_close(&r.ses);
    cli_model_args_free(&g.ma);
    return rc;
}
