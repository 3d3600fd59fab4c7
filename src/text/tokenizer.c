/* placeholder */
#include "core/error.h"
rwkv_status rwkv_tokenizer_load(const char *path, struct rwkv_tokenizer **out, struct rwkv_error *err)
{
    *out = NULL;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: tokenizer not built yet", path);
}
rwkv_status rwkv_tokenizer_new_bytes(struct rwkv_tokenizer **out, struct rwkv_error *err)
{
    *out = NULL;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "tokenizer not built yet");
}
void rwkv_tokenizer_free(struct rwkv_tokenizer *tok) { (void)tok; }
