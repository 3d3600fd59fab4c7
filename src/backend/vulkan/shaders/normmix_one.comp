#version 450
// normmix.comp for chunks whose every segment is one token (generation), with a SHIFT: the previous
// token of each token is in the slot's shift state, so rows are independent, and each row is spread
// over SPLIT workgroups (one workgroup per row leaves the device idle and its latency exposed). Each
// workgroup takes the mean and variance of the whole row (two passes, as the CPU) and makes its
// 1/SPLIT of the channels:
//   xx = LN(x) * w + b; sx = the slot's shift state, which then gets xx; out_j = lerp of (xx, sx)
// Bindings and flags as normmix.comp (the shift is present: vk_backend.c uses this variant only then).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint SPLIT = 4; // workgroups per row
layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer XxBuf { float xx[]; };
layout(std430, binding = 1) readonly buffer XBuf { float x[]; };
layout(std430, binding = 2) writeonly buffer SxBuf { float sx[]; };
layout(std430, binding = 3) writeonly buffer O0 { float o0[]; };
layout(std430, binding = 4) writeonly buffer O1 { float o1[]; };
layout(std430, binding = 5) writeonly buffer O2 { float o2[]; };
layout(std430, binding = 6) writeonly buffer O3 { float o3[]; };
layout(std430, binding = 7) writeonly buffer O4 { float o4[]; };
layout(std430, binding = 8) writeonly buffer O5 { float o5[]; };
layout(std430, binding = 9) readonly buffer Params { float prm[]; };
layout(std430, binding = 10) buffer StateBuf { float st[]; };
#define CHUNK_BINDING 11
#include "chunk.glsl"

#define STORE_LERP(J, ARR) \
    if ((pc.flags & (1u << J)) != 0u) \
        ARR[o] = lerp_j(J, a, b, prm[(2u + J) * C + c]);

void main()
{
    uint tid = gl_LocalInvocationID.x, C = pc.width, CS = (C + SPLIT - 1u) / SPLIT;
    for (uint job = gl_WorkGroupID.x; job < pc.rows * SPLIT; job += gl_NumWorkGroups.x) {
        uint t = job / SPLIT, part = job % SPLIT;
        // this workgroup's channels first: their loads overlap the row's
        uint c = part * CS + tid;
        bool mine = tid < CS && c < C;
        uint cc = min(c, C - 1u), si = ck_seg_slot(t) * pc.state_stride + pc.state_off;
        float xv = x[in_at(0u, t, cc)], sv = st[si + cc], w = prm[cc], bias = prm[C + cc];
        float s = 0.0;
        for (uint i = tid; i < C; i += WG)
            s += x[in_at(0u, t, i)];
        float mean = wg_sum(s) / float(C), q = 0.0;
        for (uint i = tid; i < C; i += WG) {
            float d = x[in_at(0u, t, i)] - mean;
            q += d * d;
        }
        float inv = 1.0 / sqrt(wg_sum(q) / float(C) + pc.eps);
        for (uint k = 0u; k * WG < CS; k++) { // the workgroup's channels, WG at a time
            if (k > 0u) {
                c = part * CS + k * WG + tid;
                mine = k * WG + tid < CS && c < C;
                cc = min(c, C - 1u);
                xv = x[in_at(0u, t, cc)];
                sv = st[si + cc];
                w = prm[cc];
                bias = prm[C + cc];
            }
            if (!mine)
                continue;
            float a = (xv - mean) * inv * w + bias, b = sv;
            uint o = t * C + c;
            xx[out_at(t, c)] = a;
            st[si + c] = a;
            sx[o] = b;
            STORE_LERP(0u, o0)
            STORE_LERP(1u, o1)
            STORE_LERP(2u, o2)
            STORE_LERP(3u, o3)
            STORE_LERP(4u, o4)
            STORE_LERP(5u, o5)
        }
    }
}
