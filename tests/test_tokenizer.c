/* Tokenizer: the official vectors, round trips against a brute-force longest match, both vocabulary
 * forms, every kind of malformed line, the CLI, and the encode speed. */
#include <stdlib.h>
#include <string.h>

#include "core/platform.h"
#include "text/tokenizer_internal.h"
#include "util/testutil.h"

static uint64_t rng_state = 0x1234567887654321ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static uint8_t *from_hex(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    uint8_t *out = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    *n = len;
    return out;
}

/* Encodes, compares with `want` (when given), decodes and compares with the input. */
static void check_round_trip(const struct rwkv_tokenizer *tok, const uint8_t *in, size_t n, const int32_t *want,
                             size_t n_want, const char *name)
{
    struct rwkv_error err;
    int32_t *ids = NULL;
    size_t n_ids = 0, n_back = 0;
    uint8_t *back = NULL;
    rwkv_status st = rwkv_tokenizer_encode(tok, in, n, &ids, &n_ids, &err);
    CHECK_MSG(st == RWKV_OK, "%s: %s", name, err.message);
    if (st)
        return;
    if (want) {
        int same = n_ids == n_want && (n_ids == 0 || memcmp(ids, want, n_ids * sizeof *ids) == 0);
        CHECK_MSG(same, "%s: got %zu ids, want %zu", name, n_ids, n_want);
    }
    st = rwkv_tokenizer_decode(tok, want ? want : ids, want ? n_want : n_ids, &back, &n_back, &err);
    CHECK_MSG(st == RWKV_OK, "%s: %s", name, err.message);
    CHECK_MSG(st == RWKV_OK && n_back == n && memcmp(back, in, n) == 0 && back[n] == 0, "%s: decode differs", name);
    free(ids);
    free(back);
}

static void test_vectors(const struct rwkv_tokenizer *tok)
{
    struct json *j = tu_load_json(tu_shared("cases/tokenizer.json"));
    const struct json *cases = json_get(j, "cases");
    CHECK(cases && cases->type == JSON_ARRAY && cases->len >= 40);
    for (size_t i = 0; cases && i < cases->len; i++) {
        const struct json *c = &cases->items[i];
        size_t n, n_want;
        uint8_t *in = from_hex(json_get(c, "bytes_hex")->string, &n);
        int32_t *want = tu_json_ints(json_get(c, "ids"), &n_want);
        check_round_trip(tok, in, n, want, n_want, json_get(c, "name")->string);
        free(in);
        free(want);
    }
    json_free(j);
}

/* The definition, run the slow way: at each position, the longest token among all of them. */
static size_t brute_encode(const struct rwkv_tokenizer *tok, const uint8_t *s, size_t n, int32_t *out)
{
    size_t k = 0, V = rwkv_tokenizer_vocab_size(tok);
    for (size_t pos = 0; pos < n;) {
        size_t best_len = 0;
        int32_t best = -1;
        for (size_t id = 0; id < V; id++) {
            size_t len;
            const uint8_t *t = rwkv_tokenizer_token(tok, (int32_t)id, &len);
            if (t && len > best_len && len <= n - pos && memcmp(t, s + pos, len) == 0)
                best = (int32_t)id, best_len = len;
        }
        if (best < 0)
            return (size_t)-1;
        out[k++] = best;
        pos += best_len;
    }
    return k;
}

/* Random text built from pieces of real tokens (so long matches and near misses happen) and random
 * bytes; the trie must agree with the brute force. */
static void test_random(const struct rwkv_tokenizer *tok)
{
    size_t V = rwkv_tokenizer_vocab_size(tok);
    for (int round = 0; round < 6; round++) {
        uint8_t buf[1500];
        size_t n = 0;
        while (n < sizeof buf - 200) {
            size_t len;
            const uint8_t *t = rwkv_tokenizer_token(tok, (int32_t)(rnd() % V), &len);
            if (round % 2 == 0 || !t) {
                buf[n++] = (uint8_t)rnd();
            } else {
                len = rnd() % 3 == 0 && len > 1 ? len - 1 : len; /* a cut-off token: a near miss */
                memcpy(buf + n, t, len);
                n += len;
            }
        }
        int32_t want[1500];
        size_t n_want = brute_encode(tok, buf, n, want);
        CHECK(n_want != (size_t)-1);
        check_round_trip(tok, buf, n, want, n_want, "random");
    }
    /* plain round trips of longer random byte strings */
    static uint8_t big[1 << 16];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)rnd();
    check_round_trip(tok, big, sizeof big, NULL, 0, "random 64K");
}

static void test_edges(const struct rwkv_tokenizer *tok)
{
    struct rwkv_error err;
    CHECK(rwkv_tokenizer_vocab_size(tok) == 65530);
    size_t len;
    CHECK(rwkv_tokenizer_token(tok, 0, &len) == NULL && len == 0);
    CHECK(rwkv_tokenizer_token(tok, 65530, &len) == NULL);
    CHECK(rwkv_tokenizer_token(tok, -1, NULL) == NULL);
    const uint8_t *t = rwkv_tokenizer_token(tok, 257, &len);
    CHECK(t && len == 2 && memcmp(t, "\t\t", 2) == 0);
    t = rwkv_tokenizer_token(tok, 256, &len); /* 256 b'\xff' 1 */
    CHECK(t && len == 1 && t[0] == 0xff);

    const uint8_t ff[2] = {0xff, 0xff};
    const int32_t ff_ids[2] = {256, 256};
    check_round_trip(tok, ff, 2, ff_ids, 2, "ff ff");

    int32_t *ids = (int32_t *)&err; /* must be overwritten */
    size_t n_ids = 99;
    CHECK(rwkv_tokenizer_encode(tok, NULL, 0, &ids, &n_ids, &err) == RWKV_OK && n_ids == 0);
    free(ids);
    uint8_t *bytes = NULL;
    size_t n_bytes = 99;
    CHECK(rwkv_tokenizer_decode(tok, NULL, 0, &bytes, &n_bytes, &err) == RWKV_OK && n_bytes == 0 && bytes &&
          bytes[0] == 0);
    free(bytes);

    const int32_t bad[][3] = {{33155, 0, 45}, {33155, 45, 65530}, {-7, 1, 1}, {1, 1, 2000000000}};
    const char *needles[] = {"token id 0 at index 1", "token id 65530 at index 2", "token id -7 at index 0",
                             "token id 2000000000 at index 2"};
    for (int i = 0; i < 4; i++) {
        bytes = NULL;
        CHECK_ERR(rwkv_tokenizer_decode(tok, bad[i], 3, &bytes, &n_bytes, &err), RWKV_ERR_TOKEN, &err, needles[i]);
        CHECK(bytes == NULL);
    }
    CHECK_ERR(rwkv_tokenizer_encode(NULL, ff, 2, &ids, &n_ids, &err), RWKV_ERR_ARG, &err, NULL);
    CHECK_ERR(rwkv_tokenizer_encode(tok, NULL, 2, &ids, &n_ids, &err), RWKV_ERR_ARG, &err, NULL);
}

/* Loads `text` written to a temporary file; returns the status, the tokenizer in *out (or NULL). */
static rwkv_status load_text(const char *name, const char *text, size_t n, struct rwkv_tokenizer **out,
                             struct rwkv_error *err, const char **path)
{
    *path = tu_tmp(name);
    CHECK(tu_write_file(*path, text, n));
    return rwkv_tokenizer_load(*path, out, err);
}

static void test_malformed(void)
{
    static const struct {
        const char *text, *needle; /* needle follows "path:" */
    } cases[] = {
        {"1 'a' 1\n2 '\\q' 1\n", ":2: bad escape \\q"},
        {"1 'ab' 3\n", ":1: byte length field says 3 but the literal has 2 bytes"},
        {"1 '\\xe4' 1\n", ":1: byte length field says 1 but the literal has 2 bytes"}, /* str: U+00E4 */
        {"1 'a 1\n", ":1: missing closing quote"},
        {"1 \"a' 1\n", ":1: missing closing quote"},
        {"x 'a' 1\n", ":1: bad token id"},
        {"-1 'a' 1\n", ":1: bad token id"},
        {"99999999999 'a' 1\n", ":1: bad token id"},
        {"5 'a' 1\n6 'b' 1\n5 'c' 1\n", ":3: duplicate token id 5 (first at line 1)"},
        {"1 'a' 1\n2 'b'", ":2: missing byte length"},
        {"1 'a' 1\n2", ":2: expected a space after the token id"},
        {"1 'a' 1\n2 ", ":2: expected a quoted Python str or bytes literal"},
        {"1 'a' 1\n2 b'a' 1\n", ":2: token 2 has the same bytes as token 1 (line 1)"},
        {"1 '\\x4' 1\n", ":1: bad escape: \\x needs two hex digits"},
        {"1 b'\\u00e4' 2\n", ":1: bad escape: \\u in a bytes literal"},
        {"1 '\\ud800' 3\n", ":1: bad escape: \\ud800 is not encodable"},
        {"1 '\\U00110000' 4\n", ":1: bad escape: \\U00110000"},
        {"1 '\\N{DASH}' 3\n", ":1: bad escape \\N"},
        {"1 b'\\777' 1\n", ":1: bad escape: octal"},
        {"1 b'\xc3\xa4' 2\n", ":1: non-ASCII byte 0xc3 in a bytes literal"},
        {"1 '\xc3' 1\n", ":1: invalid UTF-8"},
        {"1 '\xed\xa0\x80' 3\n", ":1: invalid UTF-8"}, /* an encoded surrogate */
        {"1 '' 0\n", ":1: token 1 is empty"},
        {"1 'a'1\n", ":1: unexpected text after the literal"},
        {"1 'a' 1 x\n", ":1: bad byte length field"},
        {"1 'a' \n", ":1: bad byte length field"},
        {"5000000 'a' 1\n", ":1: bad token id"},
        {"1 'a' 1\n\n\n4 'b\\\n", ":4: backslash at the end of the line"},
        {" \n\n", ": no tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rwkv_error err;
        struct rwkv_tokenizer *tok = (struct rwkv_tokenizer *)&err;
        const char *path;
        rwkv_status st = load_text("bad.txt", cases[i].text, strlen(cases[i].text), &tok, &err, &path);
        char needle[4096];
        snprintf(needle, sizeof needle, "%s%s", path, cases[i].needle);
        CHECK_ERR(st, RWKV_ERR_FORMAT, &err, needle);
        CHECK(tok == NULL);
    }
    struct rwkv_error err;
    struct rwkv_tokenizer *tok;
    CHECK_ERR(rwkv_tokenizer_load(tu_tmp("does-not-exist.txt"), &tok, &err), RWKV_ERR_IO, &err, "does-not-exist");
    CHECK_ERR(rwkv_tokenizer_load(NULL, &tok, &err), RWKV_ERR_ARG, &err, NULL);
}

/* Every escape Python has (but \N), both quotes, raw UTF-8, CRLF, sparse ids, holes, missing bytes. */
static void test_literals(void)
{
    static const char text[] =
        "10 '\\\\' 1\r\n"
        "11 '\\'' 1\n"
        "12 \"'a\" 2\n"
        "13 '\\\"' 1\n"
        "14 '\\x80' 2\n"
        "15 b'\\x80' 1\n"
        "16 '\\u00e9' 2\n"
        "17 '\\U0001F600' 4\n"
        "18 '\\101\\7' 2\n"
        "19 B'\\377' 1\n"
        "20 '\\a\\b\\f\\v\\r\\n\\t' 7\n"
        "21 '\xc3\xa9t\xc3\xa9' 5\n"
        "22 'a b' 3\n"
        "1000 b\"\\x00\\'\\\"\" 3\n"
        "\n";
    static const struct {
        int32_t id;
        const char *bytes;
        size_t len;
    } want[] = {
        {10, "\\", 1}, {11, "'", 1}, {12, "'a", 2}, {13, "\"", 1}, {14, "\xc2\x80", 2}, {15, "\x80", 1},
        {16, "\xc3\xa9", 2}, {17, "\xf0\x9f\x98\x80", 4}, {18, "A\a", 2}, {19, "\xff", 1},
        {20, "\a\b\f\v\r\n\t", 7}, {21, "\xc3\xa9t\xc3\xa9", 5}, {22, "a b", 3}, {1000, "\0'\"", 3},
    };
    struct rwkv_error err;
    struct rwkv_tokenizer *tok;
    const char *path;
    rwkv_status st = load_text("lit.txt", text, sizeof text - 1, &tok, &err, &path);
    CHECK_MSG(st == RWKV_OK, "%s", err.message);
    if (st)
        return;
    CHECK(rwkv_tokenizer_vocab_size(tok) == 1001);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        size_t len;
        const uint8_t *t = rwkv_tokenizer_token(tok, want[i].id, &len);
        CHECK_MSG(t && len == want[i].len && memcmp(t, want[i].bytes, len) == 0, "token %d", (int)want[i].id);
    }
    const int32_t hole[1] = {500};
    uint8_t *bytes;
    size_t n;
    CHECK_ERR(rwkv_tokenizer_decode(tok, hole, 1, &bytes, &n, &err), RWKV_ERR_TOKEN, &err, "token id 500 at index 0");
    int32_t *ids;
    CHECK_ERR(rwkv_tokenizer_encode(tok, (const uint8_t *)"\\'X", 3, &ids, &n, &err), RWKV_ERR_TOKEN, &err,
              "byte 0x58 at offset 2");
    const int32_t smile[2] = {17, 21};
    check_round_trip(tok, (const uint8_t *)"\xf0\x9f\x98\x80\xc3\xa9t\xc3\xa9", 9, smile, 2, "literals");
    rwkv_tokenizer_free(tok);
}

/* Writes the vocabulary as web-rwkv JSON: a string where the bytes are printable ASCII, else an array. */
static char *to_json(const struct rwkv_tokenizer *tok, size_t *n)
{
    size_t cap = 8 << 20, k = 0;
    char *out = malloc(cap);
    k += (size_t)sprintf(out + k, "{");
    for (int32_t id = 0; (size_t)id < rwkv_tokenizer_vocab_size(tok); id++) {
        size_t len;
        const uint8_t *t = rwkv_tokenizer_token(tok, id, &len);
        if (!t)
            continue;
        int ascii = 1;
        for (size_t i = 0; i < len; i++)
            ascii &= t[i] >= 0x20 && t[i] < 0x7f;
        k += (size_t)sprintf(out + k, "%s\n\"%d\": %c", k > 1 ? "," : "", (int)id, ascii ? '"' : '[');
        for (size_t i = 0; i < len; i++) {
            if (!ascii)
                k += (size_t)sprintf(out + k, i ? ",%u" : "%u", t[i]);
            else if (t[i] == '"' || t[i] == '\\')
                k += (size_t)sprintf(out + k, "\\%c", t[i]);
            else
                out[k++] = (char)t[i];
        }
        out[k++] = ascii ? '"' : ']';
    }
    k += (size_t)sprintf(out + k, "\n}\n");
    *n = k;
    return out;
}

static void test_json(const struct rwkv_tokenizer *world)
{
    struct rwkv_error err;
    struct rwkv_tokenizer *tok;
    const char *path;
    size_t n;
    char *json = to_json(world, &n);
    rwkv_status st = load_text("world.json", json, n, &tok, &err, &path);
    free(json);
    CHECK_MSG(st == RWKV_OK, "%s", err.message);
    if (!st) {
        CHECK(rwkv_tokenizer_vocab_size(tok) == 65530);
        test_vectors(tok);
        rwkv_tokenizer_free(tok);
    }

    static const char small[] = "  {\"1\": \"a\", \"2\": \"ab\", \"3\": [255, 254], \"10\": \"\\u00e9\"}";
    st = load_text("small.json", small, sizeof small - 1, &tok, &err, &path);
    CHECK_MSG(st == RWKV_OK, "%s", err.message);
    if (!st) {
        const int32_t want[4] = {1, 2, 3, 10};
        check_round_trip(tok, (const uint8_t *)"aab\xff\xfe\xc3\xa9", 7, want, 4, "small json");
        CHECK(rwkv_tokenizer_vocab_size(tok) == 11);
        rwkv_tokenizer_free(tok);
    }
    static const char flipped[] = "{\"a\": 1, \"ab\": 2, \"\\u00ff\": 7}";
    st = load_text("flipped.json", flipped, sizeof flipped - 1, &tok, &err, &path);
    CHECK_MSG(st == RWKV_OK, "%s", err.message);
    if (!st) {
        const int32_t want[3] = {2, 7, 1};
        check_round_trip(tok, (const uint8_t *)"ab\xc3\xbf" "a", 5, want, 3, "token -> id json");
        rwkv_tokenizer_free(tok);
    }

    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"1\": \"a\", \"x\": \"b\"}", "entry 2: key is not a token id"},
        {"{\"1\": [256]}", "entry 1: token 1: item 0 is not a byte value"},
        {"{\"1\": [1.5]}", "entry 1: token 1: item 0 is not a byte value"},
        {"{\"1\": true}", "entry 1: token 1: expected a string or an array"},
        {"{\"1\": \"a\", \"2\": [97]}", "entry 2: token 2 has the same bytes as token 1 (entry 1)"},
        {"{\"1\": \"a\", \"01\": \"b\"}", "entry 2: duplicate token id 1 (first at entry 1)"},
        {"{\"a\": -1}", "entry 1: token id -1 outside"},
        {"{\"a\": 1.5}", "entry 1: token id is not an integer"},
        {"{\"1\": \"\"}", "entry 1: token 1 is empty"},
        {"{}", "no tokens"},
        {"{\"1\": \"a\"", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tok = (struct rwkv_tokenizer *)&err;
        st = load_text("bad.json", bad[i].text, strlen(bad[i].text), &tok, &err, &path);
        char needle[4096];
        snprintf(needle, sizeof needle, "%s: %s", path, bad[i].needle);
        CHECK_ERR(st, RWKV_ERR_FORMAT, &err, needle);
        CHECK(tok == NULL);
    }
    /* the in-memory entry point used by the fuzzer */
    st = rwkv_tokenizer_parse((const uint8_t *)small, sizeof small - 1, NULL, &tok, &err);
    CHECK(st == RWKV_OK);
    rwkv_tokenizer_free(tok);
    CHECK_ERR(rwkv_tokenizer_parse(NULL, 0, "mem", &tok, &err), RWKV_ERR_FORMAT, &err, "mem: no tokens");
}

static void test_bytes(void)
{
    struct rwkv_error err;
    struct rwkv_tokenizer *tok;
    CHECK(rwkv_tokenizer_new_bytes(&tok, &err) == RWKV_OK);
    CHECK(rwkv_tokenizer_vocab_size(tok) == 256);
    uint8_t all[256];
    int32_t ids[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i, ids[i] = i;
    check_round_trip(tok, all, 256, ids, 256, "bytes");
    const int32_t bad = 256;
    uint8_t *out;
    size_t n;
    CHECK_ERR(rwkv_tokenizer_decode(tok, &bad, 1, &out, &n, &err), RWKV_ERR_TOKEN, &err, "token id 256");
    rwkv_tokenizer_free(tok);
    rwkv_tokenizer_free(NULL);
}

/* Compares a file with expected contents. */
static int file_is(const char *path, const void *want, size_t n)
{
    if (n == (size_t)-1)
        n = strlen(want);
    size_t len;
    char *got = tu_read_file(path, &len);
    int same = got && len == n && memcmp(got, want, n) == 0;
    if (!same)
        fprintf(stderr, "%s: got '%s'\n", path, got ? got : "(unreadable)");
    free(got);
    return same;
}

static void test_cli(void)
{
    const char *vocab = tu_shared("vocab/rwkv_vocab_v20230424.txt"), *cli = tu_cli();
    char in[4096], ids[4096], back[4096], errf[4096];
    snprintf(in, sizeof in, "%s", tu_tmp("cli-in"));
    snprintf(ids, sizeof ids, "%s", tu_tmp("cli-ids"));
    snprintf(back, sizeof back, "%s", tu_tmp("cli-back"));
    snprintf(errf, sizeof errf, "%s", tu_tmp("cli-err"));
    static const char text[] = "Hello, world!\xff\xff\n";
    CHECK(tu_write_file(in, text, sizeof text - 1));
    CHECK(tu_system("%s tokenize --vocab %s < %s > %s", cli, vocab, in, ids) == 0);
    CHECK(file_is(ids, "33155 45 40213 34 256 256 11\n", 29));
    CHECK(tu_system("%s detokenize --vocab %s < %s > %s", cli, vocab, ids, back) == 0);
    CHECK(file_is(back, text, sizeof text - 1));

    CHECK(tu_system("printf 'AB' | %s tokenize > %s", cli, ids) == 0);
    CHECK(file_is(ids, "65 66\n", 6));
    CHECK(tu_system("printf ' 65\\n\\t66 ' | %s detokenize --bytes > %s", cli, back) == 0);
    CHECK(file_is(back, "AB", 2));
    CHECK(tu_system("printf '' | %s tokenize --vocab %s > %s", cli, vocab, ids) == 0);
    CHECK(file_is(ids, "\n", 1));

    /* usage errors: 2; bad input: 1; each one line on stderr */
    CHECK(tu_system("%s tokenize --nope < /dev/null 2> %s", cli, errf) == 2);
    CHECK(tu_system("%s tokenize --vocab 2> %s", cli, errf) == 2);
    CHECK(tu_system("%s detokenize --vocab %s --bytes < /dev/null 2> %s", cli, vocab, errf) == 2);
    CHECK(tu_system("printf '12 abc' | %s detokenize --vocab %s 2> %s", cli, vocab, errf) == 1);
    CHECK(file_is(errf, "rwkv detokenize: bad token id 'abc' at byte 3 of stdin (want decimal ids up to 2147483647)\n",
                  (size_t)-1));
    CHECK(tu_system("printf '1 0' | %s detokenize --vocab %s > /dev/null 2> %s", cli, vocab, errf) == 1);
    CHECK(file_is(errf, "rwkv detokenize: token id 0 at index 1 is not in the vocabulary\n", (size_t)-1));
    CHECK(tu_system("printf '99999999999' | %s detokenize 2> %s", cli, errf) == 1);
    CHECK(tu_system("printf 'a' | %s tokenize --vocab %s 2> %s", cli, tu_tmp("nonexistent"), errf) == 1);
    CHECK(tu_system("%s tokenize --help > /dev/null", cli) == 0);
}

/* Encode speed on the vocabulary file itself, repeated to 16 MiB. */
static void bench(const struct rwkv_tokenizer *tok)
{
    size_t n;
    char *file = tu_read_file(tu_shared("vocab/rwkv_vocab_v20230424.txt"), &n);
    CHECK(file != NULL);
    if (!file)
        return;
    size_t total = 16 << 20;
    uint8_t *big = malloc(total);
    for (size_t k = 0; k < total; k += n)
        memcpy(big + k, file, total - k < n ? total - k : n);
    struct rwkv_error err;
    int32_t *ids;
    size_t n_ids;
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = rwkv_time_seconds();
        CHECK(rwkv_tokenizer_encode(tok, big, total, &ids, &n_ids, &err) == RWKV_OK);
        double dt = rwkv_time_seconds() - t0;
        best = dt < best ? dt : best;
        if (rep < 2)
            free(ids);
    }
    uint8_t *back;
    size_t n_back;
    double t0 = rwkv_time_seconds();
    CHECK(rwkv_tokenizer_decode(tok, ids, n_ids, &back, &n_back, &err) == RWKV_OK);
    double dt_dec = rwkv_time_seconds() - t0;
    CHECK(n_back == total && memcmp(back, big, total) == 0);
    fprintf(stderr, "bench: encode %.1f MB/s (%zu bytes -> %zu tokens, %.2f bytes/token), decode %.0f MB/s\n",
            total / best / 1e6, total, n_ids, (double)total / n_ids, total / dt_dec / 1e6);
    free(back);
    free(ids);
    free(big);
    free(file);
}

int main(void)
{
    struct rwkv_error err;
    struct rwkv_tokenizer *world = NULL;
    rwkv_status st = rwkv_tokenizer_load(tu_shared("vocab/rwkv_vocab_v20230424.txt"), &world, &err);
    CHECK_MSG(st == RWKV_OK, "%s", err.message);
    if (st)
        return tu_finish("test_tokenizer");
    test_vectors(world);
    test_edges(world);
    test_random(world);
    test_malformed();
    test_literals();
    test_json(world);
    test_bytes();
    test_cli();
    bench(world);
    rwkv_tokenizer_free(world);
    return tu_finish("test_tokenizer");
}
