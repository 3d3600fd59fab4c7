/* Internal entry points of the tokenizer, for the fuzzer and tests: parse a vocabulary held in memory. */
#ifndef RWKV_TEXT_TOKENIZER_INTERNAL_H
#define RWKV_TEXT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

/* Ids above this are rejected: the id -> bytes table is dense, so a stray huge id must not allocate
 * gigabytes. RWKV vocabularies have 65536 ids. */
#define RWKV_TOKENIZER_MAX_ID ((1 << 22) - 1)

/* Parses `n` bytes of a vocabulary (the .txt form, or JSON when the first non-space byte is '{').
 * `what` names the input in error messages (a path). The data need not outlive the call. */
rwkv_status rwkv_tokenizer_parse(const uint8_t *data, size_t n, const char *what, struct rwkv_tokenizer **out,
                                 struct rwkv_error *err);

#endif
