/* libFuzzer target: the safetensors reader on arbitrary bytes. (Its messages quote tensor names as
 * they are, newlines included, so the one-line check is off here.) */
#include "fuzz_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse(data, size, rwkv_safetensors_parse, 0);
    return 0;
}
