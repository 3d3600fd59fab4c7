#version 450
// SHIFT: out[t] = in[t - 1] within a segment; a segment's first token reads the slot's state, which
// then gets the segment's last token. The first token's invocation does both, so there is no race.
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) writeonly buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { float x[]; };
layout(std430, binding = 2) buffer StateBuf { float st[]; };
#define CHUNK_BINDING 3
#include "chunk.glsl"

void main()
{
    for (uint t = gl_WorkGroupID.y; t < pc.rows; t += gl_NumWorkGroups.y) {
        uint seg = ck_tok_seg(t), start = ck_seg_start(seg);
        for (uint c = gl_GlobalInvocationID.x; c < pc.width; c += gl_NumWorkGroups.x * WG) {
            if (t == start) {
                uint si = ck_seg_slot(seg) * pc.state_stride + pc.state_off + c;
                y[out_at(t, c)] = st[si];
                st[si] = x[in_at(0u, start + ck_seg_len(seg) - 1u, c)];
            } else {
                y[out_at(t, c)] = x[in_at(0u, t - 1u, c)];
            }
        }
    }
}
