/* `.pth` checkpoints load directly: the logits equal those of the `.st` made from the same weights
 * (the converter's F16), and with float32 held precision those of the `.f32.st`. */
#include <stdlib.h>
#include <string.h>

#include "util/cases.h"

static float *run(struct rwkv_device *dev, const char *path, enum rwkv_dtype dt, const int32_t *toks, size_t n)
{
    struct rwkv_model_options mo = rwkv_model_default_options();
    mo.matrix_dtype = dt;
    return tc_load_and_run(dev, path, &mo, toks, n, 16);
}

int main(void)
{
    struct rwkv_device *dev = tc_cpu_device(0);
    static const char *const stems[] = {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-1m", "7v0-834K"};
    int32_t toks[40];
    for (int i = 0; i < 40; i++)
        toks[i] = (i * 37 + 11) % 256;
    for (size_t k = 0; k < sizeof stems / sizeof *stems; k++) {
        char pth[512], st[512], f32[512], rel[128];
        snprintf(rel, sizeof rel, "pth/tiny-rwkv-%s.pth", stems[k]);
        snprintf(pth, sizeof pth, "%s", tu_shared(rel));
        snprintf(rel, sizeof rel, "models/tiny-rwkv-%s.st", stems[k]);
        snprintf(st, sizeof st, "%s", tu_shared(rel));
        snprintf(rel, sizeof rel, "models/tiny-rwkv-%s.f32.st", stems[k]);
        snprintf(f32, sizeof f32, "%s", tu_shared(rel));
        float *a = run(dev, pth, RWKV_DTYPE_COUNT, toks, 40), *b = run(dev, st, RWKV_DTYPE_COUNT, toks, 40);
        CHECK_MSG(a && b && memcmp(a, b, 40 * 256 * sizeof(float)) == 0, "%s: .pth vs .st not identical", stems[k]);
        float *c = run(dev, pth, RWKV_DTYPE_F32, toks, 40), *d = run(dev, f32, RWKV_DTYPE_COUNT, toks, 40);
        CHECK_MSG(c && d && tc_max_diff(c, d, 40 * 256) <= 1e-5, "%s: .pth (F32) vs .f32.st: %.3g", stems[k],
                  c && d ? tc_max_diff(c, d, 40 * 256) : -1.0);
        free(a);
        free(b);
        free(c);
        free(d);
    }
    CHECK(tu_system("%s logits --model %s --tokens 1,2,3 --out %s", tu_cli(), tu_shared("pth/tiny-rwkv-7v0-834K.pth"),
                    tu_tmp("pth.bin")) == 0);
    remove(tu_tmp("pth.bin"));
    rwkv_device_free(dev);
    return tu_finish("test_pth_logits");
}
