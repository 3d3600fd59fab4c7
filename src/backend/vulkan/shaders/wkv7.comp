#version 450
// WKV7: a workgroup of N invocations per (segment, head); invocation i owns value row i of the head's
// state S[value i][key j], kept in registers over the segment (cpu_wkv7_head).
//   kk = L2norm(k * k_k); k' = k * (1 + (a - 1) * k_a)
//   S[i][j] = S[i][j] w[j] - (sum_j' S[i][j'] kk[j']) kk[j] a[j] + v[i] k'[j];  y[i] = sum_j S[i][j] r[j]
//   out = (GroupNorm(y) * ln_w + ln_b + (sum_j r[j] k'[j] r_k[j]) v) * g
// in0 r, in1 w, in2 k, in3 v, in4 a, in5 g; w0 k_k, w1 k_a, w2 r_k, w3 ln_x.weight, w4 ln_x.bias.
#extension GL_GOOGLE_include_directive : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint N = 64; // head size = workgroup size
layout(local_size_x_id = 0) in;
#define WG N

#include "common.glsl"
#include "reduce.glsl"
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
layout(std430, binding = 12) buffer StateBuf { float st[]; };
#define CHUNK_BINDING 13
#include "chunk.glsl"

shared float skk[N], sab[N], skb[N], sw[N], sr[N];
float S[N];

void main()
{
    uint i = gl_LocalInvocationID.x;
    uint jobs = pc.n_seg * pc.heads;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint s = job / pc.heads, h = job % pc.heads, c = h * N + i;
        uint start = ck_seg_start(s), end = start + ck_seg_len(s);
        uint base = ck_seg_slot(s) * pc.state_stride + pc.state_off + (h * N + i) * N;
        for (uint j = 0u; j < N; j++)
            S[j] = st[base + j];
        for (uint t = start; t < end; t++) {
            // invocation i prepares key channel i of this token
            float k = kv[in_at(2u, t, c)], a = av[in_at(4u, t, c)], r = rv[in_at(0u, t, c)];
            float kk = k * k_k[c];
            kk *= 1.0 / max(sqrt(wg_sum(kk * kk)), 1e-12);
            float kb = k * (1.0 + (a - 1.0) * k_a[c]);
            float bonus = wg_sum(r * kb * r_k[c]);
            skk[i] = kk;
            sab[i] = kk * a;
            skb[i] = kb;
            sw[i] = wv[in_at(1u, t, c)];
            sr[i] = r;
            barrier();
            float sa = 0.0;
            for (uint j = 0u; j < N; j++)
                sa -= S[j] * skk[j];
            float vi = vv[in_at(3u, t, c)], acc = 0.0;
            for (uint j = 0u; j < N; j++) {
                S[j] = S[j] * sw[j] + sa * sab[j] + vi * skb[j];
                acc += S[j] * sr[j];
            }
            float o = wg_norm(acc, lnw[c], lnb[c]);
            y[out_at(t, c)] = (o + bonus * vi) * gv[in_at(5u, t, c)];
        }
        for (uint j = 0u; j < N; j++)
            st[base + j] = S[j];
        barrier();
    }
}
