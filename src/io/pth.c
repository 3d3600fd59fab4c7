/* PyTorch .pth reader: placeholder until the zip + pickle reader lands. */
#include "core/error.h"
#include "io/tensor_table.h"

rwkv_status rwkv_pth_parse(struct rwkv_tensor_table *t, struct rwkv_error *err)
{
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: PyTorch checkpoints are not supported yet", t->path);
}
