#version 450
// LAYERNORM, optionally followed by the SHIFT of its output and LERPs between the two (RWKV's token
// mix), fused: one workgroup per token row (vk_backend.c finds the pattern in the program).
//   xx = LN(x) * w + b (two-pass variance, as the CPU);
//   sx[t] = xx of the previous token of the segment; a segment's first token reads the slot's shift
//           state, which then gets xx of the segment's last token;
//   out_j = a + (b - a) * mix_j with (a, b) = (xx, sx), or (sx, xx) where flag bit 8 + j is set.
// The row the shift reads is normalised once more here, which costs less than a dispatch and a
// barrier. Each invocation keeps PER channels of both rows in registers, so that x is read once.
// x and xx are views (in[0], out); sx and the outputs whole buffers of width C. LN alone may work in
// place (x = xx).
// Bindings: 0 xx, 1 x, 2 sx, 3..8 out_j, 9 params [2 + 6][C] (ln weight, ln bias, mix_j; absent mixes
// are zeros), 10 the shift state, 11 the chunk table. Flags: bit j out_j present, bit 8 + j swapped,
// bit 24 shift present.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint PER = 4; // channels per invocation: C <= WG * PER
layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "reduce.glsl"
WG_SUM_OF(vec2, wg_sum2, red2_sh)
layout(std430, binding = 0) buffer XxBuf { float xx[]; };
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

bool shift_on() { return (pc.flags & (1u << 24)) != 0u; }

#define STORE_LERP(J, ARR) \
    if ((pc.flags & (1u << J)) != 0u) \
        ARR[o] = lerp_j(J, a, b, pv[i][2u + J]);

void main()
{
    uint tid = gl_LocalInvocationID.x, C = pc.width;
    for (uint t = gl_WorkGroupID.x; t < pc.rows; t += gl_NumWorkGroups.x) {
        // loads in the order of their dependencies, so that later ones overlap earlier latencies: row
        // t and the parameters; then the chunk table; then the shifted row p (the previous token, or
        // at a segment's first token its last, for the state) and the slot's state
        vec2 v[PER];      // (row t, row p) of channels tid + i WG
        float pv[PER][8]; // their parameters
        float sv[PER];    // the slot's shift state (segment's first token)
        for (uint i = 0u; i < PER; i++) {
            uint c = min(tid + i * WG, C - 1u);
            for (uint j = 0u; j < 8u; j++)
                pv[i][j] = j < 2u || (pc.flags & (1u << (j - 2u))) != 0u ? prm[j * C + c] : 0.0;
            v[i] = vec2(tid + i * WG < C ? x[in_at(0u, t, c)] : 0.0);
        }
        uint p = t, seg = 0u, start = t, si = 0u;
        if (shift_on() && ck_one_token()) { // token t is segment t, alone
            seg = t;
            si = ck_seg_slot(seg) * pc.state_stride + pc.state_off;
        } else if (shift_on()) {
            seg = ck_tok_seg(t);
            start = ck_seg_start(seg);
            p = t == start ? start + ck_seg_len(seg) - 1u : t - 1u;
            si = ck_seg_slot(seg) * pc.state_stride + pc.state_off;
        }
        vec2 s = vec2(0.0);
        for (uint i = 0u; i < PER; i++) {
            uint c = min(tid + i * WG, C - 1u);
            if (p != t && tid + i * WG < C)
                v[i].y = x[in_at(0u, p, c)];
            sv[i] = shift_on() && t == start ? st[si + c] : 0.0;
            s += v[i];
        }
        vec2 mean = wg_sum2(s) / float(C);
        vec2 q = vec2(0.0);
        for (uint i = 0u; i < PER; i++) {
            vec2 d = tid + i * WG < C ? v[i] - mean : vec2(0.0);
            q += d * d;
        }
        vec2 inv = 1.0 / sqrt(wg_sum2(q) / float(C) + pc.eps);
        for (uint i = 0u; i < PER; i++) {
            uint c = tid + i * WG, o = t * C + c;
            vec2 n = (v[i] - mean) * inv * pv[i][0] + pv[i][1];
            float a = n.x, b = n.y;
            if (c < C)
                xx[out_at(t, c)] = a;
            if (c < C && shift_on()) {
                if (t == start) { // this invocation alone touches channel c of the slot's state
                    b = sv[i];
                    st[si + c] = n.y;
                }
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
}
