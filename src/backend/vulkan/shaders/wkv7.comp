#version 450
// WKV7: a workgroup of N invocations per (segment, head); invocation i owns value row i of the head's
// state S[value i][key j], kept in registers over the segment (cpu_wkv7_head).
//   kk = L2norm(k * k_k); k' = k * (1 + (a - 1) * k_a)
//   S[i][j] = S[i][j] w[j] - (sum_j' S[i][j'] kk[j']) kk[j] a[j] + v[i] k'[j];  y[i] = sum_j S[i][j] r[j]
//   out = (GroupNorm(y) * ln_w + ln_b + (sum_j r[j] k'[j] r_k[j]) v) * g
// Tokens go in blocks of TB, in three phases, so that the recurrence itself needs no barrier:
//   A (all tokens of the block at once): the per-token vectors (loaded into registers while the block
//     before ran B and C), with their sums over the head four tokens per reduction, into shared memory;
//   B (token after token): the state update and y, from shared memory, four keys per load;
//   C (all at once): GroupNorm, bonus and gate, and the output.
// in0 r, in1 w, in2 k, in3 v, in4 a, in5 g; w0 k_k, w1 k_a, w2 r_k, w3 ln_x.weight, w4 ln_x.bias.
// Needs N % 4 == 0 (vk_backend.c checks). Tried on an H200, both slower at 512 tokens: 2 or 4
// invocations per row, adding their shares by subgroup shuffles (x2: bank conflicts, shuffle latency
// in the chain); all of a block's loads issued before its sums (x1.4).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WGS = 64; // invocations: the head size / RPT
layout(constant_id = 1) const uint TB = 16;  // tokens per block (a multiple of 4)
layout(constant_id = 2) const uint RPT = 1;  // state rows (and channels) per invocation
layout(local_size_x_id = 0) in;
#define WG WGS
const uint N = WGS * RPT; // head size

#include "common.glsl"
#include "reduce.glsl"
WG_SUM_OF(vec4, wg_sum4, red4_sh)
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

const uint N4 = N / 4u;
// per token of the block, read by every invocation in phase B: [t][j / 4]
shared vec4 skk[TB * N4], sab[TB * N4], skb[TB * N4], sw[TB * N4], sr[TB * N4];
// per token and channel (each invocation's own RPT channels): [t][c]
shared float sv[TB * N], sg[TB * N], sy[TB * N];
shared float sbonus[TB]; // sum_j r[j] k'[j] r_k[j] of each token
float S[RPT * N];        // rows i, i + WG, ...: S[k N + j]
// the next block's vectors of this invocation's channels: [k TB + tt]
float pk[RPT * TB], pr[RPT * TB], pa[RPT * TB], pw[RPT * TB], pv[RPT * TB], pg[RPT * TB];

// Loads the vectors of the block from token t0 (past `end`: the last token again, unused).
void prefetch(uint t0, uint end, uint c0)
{
    [[unroll]] for (uint k = 0u; k < RPT; k++) {
        uint c = c0 + k * WG;
        [[unroll]] for (uint tt = 0u; tt < TB; tt++) {
            uint t = min(t0 + tt, end - 1u), e = k * TB + tt;
            pk[e] = kv[in_at(2u, t, c)];
            pr[e] = rv[in_at(0u, t, c)];
            pa[e] = av[in_at(4u, t, c)];
            pw[e] = wv[in_at(1u, t, c)];
            pv[e] = vv[in_at(3u, t, c)];
            pg[e] = gv[in_at(5u, t, c)];
        }
    }
}

#define PUT4(A, T, I, V) A[(T) * N4 + (I) / 4u][(I) % 4u] = (V)

void main()
{
    uint i = gl_LocalInvocationID.x;
    uint jobs = pc.n_seg * pc.heads;
    for (uint job = gl_WorkGroupID.x; job < jobs; job += gl_NumWorkGroups.x) {
        uint s = job / pc.heads, h = job % pc.heads, c0 = h * N + i; // channels c0 + k WG
        uint start = ck_seg_start(s), end = start + ck_seg_len(s);
        uint base = ck_seg_slot(s) * pc.state_stride + pc.state_off + (h * N + i) * N;
        [[unroll]] for (uint k = 0u; k < RPT; k++)
            for (uint j = 0u; j < N; j++)
                S[k * N + j] = st[base + k * WG * N + j];
        float kkw[RPT], kaw[RPT], rkw[RPT], lw[RPT], lb[RPT];
        [[unroll]] for (uint k = 0u; k < RPT; k++) {
            uint c = c0 + k * WG;
            kkw[k] = k_k[c];
            kaw[k] = k_a[c];
            rkw[k] = r_k[c];
            lw[k] = lnw[c];
            lb[k] = lnb[c];
        }
        prefetch(start, end, c0);
        for (uint t0 = start; t0 < end; t0 += TB) {
            uint nb = min(TB, end - t0); // tokens in this block (uniform)
            // A: the block's vectors (prefetched), four tokens per reduction over the head
            [[unroll]] for (uint q = 0u; q < TB / 4u; q++) {
                if (4u * q >= nb) // uniform
                    break;
                vec4 kk[RPT], a[RPT], ss = vec4(0.0), bo = vec4(0.0);
                [[unroll]] for (uint k = 0u; k < RPT; k++) {
                    uint ch = i + k * WG;
                    [[unroll]] for (uint u = 0u; u < 4u; u++) {
                        uint tt = 4u * q + u, e = k * TB + tt;
                        float kv_ = pk[e], r = pr[e];
                        a[k][u] = pa[e];
                        kk[k][u] = kv_ * kkw[k];
                        float kb = kv_ * (1.0 + (a[k][u] - 1.0) * kaw[k]);
                        PUT4(skb, tt, ch, kb);
                        PUT4(sw, tt, ch, pw[e]);
                        PUT4(sr, tt, ch, r);
                        sv[tt * N + ch] = pv[e];
                        sg[tt * N + ch] = pg[e];
                        bo[u] += r * kb * rkw[k];
                    }
                    ss += kk[k] * kk[k];
                }
                vec4 inv = 1.0 / max(sqrt(wg_sum4(ss)), vec4(1e-12));
                bo = wg_sum4(bo);
                [[unroll]] for (uint k = 0u; k < RPT; k++) {
                    uint ch = i + k * WG;
                    kk[k] *= inv;
                    [[unroll]] for (uint u = 0u; u < 4u; u++) {
                        PUT4(skk, 4u * q + u, ch, kk[k][u]);
                        PUT4(sab, 4u * q + u, ch, kk[k][u] * a[k][u]);
                    }
                }
                if (i == 0u)
                    [[unroll]] for (uint u = 0u; u < 4u; u++)
                        sbonus[4u * q + u] = bo[u];
            }
            barrier();
            if (t0 + TB < end) // the next block's loads fly during B and C
                prefetch(t0 + TB, end, c0);
            // B: the recurrence of this invocation's rows; each shared load serves all of them, and
            // both sums go in four interleaved parts, for four times shorter chains
            for (uint tt = 0u; tt < nb; tt++) {
                uint b = tt * N4;
                vec4 sa4[RPT];
                [[unroll]] for (uint k = 0u; k < RPT; k++)
                    sa4[k] = vec4(0.0);
                [[unroll]] for (uint j = 0u; j < N; j += 4u) {
                    vec4 kk4 = skk[b + j / 4u];
                    [[unroll]] for (uint k = 0u; k < RPT; k++)
                        sa4[k] -= vec4(S[k * N + j], S[k * N + j + 1u], S[k * N + j + 2u], S[k * N + j + 3u]) * kk4;
                }
                float sa[RPT], vi[RPT];
                vec4 acc4[RPT];
                [[unroll]] for (uint k = 0u; k < RPT; k++) {
                    sa[k] = (sa4[k].x + sa4[k].y) + (sa4[k].z + sa4[k].w);
                    vi[k] = sv[tt * N + i + k * WG];
                    acc4[k] = vec4(0.0);
                }
                [[unroll]] for (uint j = 0u; j < N; j += 4u) {
                    vec4 w = sw[b + j / 4u], ab = sab[b + j / 4u], kb = skb[b + j / 4u], r = sr[b + j / 4u];
                    [[unroll]] for (uint k = 0u; k < RPT; k++) {
                        uint o = k * N + j;
                        vec4 s4 = vec4(S[o], S[o + 1u], S[o + 2u], S[o + 3u]) * w + sa[k] * ab + vi[k] * kb;
                        S[o] = s4.x;
                        S[o + 1u] = s4.y;
                        S[o + 2u] = s4.z;
                        S[o + 3u] = s4.w;
                        acc4[k] += s4 * r;
                    }
                }
                [[unroll]] for (uint k = 0u; k < RPT; k++)
                    sy[tt * N + i + k * WG] = (acc4[k].x + acc4[k].y) + (acc4[k].z + acc4[k].w);
            }
            // C: GroupNorm over the head, bonus and gate, four tokens per reduction (each invocation
            // writes what it read: no barrier before)
            for (uint q = 0u; 4u * q < nb; q++) {
                vec4 yv[RPT], sum = vec4(0.0), bo;
                [[unroll]] for (uint u = 0u; u < 4u; u++)
                    bo[u] = sbonus[4u * q + u];
                [[unroll]] for (uint k = 0u; k < RPT; k++) {
                    [[unroll]] for (uint u = 0u; u < 4u; u++)
                        yv[k][u] = sy[(4u * q + u) * N + i + k * WG];
                    sum += yv[k];
                }
                vec4 mean = wg_sum4(sum) / float(N), var = vec4(0.0);
                [[unroll]] for (uint k = 0u; k < RPT; k++)
                    var += (yv[k] - mean) * (yv[k] - mean);
                vec4 inv = 1.0 / sqrt(wg_sum4(var) / float(N) + pc.eps);
                [[unroll]] for (uint k = 0u; k < RPT; k++) {
                    uint ch = i + k * WG;
                    vec4 vq, gq;
                    [[unroll]] for (uint u = 0u; u < 4u; u++) {
                        vq[u] = sv[(4u * q + u) * N + ch];
                        gq[u] = sg[(4u * q + u) * N + ch];
                    }
                    vec4 o = ((yv[k] - mean) * inv * lw[k] + lb[k] + bo * vq) * gq;
                    [[unroll]] for (uint u = 0u; u < 4u; u++)
                        if (4u * q + u < nb)
                            y[out_at(t0 + 4u * q + u, h * N + ch)] = o[u];
                }
            }
            barrier(); // C's reads are done before the next block's A writes
        }
        [[unroll]] for (uint k = 0u; k < RPT; k++)
            for (uint j = 0u; j < N; j++)
                st[base + k * WG * N + j] = S[k * N + j];
        barrier();
    }
}
