#version 450
// WKV7 for chunks whose every segment is one token (generation, one or many sequences): the math of
// wkv7.comp for a single step, laid out for memory rather than for a long recurrence (wkv7_head.glsl,
// shared with token7.comp): a workgroup of 4 N invocations per (segment, head).
// in0 r, in1 w, in2 k, in3 v, in4 a, in5 g; w0 k_k, w1 k_a, w2 r_k, w3 ln_x.weight, w4 ln_x.bias.
// Needs N % 16 == 0, 4 N invocations and subgroup shuffles (vk_backend.c checks).
//
// With LORA, the kernel also performs the four LoRA up-projections that the program runs before WKV7
// (so that a generation step has one stage less): from the hidden vectors (bindings 14-17: after
// tanh, as is, after sigmoid, as is) and the matrices w2, a2, g2, v2 [C][D] (18-21, F16 with W_F16)
// with biases w0, a0, v0 (22-24):
//   w = exp(-e^-0.5 sigmoid(w0 + w2 tw)), a = sigmoid(a0 + a2 ta), g = g2 tg,
//   v = v + (v_first - v) sigmoid(v0 + v2 tv) (binding 25: v_first; without a v LoRA, v as is).
// The bindings of w, a and g (2, 5, 6) are then not read. D of each (spec constants 1-4; 0 for no v
// LoRA) is a multiple of 8: the four invocations of a channel share its rows' 16-byte blocks, in
// loops of constant length that the compiler unrolls, all loads issued up front.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 256; // 4 x the head size
layout(constant_id = 1) const uint DW = 64;   // LORA: the hidden sizes of w, a, g and v (0: none)
layout(constant_id = 2) const uint DA = 64;
layout(constant_id = 3) const uint DG = 128;
layout(constant_id = 4) const uint DV = 32;
layout(local_size_x_id = 0) in;
const uint N = WG / 4u;

#include "common.glsl"
#include "reduce.glsl"
WG_SUM_OF(vec2, wg_sum2, red2_sh)
layout(std430, binding = 0) writeonly buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer RBuf { float rv[]; };
layout(std430, binding = 2) readonly buffer WBuf { float wv[]; };
layout(std430, binding = 3) readonly buffer KBuf { float kv[]; };
layout(std430, binding = 4) readonly buffer VBuf { float vv[]; };
layout(std430, binding = 5) readonly buffer ABuf { float av[]; };
layout(std430, binding = 6) readonly buffer GBuf { float gv[]; };
layout(std430, binding = 7) readonly buffer KkBuf { float k_k[]; };
layout(std430, binding = 8) readonly buffer KaBuf { float k_a[]; };
layout(std430, binding = 9) readonly buffer RkBuf { float r_k[]; };
layout(std430, binding = 10) readonly buffer LnwBuf { float lnw[]; };
layout(std430, binding = 11) readonly buffer LnbBuf { float lnb[]; };
layout(std430, binding = 12) buffer StateBuf { vec4 st4[]; };
#define CHUNK_BINDING 13
#include "chunk.glsl"
#ifdef LORA
layout(std430, binding = 14) readonly buffer TwBuf { vec4 tw4[]; };
layout(std430, binding = 15) readonly buffer TaBuf { vec4 ta4[]; };
layout(std430, binding = 16) readonly buffer TgBuf { vec4 tg4[]; };
layout(std430, binding = 17) readonly buffer TvBuf { vec4 tv4[]; };
#ifdef W_F16
#define MAT uvec4
#else
#define MAT vec4
#endif
layout(std430, binding = 18) readonly buffer W2Buf { MAT w2[]; };
layout(std430, binding = 19) readonly buffer A2Buf { MAT a2[]; };
layout(std430, binding = 20) readonly buffer G2Buf { MAT g2[]; };
layout(std430, binding = 21) readonly buffer V2Buf { MAT v2[]; };
layout(std430, binding = 22) readonly buffer W0Buf { float w0[]; };
layout(std430, binding = 23) readonly buffer A0Buf { float a0[]; };
layout(std430, binding = 24) readonly buffer V0Buf { float v0[]; };
layout(std430, binding = 25) readonly buffer VfBuf { float vfirst[]; };

// The hidden vectors of the token go to shared memory ([w | a | g | v], vec4s); this invocation's
// blocks (16 bytes of F16, or 2 x 16 of F32; blocks q, q + 4, ... of row c) of each matrix go to
// registers, all loads issued before the first sum; a block past the end repeats the last, times 0.
#ifdef W_F16
const uint WPB = 1u;
#define BDOT(R, u, h0, h1) (dot(vec4(unpackHalf2x16(R[u].x), unpackHalf2x16(R[u].y)), h0) + \
                            dot(vec4(unpackHalf2x16(R[u].z), unpackHalf2x16(R[u].w)), h1))
#else
const uint WPB = 2u;
#define BDOT(R, u, h0, h1) (dot(R[2u * (u)], h0) + dot(R[2u * (u) + 1u], h1))
#endif
const uint HA = DW / 4u, HG = HA + DA / 4u, HV = HG + DG / 4u, HT = HV + DV / 4u;
const uint NW = (DW / 8u + 3u) / 4u, NA = (DA / 8u + 3u) / 4u, NG = (DG / 8u + 3u) / 4u;
const uint NV = DV > 0u ? (DV / 8u + 3u) / 4u : 1u;
shared vec4 shid[HT];
MAT rw[NW * WPB], ra[NA * WPB], rg[NG * WPB], rv2[NV * WPB];

#define LORA_LOAD(M, D, R, c, q)                                                  \
    {                                                                             \
        const uint nb = (D) >> 3;                                                 \
        uint mrow = (c) * nb * WPB;                                               \
        [[unroll]] for (uint u = 0u; u < (nb + 3u) / 4u; u++) {                   \
            uint b = min((q) + 4u * u, nb - 1u);                                  \
            [[unroll]] for (uint e = 0u; e < WPB; e++)                            \
                R[u * WPB + e] = M[mrow + b * WPB + e];                           \
        }                                                                         \
    }
#endif

#include "wkv7_head.glsl"

void main()
{
    uint tid = gl_LocalInvocationID.x, i = tid >> 2, q = tid & 3u;
    uint jobs = pc.n_seg * pc.heads;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint s = job / pc.heads, h = job % pc.heads;
        uint t = s; // one token per segment: token s (the kernel runs only for such chunks)
        // the row slice first: its loads are in flight while the vectors are made
        uint base4 = ((ck_seg_slot(s) * pc.state_stride + pc.state_off + (h * N + i) * N) >> 2) + q;
        vec4 S[Q4];
        [[unroll]] for (uint u = 0u; u < Q4; u++)
            S[u] = st4[base4 + 4u * u];
        // A: channel i's vectors (made by its four invocations, kept by the first), their sums over
        // the head
        uint c = h * N + i;
        float k = kv[in_at(2u, t, c)], r = rv[in_at(0u, t, c)], vc = vv[in_at(3u, t, c)];
#ifdef LORA
        LORA_LOAD(w2, DW, rw, c, q);
        LORA_LOAD(a2, DA, ra, c, q);
        LORA_LOAD(g2, DG, rg, c, q);
        if (DV != 0u)
            LORA_LOAD(v2, DV, rv2, c, q);
        for (uint e = tid; e < HT; e += WG)
            shid[e] = e < HA ? tw4[t * HA + e] : e < HG ? ta4[t * (DA / 4u) + e - HA]
                    : e < HV ? tg4[t * (DG / 4u) + e - HG] : tv4[t * (DV / 4u) + e - HV];
        barrier();
        float dw, da, dg, dv = 0.0;
        LORA_DOT(DW, rw, 0u, q, dw);
        LORA_DOT(DA, ra, HA, q, da);
        LORA_DOT(DG, rg, HG, q, dg);
        if (DV != 0u)
            LORA_DOT(DV, rv2, HV, q, dv);
        dw = quad_sum(dw);
        da = quad_sum(da);
        dg = quad_sum(dg);
        dv = quad_sum(dv);
        float wc = act_apply(6u, dw + w0[c]), a = act_apply(1u, da + a0[c]), gc = dg;
        if (DV != 0u)
            vc += (vfirst[t * pc.heads * N + c] - vc) * act_apply(1u, dv + v0[c]);
#else
        float wc = wv[in_at(1u, t, c)], a = av[in_at(4u, t, c)], gc = gv[in_at(5u, t, c)];
#endif
        float bonus = wkv7_channel(i, q, k, r, vc, wc, a, gc, k_k[c], k_a[c], r_k[c]);
        // B: the state update of this invocation's keys, and its share of y
        wkv7_update(S, i, q);
        [[unroll]] for (uint u = 0u; u < Q4; u++)
            st4[base4 + 4u * u] = S[u];
        // C: GroupNorm over the head, bonus and gate
        uint co = h * N + min(tid, N - 1u);
        float out_v = wkv7_out(tid, pc.eps, lnw[co], lnb[co], bonus);
        if (tid < N)
            y[out_at(t, co)] = out_v;
        barrier(); // C's reads are done before the next job's A writes
    }
}
