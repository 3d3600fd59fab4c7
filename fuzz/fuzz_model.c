/* Fuzzes the model builder and the CPU run on hostile but parseable safetensors: any table the reader
 * accepts must either build into a model that runs two tokens, or fail with a message. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_table.h"
#include "model/model.h"
#include "rwkv.h"

static struct rwkv_device *device(void)
{
    static struct rwkv_device *dev;
    if (!dev) {
        struct rwkv_device_options o = rwkv_device_default_options();
        o.backend = RWKV_BACKEND_CPU;
        o.n_threads = 1;
        if (rwkv_device_open(&o, &dev, NULL))
            abort();
    }
    return dev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rwkv_tensor_table t;
    struct rwkv_error err;
    if (!fuzz_table(data, size, &t))
        return 0;
    if (rwkv_safetensors_parse(&t, &err)) {
        rwkv_table_free(&t);
        return 0;
    }
    struct rwkv_model *m;
    if (rwkv_model_build(device(), &t, NULL, &m, &err)) { /* takes the table */
        if (!err.message[0])
            abort();
        return 0;
    }
    struct rwkv_state *s;
    struct rwkv_state_options so = {2, 2};
    if (rwkv_state_new(m, &so, &s, &err) == RWKV_OK) {
        int V = rwkv_model_get_info(m)->n_vocab;
        int32_t toks[3] = {0, V - 1, V / 2};
        float *logits = malloc((size_t)V * 2 * sizeof *logits);
        struct rwkv_slot_io io[2] = {{.tokens = toks, .n_tokens = 3, .output = RWKV_OUTPUT_LAST, .logits = logits,
                                      .logits_rows = 1},
                                     {.tokens = toks + 1, .n_tokens = 1, .output = RWKV_OUTPUT_ALL,
                                      .logits = logits ? logits + V : NULL, .logits_rows = 1}};
        while (logits && (io[0].n_tokens || io[1].n_tokens) && rwkv_run(s, io, 2, &err) == RWKV_OK)
            ;
        free(logits);
        rwkv_state_free(s);
    }
    rwkv_model_free(m);
    return 0;
}
