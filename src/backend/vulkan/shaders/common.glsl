// Push constants shared by every kernel: the mirror of struct vk_push in vk_internal.h (keep in sync).
// Views: row t, column c of input i is at t * in_stride[i] + in_col[i] + c (floats); the same for out.

layout(push_constant) uniform Push {
    uint rows;        // rows of this op: tokens, or the per-output tile's rows
    uint width;       // columns of the out view
    uint out_col;
    uint out_stride;
    uint in_col[6];
    uint in_stride[6];
    uint k;           // MATMUL: input width
    uint row0;        // MATMUL/EMBED: the weight part's first row
    uint nrows;       // MATMUL/EMBED: rows in the part
    uint flags;       // bit i: in[i] present; bit 8+i: w[i] present; bit 16: accumulate
    uint act;
    float eps;
    uint heads;
    uint head_size;
    uint n_seg;
    uint out_base;    // per-output tile: first logits row
    uint state_stride;// floats per slot in the state region
    uint state_off;   // the op's first float in its region's slot
    uint chunk_tokens;// tokens of the chunk (rows is a per-output tile's rows in the per-output ops)
} pc;

bool has_in(uint i) { return (pc.flags & (1u << i)) != 0u; }
bool has_w(uint i) { return (pc.flags & (1u << (8u + i))) != 0u; }
bool accumulate() { return (pc.flags & (1u << 16)) != 0u; }

uint in_at(uint i, uint t, uint c) { return t * pc.in_stride[i] + pc.in_col[i] + c; }
uint out_at(uint t, uint c) { return t * pc.out_stride + pc.out_col + c; }

// enum rwkv_act, with the formulas of cpu_activate().
float act_apply(uint act, float z)
{
    switch (act) {
    case 1u: return 1.0 / (1.0 + exp(-z));
    case 2u: return tanh(clamp(z, -15.0, 15.0)); // tanh(15) is 1.0f; the clamp avoids inf/inf in exp forms
    case 3u: return z > 0.0 ? z * z : 0.0;
    case 4u: return z / (1.0 + exp(-z));
    case 5u: return exp(-exp(z));
    case 6u: return exp(-0.60653065971263342 / (1.0 + exp(-z)));
    default: return z;
    }
}

// NORMMIX's mix j of xx = a0 and sx = b0 by m: a + (b - a) m with (a, b) = (xx, sx), or (sx, xx) where
// flag bit 8 + j is set (normmix.comp, normmix_one.comp).
float lerp_j(uint j, float a0, float b0, float m)
{
    bool swap = (pc.flags & (1u << (8u + j))) != 0u;
    float a = swap ? b0 : a0, b = swap ? a0 : b0;
    return a + (b - a) * m;
}
