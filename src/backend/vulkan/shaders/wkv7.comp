#version 450
// WKV7 over each (segment, head) of the chunk (cpu_wkv7_head), with the state S[value i][key j]:
//   kk = L2norm(k * k_k); k' = k * (1 + (a - 1) * k_a)
//   S[i][j] = S[i][j] w[j] - (sum_j' S[i][j'] kk[j']) kk[j] a[j] + v[i] k'[j];  y[i] = sum_j S[i][j] r[j]
//   out = (GroupNorm(y) * ln_w + ln_b + (sum_j r[j] k'[j] r_k[j]) v) * g
// MODE 0: a workgroup of N invocations per (segment, head); invocation i owns value row i of the
// head's state, kept in registers over the segment. Tokens go in blocks of TB, in three phases, so that
// the recurrence itself needs no barrier:
//   A (all tokens of the block at once): the per-token vectors (loaded into registers while the block
//     before ran B and C), with their sums over the head four tokens per reduction, into shared memory;
//   B (token after token): the state update and y, from shared memory, four keys per load;
//   C (all at once): GroupNorm, bonus and gate, and the output.
// With ROWS (the wkv7_rows variant, for long segments on few heads: more workgroups, shorter chains),
// MODE 1 then MODE 2 do the same in two dispatches:
//   1: P workgroups per (segment, head), each R = N / P rows of the state. Each redoes A for all N
//      channels (invocation i: channel i); in B, invocation i takes row i / P, and of it the vec4
//      blocks p, p + P, p + 2P, ... (p = i % P: the P addresses a subgroup reads at once fall in
//      different banks); the row's sums are finished by shuffles in its P adjacent lanes. Out: raw y.
//   2: C, reading the raw y from out and writing the result in its place: a workgroup of N per (four
//      tokens, head), the bonus recomputed from r, k, a (a subgroup per (token, head), sums without
//      barriers, was 2.3x slower on an H200).
// in0 r, in1 w, in2 k, in3 v, in4 a, in5 g; w0 k_k, w1 k_a, w2 r_k, w3 ln_x.weight, w4 ln_x.bias.
// Needs N % 4 == 0; MODE 1 a power of two P dividing N / 4 and the subgroup size, and an out that
// aliases no input (vk_backend.c checks). Tried on an H200 in MODE 0, both slower at 512 tokens: 2 or
// 4 invocations per row, adding their shares by subgroup shuffles (x2: bank conflicts, shuffle latency
// in the chain); all of a block's loads issued before its sums (x1.4).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "subgroup.glsl"
#ifdef ROWS
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

layout(constant_id = 0) const uint N = 64;  // head size = workgroup size
layout(constant_id = 1) const uint TB = 16; // tokens per block (a multiple of 4)
layout(constant_id = 2) const uint MODE = 0; // 0 whole heads; with ROWS, 1 rows (raw y), 2 norm
layout(constant_id = 3) const uint P = 4;    // MODE 1: invocations per state row
layout(local_size_x_id = 0) in;
#define WG N

#include "common.glsl"
#include "reduce.glsl"
WG_SUM_OF(vec4, wg_sum4, red4_sh)
#ifdef ROWS
layout(std430, binding = 0) buffer OutBuf { float y[]; }; // MODE 2 reads the raw y
#else
layout(std430, binding = 0) writeonly buffer OutBuf { float y[]; };
#endif
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

const uint N4 = N / 4u;
// per token of the block, read by every invocation in phase B: [t][j / 4]
shared vec4 skk[TB * N4], sab[TB * N4], skb[TB * N4], sw[TB * N4], sr[TB * N4];
// per token, each invocation's own channel: [t][i]
shared float sv[TB * N], sg[TB * N], sy[TB * N];
shared float sbonus[TB]; // sum_j r[j] k'[j] r_k[j] of each token
float S[N];
float pk[TB], pr[TB], pa[TB], pw[TB], pv[TB], pg[TB]; // the next block's vectors, channel c

// Loads the vectors of the block from token t0 (past `end`: the last token again, unused).
void prefetch(uint t0, uint end, uint c)
{
    [[unroll]] for (uint tt = 0u; tt < TB; tt++) {
        uint t = min(t0 + tt, end - 1u);
        pk[tt] = kv[in_at(2u, t, c)];
        pr[tt] = rv[in_at(0u, t, c)];
        pa[tt] = av[in_at(4u, t, c)];
        pw[tt] = wv[in_at(1u, t, c)];
        pv[tt] = vv[in_at(3u, t, c)];
        if (MODE == 0u) // MODE 1 leaves the gate to MODE 2
            pg[tt] = gv[in_at(5u, t, c)];
    }
}

#define PUT4(A, T, I, V) A[(T) * N4 + (I) / 4u][(I) % 4u] = (V)

float k_bonus(float k, float a, float kaw) { return k * (1.0 + (a - 1.0) * kaw); } // k'

// A: the vectors of the block's nb tokens (prefetched), channel i of each (MODE 1: no gate, no bonus).
void phase_a(uint nb, uint i, float kkw, float kaw, float rkw)
{
    [[unroll]] for (uint q = 0u; q < TB / 4u; q++) {
        if (4u * q >= nb) // uniform
            break;
        vec4 kk, a, bo;
        [[unroll]] for (uint u = 0u; u < 4u; u++) {
            uint tt = 4u * q + u;
            float k = pk[tt], r = pr[tt];
            a[u] = pa[tt];
            kk[u] = k * kkw;
            float kb = k_bonus(k, a[u], kaw);
            PUT4(skb, tt, i, kb);
            PUT4(sw, tt, i, pw[tt]);
            PUT4(sr, tt, i, r);
            sv[tt * N + i] = pv[tt];
            if (MODE == 0u)
                sg[tt * N + i] = pg[tt];
            bo[u] = r * kb * rkw;
        }
        kk *= 1.0 / max(sqrt(wg_sum4(kk * kk)), vec4(1e-12));
        if (MODE == 0u)
            bo = wg_sum4(bo);
        [[unroll]] for (uint u = 0u; u < 4u; u++) {
            PUT4(skk, 4u * q + u, i, kk[u]);
            PUT4(sab, 4u * q + u, i, kk[u] * a[u]);
            if (MODE == 0u && i == 0u)
                sbonus[4u * q + u] = bo[u];
        }
    }
}

// C of four tokens: GroupNorm over the head of the raw y, bonus and gate (one reduction for the four).
vec4 norm4(vec4 yv, vec4 vq, vec4 gq, vec4 bo, float lw, float lb)
{
    vec4 mean = wg_sum4(yv) / float(N), d = yv - mean;
    vec4 inv = 1.0 / sqrt(wg_sum4(d * d) / float(N) + pc.eps);
    return (d * inv * lw + lb + bo * vq) * gq;
}

void main_heads()
{
    uint i = gl_LocalInvocationID.x;
    uint jobs = pc.n_seg * pc.heads;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint s = job / pc.heads, h = job % pc.heads, c = h * N + i;
        uint start = ck_seg_start(s), end = start + ck_seg_len(s);
        uint base = ck_seg_slot(s) * pc.state_stride + pc.state_off + (h * N + i) * N;
        for (uint j = 0u; j < N; j++)
            S[j] = st[base + j];
        float kkw = k_k[c], kaw = k_a[c], rkw = r_k[c], lw = lnw[c], lb = lnb[c];
        prefetch(start, end, c);
        for (uint t0 = start; t0 < end; t0 += TB) {
            uint nb = min(TB, end - t0); // tokens in this block (uniform)
            phase_a(nb, i, kkw, kaw, rkw);
            barrier();
            if (t0 + TB < end) // the next block's loads fly during B and C
                prefetch(t0 + TB, end, c);
            // B: the recurrence; both sums in four interleaved parts, for four times shorter chains
            for (uint tt = 0u; tt < nb; tt++) {
                uint b = tt * N4;
                vec4 sa4 = vec4(0.0);
                [[unroll]] for (uint j = 0u; j < N; j += 4u)
                    sa4 -= vec4(S[j], S[j + 1u], S[j + 2u], S[j + 3u]) * skk[b + j / 4u];
                float sa = (sa4.x + sa4.y) + (sa4.z + sa4.w), vi = sv[tt * N + i];
                vec4 acc4 = vec4(0.0);
                [[unroll]] for (uint j = 0u; j < N; j += 4u) {
                    vec4 w = sw[b + j / 4u], ab = sab[b + j / 4u], kb = skb[b + j / 4u], r = sr[b + j / 4u];
                    vec4 s4 = vec4(S[j], S[j + 1u], S[j + 2u], S[j + 3u]) * w + sa * ab + vi * kb;
                    S[j] = s4.x;
                    S[j + 1u] = s4.y;
                    S[j + 2u] = s4.z;
                    S[j + 3u] = s4.w;
                    acc4 += s4 * r;
                }
                sy[tt * N + i] = (acc4.x + acc4.y) + (acc4.z + acc4.w);
            }
            // C: four tokens per reduction
            for (uint q = 0u; 4u * q < nb; q++) {
                vec4 yv, vq, gq, bo;
                [[unroll]] for (uint u = 0u; u < 4u; u++) {
                    uint tt = 4u * q + u;
                    yv[u] = sy[tt * N + i];
                    vq[u] = sv[tt * N + i];
                    gq[u] = sg[tt * N + i];
                    bo[u] = sbonus[tt];
                }
                vec4 o = norm4(yv, vq, gq, bo, lw, lb);
                [[unroll]] for (uint u = 0u; u < 4u; u++)
                    if (4u * q + u < nb)
                        y[out_at(t0 + 4u * q + u, c)] = o[u];
            }
            barrier(); // C's reads are done before the next block's A writes
        }
        for (uint j = 0u; j < N; j++)
            st[base + j] = S[j];
        barrier();
    }
}

#ifdef ROWS
const uint R = N / P, NB = N4 / P; // rows per workgroup, vec4 blocks of a row per invocation
vec4 S4[NB]; // blocks p, p + P, ... of the invocation's row

// The sum of v over the P lanes of a row (adjacent, in one subgroup); every lane gets the same.
float row_sum(float v)
{
    [[unroll]] for (uint m = 1u; m < P; m <<= 1)
        v += subgroupShuffleXor(v, m);
    return v;
}

void main_rows()
{
    uint i = gl_LocalInvocationID.x, p = i % P;
    uint jobs = pc.n_seg * pc.heads * P;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint s = job / (pc.heads * P), h = job / P % pc.heads, c = h * N + i, row = job % P * R + i / P;
        uint start = ck_seg_start(s), end = start + ck_seg_len(s);
        uint base = ck_seg_slot(s) * pc.state_stride + pc.state_off + (h * N + row) * N + 4u * p;
        [[unroll]] for (uint m = 0u; m < NB; m++) {
            uint j = base + 4u * P * m;
            S4[m] = vec4(st[j], st[j + 1u], st[j + 2u], st[j + 3u]);
        }
        float kkw = k_k[c], kaw = k_a[c], rkw = r_k[c];
        prefetch(start, end, c);
        for (uint t0 = start; t0 < end; t0 += TB) {
            uint nb = min(TB, end - t0); // tokens in this block (uniform)
            phase_a(nb, i, kkw, kaw, rkw);
            barrier();
            if (t0 + TB < end) // the next block's loads fly during B
                prefetch(t0 + TB, end, c);
            // B: the recurrence on the invocation's share of its row
            for (uint tt = 0u; tt < nb; tt++) {
                uint b = tt * N4 + p;
                vec4 sa4 = vec4(0.0);
                [[unroll]] for (uint m = 0u; m < NB; m++)
                    sa4 -= S4[m] * skk[b + P * m];
                float sa = row_sum((sa4.x + sa4.y) + (sa4.z + sa4.w)), vi = sv[tt * N + row];
                vec4 acc4 = vec4(0.0);
                [[unroll]] for (uint m = 0u; m < NB; m++) {
                    uint q = b + P * m;
                    S4[m] = S4[m] * sw[q] + sa * sab[q] + vi * skb[q];
                    acc4 += S4[m] * sr[q];
                }
                float yr = row_sum((acc4.x + acc4.y) + (acc4.z + acc4.w));
                if (p == 0u)
                    y[out_at(t0 + tt, h * N + row)] = yr;
            }
            barrier(); // B's reads are done before the next block's A writes
        }
        [[unroll]] for (uint m = 0u; m < NB; m++) {
            uint j = base + 4u * P * m;
            st[j] = S4[m].x;
            st[j + 1u] = S4[m].y;
            st[j + 2u] = S4[m].z;
            st[j + 3u] = S4[m].w;
        }
    }
}

// MODE 2: invocation i on channel i of four tokens (past the chunk: the last token again, unwritten).
void main_norm()
{
    uint i = gl_LocalInvocationID.x;
    uint jobs = (pc.rows + 3u) / 4u * pc.heads;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint t0 = job / pc.heads * 4u, c = job % pc.heads * N + i;
        float kaw = k_a[c], rkw = r_k[c];
        vec4 yv, vq, gq, bo;
        [[unroll]] for (uint u = 0u; u < 4u; u++) {
            uint t = min(t0 + u, pc.rows - 1u);
            yv[u] = y[out_at(t, c)];
            vq[u] = vv[in_at(3u, t, c)];
            gq[u] = gv[in_at(5u, t, c)];
            bo[u] = rv[in_at(0u, t, c)] * k_bonus(kv[in_at(2u, t, c)], av[in_at(4u, t, c)], kaw) * rkw;
        }
        vec4 o = norm4(yv, vq, gq, wg_sum4(bo), lnw[c], lnb[c]);
        [[unroll]] for (uint u = 0u; u < 4u; u++)
            if (t0 + u < pc.rows)
                y[out_at(t0 + u, c)] = o[u];
    }
}
#endif

void main()
{
#ifdef ROWS
    if (MODE == 1u)
        main_rows();
    else if (MODE == 2u)
        main_norm();
    else
#endif
        main_heads();
}
