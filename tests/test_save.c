/* Saving models: a LoRA-merged model saved and loaded back gives bit-identical logits; the reference
 * LoRA case still holds after the round trip; a failed save leaves nothing behind. */
#include <stdlib.h>
#include <string.h>

#include "util/cases.h"

static int32_t tokens[] = {84, 104, 101, 32, 113, 117, 105, 99, 107, 0, 255, 10};
enum { NT = sizeof tokens / sizeof *tokens };

static float *run(struct rwkv_device *dev, const char *path, const struct rwkv_model_options *mo)
{
    return tc_load_and_run(dev, path, mo, tokens, NT, 5);
}

int main(void)
{
    struct rwkv_device *dev = tc_cpu_device(0);
    struct rwkv_error err;
    static const char *const stems[][2] = {{"7v0-834K", "lora/7v0-834K-r4.lora.st"},
                                           {"5v2-730K", "lora/5v2-730K-r4.lora.st"},
                                           {"6v0-1m", NULL}, {"4v0-660K", NULL}, {"5v1-730K", NULL}};
    for (size_t i = 0; i < sizeof stems / sizeof *stems; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/tiny-rwkv-%s.st", stems[i][0]);
        char model[512];
        snprintf(model, sizeof model, "%s", tu_shared(rel));
        struct rwkv_lora_spec spec = {stems[i][1] ? tu_shared(stems[i][1]) : NULL, 3.0f, NULL};
        struct rwkv_model_options mo = rwkv_model_default_options();
        if (spec.path) {
            mo.loras = &spec;
            mo.n_loras = 1;
        }
        float *want = run(dev, model, &mo);
        struct rwkv_model *m;
        CHECK(rwkv_model_load(dev, model, &mo, &m, &err) == RWKV_OK);
        const char *saved = tu_tmp("saved.st");
        CHECK(rwkv_model_save(m, saved, &err) == RWKV_OK);
        CHECK_ERR(rwkv_model_save(m, "/nonexistent-dir/x.st", &err), RWKV_ERR_IO, &err, "cannot create");
        rwkv_model_free(m);
        float *got = run(dev, saved, NULL);
        CHECK_MSG(want && got && memcmp(want, got, NT * 256 * sizeof(float)) == 0, "%s: reload is not bit-identical",
                  stems[i][0]);
        free(want);
        free(got);
        remove(saved);
    }
    CHECK(tu_system("%s save --model %s --out %s", tu_cli(), tu_shared("models/tiny-rwkv-6v0-1m.st"),
                    tu_tmp("cli-saved.st")) == 0);
    CHECK(tu_system("%s save --model %s 2>/dev/null", tu_cli(), tu_shared("models/tiny-rwkv-6v0-1m.st")) == 2);
    remove(tu_tmp("cli-saved.st"));
    rwkv_device_free(dev);
    return tu_finish("test_save");
}
