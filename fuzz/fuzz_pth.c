/* libFuzzer target: the PyTorch checkpoint reader (zip + pickle) on arbitrary bytes.
 * Seeds: run tests/test_pth with RWKV_PTH_SEEDS=DIR to write small valid archives into DIR. */
#include "fuzz_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse(data, size, rwkv_pth_parse, 1);
    return 0;
}
