/* libFuzzer target: vocabulary parsing (the .txt form, and JSON when the input starts with '{'), then
 * encoding with whatever loaded. Checks the invariants as well as memory safety:
 * - a refused vocabulary gives a one-line message;
 * - decode(encode(x)) == x, or encode names a byte no token covers;
 * - a token's own bytes encode to that token alone (nothing longer can match them). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

static void check_round_trip(const struct rwkv_tokenizer *tok, const uint8_t *s, size_t n)
{
    struct rwkv_error err;
    int32_t *ids;
    size_t n_ids, n_back;
    uint8_t *back;
    if (rwkv_tokenizer_encode(tok, s, n, &ids, &n_ids, &err) != RWKV_OK) {
        if (err.code != RWKV_ERR_TOKEN)
            abort();
        return;
    }
    if (rwkv_tokenizer_decode(tok, ids, n_ids, &back, &n_back, &err) != RWKV_OK || n_back != n ||
        memcmp(back, s, n) != 0)
        abort();
    free(back);
    free(ids);
}

static void check_tokens(const struct rwkv_tokenizer *tok)
{
    size_t n_vocab = rwkv_tokenizer_vocab_size(tok), checked = 0;
    for (size_t id = 0; id < n_vocab && checked < 256; id++) {
        size_t len;
        const uint8_t *t = rwkv_tokenizer_token(tok, (int32_t)id, &len);
        if (!t)
            continue;
        struct rwkv_error err;
        int32_t *ids;
        size_t n_ids;
        if (rwkv_tokenizer_encode(tok, t, len, &ids, &n_ids, &err) != RWKV_OK || n_ids != 1 || ids[0] != (int32_t)id)
            abort();
        free(ids);
        checked++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rwkv_error err;
    struct rwkv_tokenizer *tok;
    if (rwkv_tokenizer_parse(data, size, "fuzz.txt", &tok, &err) != RWKV_OK) {
        if (tok != NULL || strchr(err.message, '\n') != NULL || err.code == RWKV_OK)
            abort();
        return 0;
    }
    check_round_trip(tok, data, size); /* the vocabulary text itself, as input */
    static const uint8_t ff[2] = {0xff, 0xff};
    check_round_trip(tok, ff, sizeof ff);
    check_tokens(tok);
    rwkv_tokenizer_free(tok);
    return 0;
}
