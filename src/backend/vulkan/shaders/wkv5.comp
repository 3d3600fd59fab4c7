#version 450
// WKV5 (v5, v6): a workgroup of N invocations per (segment, head); invocation j owns value column j of
// the head's state S[key i][value j], kept in registers over the segment (cpu_wkv5_head).
//   y[j] = sum_i r[i] (u[i] k[i] v[j] + S[i][j]);  S[i][j] = k[i] v[j] + w[i] S[i][j]
// then GroupNorm over the head * ln_w + ln_b, times the gate when present.
// in0 r, in1 k, in2 v, in3 per-token decay (v6, optional), in4 gate (optional);
// w0 decay vector (v5, when in3 is absent), w1 u, w2 ln_x.weight, w3 ln_x.bias.
#extension GL_GOOGLE_include_directive : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint N = 64; // head size = workgroup size
layout(local_size_x_id = 0) in;
#define WG N

#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) writeonly buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer RBuf { float rv[]; };
layout(std430, binding = 2) readonly buffer KBuf { float kv[]; };
layout(std430, binding = 3) readonly buffer VBuf { float vv[]; };
layout(std430, binding = 4) readonly buffer WBuf { float wv[]; };
layout(std430, binding = 5) readonly buffer GBuf { float gv[]; };
layout(std430, binding = 6) readonly buffer DecayBuf { float decay[]; };
layout(std430, binding = 7) readonly buffer UBuf { float uv[]; };
layout(std430, binding = 8) readonly buffer LnwBuf { float lnw[]; };
layout(std430, binding = 9) readonly buffer LnbBuf { float lnb[]; };
layout(std430, binding = 10) buffer StateBuf { float st[]; };
#define CHUNK_BINDING 11
#include "chunk.glsl"

shared float sr[N], sk[N], sw[N], su[N];
float S[N];

void main()
{
    uint j = gl_LocalInvocationID.x;
    uint jobs = pc.n_seg * pc.heads;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint s = job / pc.heads, h = job % pc.heads, c = h * N + j;
        uint start = ck_seg_start(s), end = start + ck_seg_len(s);
        uint base = ck_seg_slot(s) * pc.state_stride + pc.state_off + h * N * N + j;
        for (uint i = 0u; i < N; i++)
            S[i] = st[base + i * N];
        su[j] = uv[c];
        for (uint t = start; t < end; t++) {
            sr[j] = rv[in_at(0u, t, c)];
            sk[j] = kv[in_at(1u, t, c)];
            sw[j] = has_in(3u) ? wv[in_at(3u, t, c)] : decay[c];
            barrier();
            float vj = vv[in_at(2u, t, c)], acc = 0.0;
            for (uint i = 0u; i < N; i++) {
                float uk = su[i] * sk[i];
                acc += sr[i] * (uk * vj + S[i]);
                S[i] = sk[i] * vj + sw[i] * S[i];
            }
            float o = wg_norm(acc, lnw[c], lnb[c]);
            if (has_in(4u))
                o *= gv[in_at(4u, t, c)];
            y[out_at(t, c)] = o;
        }
        for (uint i = 0u; i < N; i++)
            st[base + i * N] = S[i];
        barrier();
    }
}
