/* Every case of ../shared/cases (plain, LoRA, initial state), both weight files, every position, on
 * the CPU backend, against the reference logits at the float32 tolerance (1e-4). */
#include "util/cases.h"

int main(void)
{
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_CPU;
    struct rwkv_device *dev;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &dev, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    tc_run_all_cases(dev, 1e-4, "cpu");
    /* single-threaded too: the thread split must not change results beyond rounding */
    rwkv_device_free(dev);
    o.n_threads = 1;
    if (rwkv_device_open(&o, &dev, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    tc_run_all_cases(dev, 1e-4, "cpu1");
    rwkv_device_free(dev);
    return tu_finish("test_cases");
}
