#version 450
// Softmax of the logits rows a chunk asked probabilities for: one workgroup per row of the per-output
// tile (rows out_base + row), where the chunk table's flag of that row is set; the others are left as
// logits. p = exp(l - max) / sum, as rwkv_softmax (the sum here in float, by a tree).
// Bindings: 0 the logits buffer [rows][width], 1 the chunk table. pc.nrows: the chunk's logits rows.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) buffer LogitsBuf { float lg[]; };
#define CHUNK_BINDING 1
#include "chunk.glsl"

// the flags follow the logits rows' tokens in the chunk table
uint ck_out_softmax(uint r) { return ck[8u + 2u * pc.chunk_tokens + 3u * pc.n_seg + pc.nrows + r]; }

shared float red_max[WG];

void main()
{
    uint tid = gl_LocalInvocationID.x, V = pc.width;
    for (uint row = gl_WorkGroupID.x; row < pc.rows; row += gl_NumWorkGroups.x) {
        if (ck_out_softmax(pc.out_base + row) == 0u) // uniform
            continue;
        uint o = row * pc.out_stride;
        float mx = -1.0 / 0.0;
        for (uint i = tid; i < V; i += WG)
            mx = max(mx, lg[o + i]);
        red_max[tid] = mx;
        barrier();
        for (uint s = WG / 2u; s > 0u; s >>= 1) {
            if (tid < s)
                red_max[tid] = max(red_max[tid], red_max[tid + s]);
            barrier();
        }
        mx = red_max[0];
        barrier();
        float sum = 0.0;
        for (uint i = tid; i < V; i += WG) {
            float e = exp(lg[o + i] - mx);
            lg[o + i] = e;
            sum += e;
        }
        float inv = 1.0 / wg_sum(sum);
        for (uint i = tid; i < V; i += WG)
            lg[o + i] *= inv;
        barrier();
    }
}
