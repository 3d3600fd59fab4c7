#version 450
// One generation step of an RWKV-7 model for one sequence (a chunk of one token) in one dispatch
// (RWKV_VK_PERSISTENT; off by default: on an H200 it is 10-20 % slower than the per-op dispatches,
// PERF.md). G workgroups, at most one per multiprocessor, run the whole layer program phase after
// phase and wait for each other at grid barriers (a counter in memory) where the per-op kernels end
// one dispatch and start the next. A layer has five phases (the per-op path: five to seven stages):
//   A  layer norm 1 (each workgroup for itself), the six mixes with the previous token, and the
//      projections r, k, v and the LoRA down-projections (w1 then tanh, a1, g1 then sigmoid, v1)
//   W  per head: the LoRA up-projections, WKV7, GroupNorm, bonus and gate (wkv7_one.comp's math);
//      the attention shift state gets layer norm 1's output
//   O  x += W_o y
//   K  layer norm 2, the FFN mix, k = relu(W_key xk)^2
//   V  x += W_value k (in slices of K that fit shared memory, added in order); the FFN shift state
// then the head (layer norm out, the logits) when the chunk asks for its row. Workgroups take
// contiguous ranges of each phase's matrix rows, so that each stages few input vectors in shared
// memory; a subgroup reduces a row (16-byte F16 loads, two rows at a time). Measured on an H200
// (RWKV_VK_PROFILE=2 times the phases of workgroup 0): a grid barrier costs about 2 us of waiting, and
// each phase's prologue and its one workgroup of 8 warps per multiprocessor (255 registers) stream
// weights more slowly than the thousands of workgroups of the per-op GEMVs.
//
// Vulkan does not promise that the workgroups of a dispatch run at once. The host uses this kernel
// only with at most as many workgroups as the device has multiprocessors (NVIDIA tells their count),
// and a barrier that waits too long sets an abort word that every workgroup then obeys: the host
// reports that as an error instead of hanging.
//
// Memory: binding 0 is every block of the model's pool (F16 matrices, F32 vectors), binding 1 every
// block of the state's pool (state, scratch vectors, logits), both addressed through the table at
// binding 2 (vk_token.c writes it: header, global references, per-layer references; a reference is
// a block and an offset, in 16-byte units for matrices, floats for the rest). Everything one
// workgroup writes and another reads is in binding 1, coherent, ordered by the grid barriers.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_shuffle : require
#ifdef PROF
#extension GL_EXT_shader_realtime_clock : require
#endif
#define USE_SUBGROUP
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 256; // 4 invocations per state row of a 64-wide head
layout(constant_id = 1) const uint C = 768;  // channels
layout(constant_id = 2) const uint DW = 64;  // LoRA hidden sizes (multiples of 8)
layout(constant_id = 3) const uint DA = 64;
layout(constant_id = 4) const uint DG = 128;
layout(constant_id = 5) const uint DV = 32;  // of the layers that have a v LoRA (not layer 0)
layout(constant_id = 6) const uint F = 3072; // FFN width
layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "reduce.glsl"
WG_SUM_OF(vec2, wg_sum2, red2_sh)

#ifndef MB
#define MB 24 // model blocks (vk_internal.h: VK_TOKEN_MODEL_BLOCKS; token7_big: VK_TOKEN_MODEL_BLOCKS_BIG)
#endif
#define AB 4  // state pool blocks (VK_TOKEN_ACT_BLOCKS)
layout(std430, binding = 0) readonly buffer MdlQ { uvec4 q[]; } mq[MB];
layout(std430, binding = 0) readonly buffer MdlU { uint u[]; } mu[MB];
layout(std430, binding = 0) readonly buffer MdlF { float f[]; } mf[MB];
layout(std430, binding = 1) coherent buffer ActF { float f[]; } af[AB];
layout(std430, binding = 1) coherent buffer ActV { vec4 v[]; } av[AB];
layout(std430, binding = 2) readonly buffer TabBuf { uint tab[]; };
#define CHUNK_BINDING 3
#include "chunk.glsl"
// the barrier's counter and abort word; with PROF (RWKV_VK_PROFILE), workgroup 0's time in each kind
// of phase (A W O K V head) working and waiting at the barrier after it, ns
layout(std430, binding = 4) coherent buffer SyncBuf { uint sync_count; uint sync_abort; uint prof[12]; };
#ifdef PROF
uint t_mark;
void mark(uint slot)
{
    if (gl_WorkGroupID.x == 0u && gl_LocalInvocationID.x == 0u) {
        uint t = clockRealtime2x32EXT().x;
        prof[slot] += t - t_mark;
        t_mark = t;
    }
}
#else
void mark(uint slot) {}
#endif

// The table (keep in sync with vk_token.c): header words, then NG global references, then per layer
// LW words (36 references, the three state ranges' floats per slot, whether the v LoRA is there).
const uint H_LAYERS = 0u, H_VOCAB = 1u, H_LN_EPS = 2u, H_GN_EPS = 3u, HEADER = 8u;
const uint T_EMB = 0u, T_LN0W = 1u, T_LN0B = 2u, T_LNOW = 3u, T_LNOB = 4u, T_HEAD = 5u, T_X = 6u, T_XXA = 7u,
           T_XXF = 8u, T_R = 9u, T_K = 10u, T_V = 11u, T_HID = 12u, T_Y = 13u, T_KF = 14u, T_VF = 15u,
           T_LOGITS = 16u, NG = 17u;
const uint L_LN1W = 0u, L_LN1B = 1u, L_MIX = 2u, L_WR = 8u, L_WK = 9u, L_WV = 10u, L_W1 = 11u, L_A1 = 12u,
           L_G1 = 13u, L_V1 = 14u, L_W2 = 15u, L_A2 = 16u, L_G2 = 17u, L_V2 = 18u, L_W0 = 19u, L_A0 = 20u,
           L_V0 = 21u, L_KK = 22u, L_KA = 23u, L_RK = 24u, L_LNXW = 25u, L_LNXB = 26u, L_WO = 27u, L_LN2W = 28u,
           L_LN2B = 29u, L_FXK = 30u, L_FKEY = 31u, L_FVAL = 32u, L_SATT = 33u, L_SWKV = 34u, L_SFFN = 35u,
           L_REFS = 36u, L_STRIDE = 72u, L_HAS_V = 75u, LW = 76u;
const uint SPIN_LIMIT = 1u << 24; // polls of a grid barrier before it gives up (seconds on a GPU)

const uint N = 64u;                           // head size
const uint EPT = (C + WG - 1u) / WG;          // channels per invocation in the layer norms
const uint CF = C > F ? C : F;
const uint KC = CF < 8192u ? CF : 8192u;        // input floats staged in shared memory at a time
shared vec4 xs4[KC / 4u];
shared uint s_ok;

uint tid, wg, G, sg, lane, NSG, SGS, slot;

uint gref(uint i) { return HEADER + 2u * i; }
uint lref(uint l, uint i) { return HEADER + 2u * NG + l * LW + 2u * i; }
float mvec(uint ref, uint i) { return mf[tab[ref]].f[tab[ref + 1u] + i]; }
float aget(uint ref, uint i) { return af[tab[ref]].f[tab[ref + 1u] + i]; }
void aset(uint ref, uint i, float v) { af[tab[ref]].f[tab[ref + 1u] + i] = v; }
// float i of this slot's state range `which` (L_SATT, L_SWKV, L_SFFN) of layer l
uint state_at(uint l, uint which, uint i)
{
    return tab[lref(l, which) + 1u] + slot * tab[lref(l, 0u) + L_STRIDE + (which - L_SATT)] + i;
}

// All workgroups wait here until each has arrived; false when the wait gave up (the dispatch ends).
bool grid_sync(inout uint epoch, uint kind)
{
    epoch += 1u;
    // every invocation's writes made visible device-wide before the workgroup arrives
    memoryBarrierBuffer();
    barrier();
    mark(2u * kind);
    if (tid == 0u) {
        uint ok = 1u, target = epoch * G, spins = 0u;
        atomicAdd(sync_count, 1u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelease);
        // polled with atomic loads (with volatile loads every barrier gave up on an H200); a driver
        // may end a long loop by a cap on its iterations, hence the check after it
        for (;;) {
            if (atomicLoad(sync_count, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquire) >= target)
                break;
            spins++;
            if ((spins & 1023u) == 0u &&
                (spins >= SPIN_LIMIT ||
                 atomicLoad(sync_abort, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed) != 0u))
                break;
        }
        if (atomicLoad(sync_count, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquire) < target) {
            atomicExchange(sync_abort, 1u);
            ok = 0u;
        }
        memoryBarrierBuffer(); // acquire: the others' writes before their arrival
        s_ok = ok;
    }
    barrier();
    memoryBarrierBuffer();
    mark(2u * kind + 1u);
    return s_ok != 0u;
}

// ---- layer norms: C values spread as channel tid + WG e of each invocation ----

void load_x(out float v[EPT])
{
    [[unroll]] for (uint e = 0u; e < EPT; e++) {
        uint c = tid + WG * e;
        v[e] = c < C ? aget(gref(T_X), c) : 0.0;
    }
}

// as cpu_layernorm_row: two passes (mean, then the squares around it)
void layer_norm(inout float v[EPT], uint wref, uint bref)
{
    float s = 0.0;
    [[unroll]] for (uint e = 0u; e < EPT; e++)
        s += v[e];
    float mean = wg_sum2(vec2(s, 0.0)).x / float(C), q = 0.0;
    [[unroll]] for (uint e = 0u; e < EPT; e++) {
        float d = tid + WG * e < C ? v[e] - mean : 0.0;
        q += d * d;
    }
    float inv = 1.0 / sqrt(wg_sum2(vec2(q, 0.0)).x / float(C) + uintBitsToFloat(tab[H_LN_EPS]));
    [[unroll]] for (uint e = 0u; e < EPT; e++) {
        uint c = tid + WG * e;
        if (c < C)
            v[e] = (v[e] - mean) * inv * mvec(wref, c) + mvec(bref, c);
    }
}

void put_xs(uint c, float v) { xs4[c >> 2][c & 3u] = v; }

// ---- matrix rows against the staged input ----

float dot8(uvec4 q, uint u)
{
    return dot(vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y)), xs4[2u * u]) +
           dot(vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w)), xs4[2u * u + 1u]);
}

void row_out(uint oref, uint off, uint row, uint act, bool acc, float s)
{
    uint i = off + row;
    aset(oref, i, acc ? aget(oref, i) + s : act_apply(act, s));
}

// Rows [rb, re) of the F16 matrix at reference word mref (rows of K8row 16-byte blocks), columns
// 8 col8 .. 8 (col8 + K8) against xs4: out[off + row] = act(dot), or += dot with acc. A subgroup takes
// RPI rows at a time (rows rb + sg + NSG (RPI g + j)), each lane UNR blocks of each per round; the
// next round's loads are issued before this round's sums, so that two rounds are in flight. The
// first round may be loaded ahead (gemv_first, before a grid barrier or the input's staging).
const uint RPI = 2u, UNR = 4u, NQ = RPI * UNR;
uvec4 q_cur[NQ], q_nxt[NQ];

struct gemv_job {
    uint mb, mo, K8row, col8, K8, rb, re;
};

gemv_job gemv_job_of(uint mref, uint K8row, uint col8, uint K8, uint rb, uint re)
{
    return gemv_job(tab[mref], tab[mref + 1u], K8row, col8, K8, rb, re);
}

uint gemv_rounds(gemv_job j, out uint rpr)
{
    rpr = (j.K8 + UNR * SGS - 1u) / (UNR * SGS);
    uint n = j.re > j.rb + sg ? (j.re - j.rb - sg + NSG * RPI - 1u) / (NSG * RPI) : 0u;
    return n * rpr;
}

// round r's blocks into q (rows past the end and blocks past K repeat the last valid ones)
void gemv_load(gemv_job j, uint r, uint rpr, inout uvec4 q[NQ])
{
    uint g = r / rpr, u0 = (r % rpr) * UNR * SGS;
    [[unroll]] for (uint i = 0u; i < RPI; i++) {
        uint row = min(j.rb + sg + NSG * (RPI * g + i), j.re - 1u);
        uint base = j.mo + row * j.K8row + j.col8;
        [[unroll]] for (uint k = 0u; k < UNR; k++)
            q[i * UNR + k] = mq[j.mb].q[base + min(u0 + lane + k * SGS, j.K8 - 1u)];
    }
}

void gemv_first(gemv_job j)
{
    uint rpr;
    if (gemv_rounds(j, rpr) > 0u)
        gemv_load(j, 0u, rpr, q_cur);
}

void gemv_run(gemv_job j, bool loaded, uint oref, uint off, uint act, bool acc)
{
    uint rpr, n = gemv_rounds(j, rpr);
    if (n == 0u)
        return;
    if (!loaded)
        gemv_load(j, 0u, rpr, q_cur);
    float s[RPI];
    [[unroll]] for (uint i = 0u; i < RPI; i++)
        s[i] = 0.0;
    for (uint r = 0u; r < n; r++) {
        if (r + 1u < n)
            gemv_load(j, r + 1u, rpr, q_nxt);
        uint g = r / rpr, u0 = (r % rpr) * UNR * SGS;
        [[unroll]] for (uint k = 0u; k < UNR; k++) {
            uint u = u0 + lane + k * SGS;
            if (u < j.K8)
                [[unroll]] for (uint i = 0u; i < RPI; i++)
                    s[i] += dot8(q_cur[i * UNR + k], u);
        }
        if (r % rpr == rpr - 1u) {
            [[unroll]] for (uint i = 0u; i < RPI; i++) {
                float t = subgroupAdd(s[i]);
                uint row = j.rb + sg + NSG * (RPI * g + i);
                if (subgroupElect() && row < j.re)
                    row_out(oref, off, row, act, acc, t);
                s[i] = 0.0;
            }
        }
        q_cur = q_nxt;
    }
}

// This workgroup's share [r0, r1) of n rows.
void my_rows(uint n, out uint r0, out uint r1)
{
    r0 = n * wg / G; // n * G < 2^32 (vk_token.c)
    r1 = n * (wg + 1u) / G;
}

// ---- A: layer norm 1, mixes, r k v and the LoRA down-projections ----

// matrix j of phase A (r k v w1 a1 g1 v1): its rows, mix (of x_r x_w x_k x_v x_a x_g), output, activation
uint a_rows(uint j, bool has_v) { return j < 3u ? C : j == 3u ? DW : j == 4u ? DA : j == 5u ? DG : has_v ? DV : 0u; }
uint a_mix(uint j) { return j == 0u ? 0u : j == 1u ? 2u : j == 2u ? 3u : j == 3u ? 1u : j == 4u ? 4u : j == 5u ? 5u : 3u; }
uint a_out(uint j) { return j == 0u ? T_R : j == 1u ? T_K : j == 2u ? T_V : T_HID; }
uint a_off(uint j) { return j < 4u ? 0u : j == 4u ? DW : j == 5u ? DW + DA : DW + DA + DG; }
uint a_act(uint j) { return j == 3u ? 2u : j == 5u ? 1u : 0u; } // tanh, sigmoid (enum rwkv_act)
bool a_has_v(uint l) { return tab[lref(l, 0u) + L_HAS_V] != 0u; }

// this workgroup's part of phase A's rows (all matrices one after another): of matrix j, [b, e)
void a_part(uint l, uint j, out uint b, out uint e)
{
    bool has_v = a_has_v(l);
    uint n = 3u * C + DW + DA + DG + (has_v ? DV : 0u), r0, r1, start = 0u;
    my_rows(n, r0, r1);
    for (uint i = 0u; i < j; i++)
        start += a_rows(i, has_v);
    b = max(r0, start) - start;
    e = min(r1, start + a_rows(j, has_v));
    e = e > start ? e - start : 0u;
    if (b > e)
        b = e;
}

gemv_job a_job(uint l, uint j, uint b, uint e) { return gemv_job_of(lref(l, L_WR + j), C / 8u, 0u, C / 8u, b, e); }

void prefetch_a(uint l)
{
    for (uint j = 0u; j < 7u; j++) {
        uint b, e;
        a_part(l, j, b, e);
        if (b < e) {
            gemv_first(a_job(l, j, b, e));
            return;
        }
    }
}

void run_a(uint l)
{
    float xx[EPT], d[EPT];
    if (l == 0u) { // x = LN0(emb[token]), kept by workgroup 0 for the residual
        uint eb = tab[gref(T_EMB)], eo = tab[gref(T_EMB) + 1u] * 4u, tok = ck_token(0u);
        [[unroll]] for (uint e = 0u; e < EPT; e++) {
            uint c = tid + WG * e, i = tok * C + c;
            xx[e] = c < C ? unpackHalf2x16(mu[eb].u[eo + (i >> 1)])[i & 1u] : 0.0;
        }
        layer_norm(xx, gref(T_LN0W), gref(T_LN0B));
        if (wg == 0u)
            [[unroll]] for (uint e = 0u; e < EPT; e++)
                if (tid + WG * e < C)
                    aset(gref(T_X), tid + WG * e, xx[e]);
    } else {
        load_x(xx);
    }
    layer_norm(xx, lref(l, L_LN1W), lref(l, L_LN1B));
    [[unroll]] for (uint e = 0u; e < EPT; e++) {
        uint c = tid + WG * e;
        d[e] = c < C ? af[tab[lref(l, L_SATT)]].f[state_at(l, L_SATT, c)] - xx[e] : 0.0;
        if (wg == 0u && c < C)
            aset(gref(T_XXA), c, xx[e]);
    }
    bool first = true;
    for (uint j = 0u; j < 7u; j++) {
        uint b, e;
        a_part(l, j, b, e);
        if (b < e) {
            uint mix = lref(l, L_MIX + a_mix(j));
            [[unroll]] for (uint k = 0u; k < EPT; k++) {
                uint c = tid + WG * k;
                if (c < C)
                    put_xs(c, xx[k] + d[k] * mvec(mix, c));
            }
            barrier();
            gemv_run(a_job(l, j, b, e), first, gref(a_out(j)), a_off(j), a_act(j), false);
            first = false;
            barrier();
        }
    }
}

// ---- W: per head, LoRA up-projections + WKV7 + GroupNorm, bonus, gate (wkv7_head.glsl) ----

const uint HA = DW / 4u, HG = HA + DA / 4u, HV = HG + DG / 4u, HT = HV + DV / 4u;
const uint NW = (DW / 8u + 3u) / 4u, NA = (DA / 8u + 3u) / 4u, NGL = (DG / 8u + 3u) / 4u;
const uint NV = DV > 0u ? (DV / 8u + 3u) / 4u : 1u;
shared vec4 shid[HT];
#define BDOT(R, u, h0, h1) (dot(vec4(unpackHalf2x16(R[u].x), unpackHalf2x16(R[u].y)), h0) + \
                            dot(vec4(unpackHalf2x16(R[u].z), unpackHalf2x16(R[u].w)), h1))
#include "wkv7_head.glsl"

// this invocation's state blocks q, q + 4, ... of row i of the head, and its LoRA rows' blocks (loaded
// ahead of the grid barrier for the workgroup's first head: none depends on phase A)
vec4 S[Q4];
uvec4 rw[NW], ra[NA], rg[NGL], rv2[NV];

#define LORA_LOAD(MREF, D, R, c, q)                                                 \
    {                                                                               \
        const uint nb = (D) >> 3;                                                   \
        uint mb_ = tab[MREF], base_ = tab[(MREF) + 1u] + (c) * nb;                  \
        [[unroll]] for (uint u = 0u; u < (nb + 3u) / 4u; u++)                       \
            R[u] = mq[mb_].q[base_ + min((q) + 4u * u, nb - 1u)];                   \
    }

void w_load(uint l, uint h)
{
    uint i = tid >> 2, q = tid & 3u, c = h * N + i, stb = tab[lref(l, L_SWKV)];
    uint base4 = (state_at(l, L_SWKV, (h * N + i) * N) >> 2) + q;
    [[unroll]] for (uint u = 0u; u < Q4; u++)
        S[u] = av[stb].v[base4 + 4u * u];
    LORA_LOAD(lref(l, L_W2), DW, rw, c, q);
    LORA_LOAD(lref(l, L_A2), DA, ra, c, q);
    LORA_LOAD(lref(l, L_G2), DG, rg, c, q);
    if (DV != 0u && a_has_v(l))
        LORA_LOAD(lref(l, L_V2), DV, rv2, c, q);
}

void prefetch_w(uint l)
{
    if (wg < C / N)
        w_load(l, wg);
}

void run_w(uint l)
{
    uint i = tid >> 2, q = tid & 3u, H = C / N;
    bool has_v = a_has_v(l);
    uint hb = tab[gref(T_HID)], ho4 = tab[gref(T_HID) + 1u] >> 2;
    uint stb = tab[lref(l, L_SWKV)];
    for (uint h = wg; h < H; h += G) {
        if (h != wg)
            w_load(l, h);
        uint c = h * N + i, base4 = (state_at(l, L_SWKV, (h * N + i) * N) >> 2) + q;
        float k = aget(gref(T_K), c), r = aget(gref(T_R), c), vc = aget(gref(T_V), c);
        for (uint e = tid; e < HT; e += WG)
            shid[e] = e < HV || has_v ? av[hb].v[ho4 + e] : vec4(0.0);
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
        float wc = act_apply(6u, dw + mvec(lref(l, L_W0), c)), a = act_apply(1u, da + mvec(lref(l, L_A0), c));
        if (has_v)
            vc += (aget(gref(T_VF), c) - vc) * act_apply(1u, dv + mvec(lref(l, L_V0), c));
        else if (q == 0u)
            aset(gref(T_VF), c, vc); // layer 0: v_first
        if (q == 0u) // the attention shift state: layer norm 1's output of this token
            af[tab[lref(l, L_SATT)]].f[state_at(l, L_SATT, c)] = aget(gref(T_XXA), c);
        float bonus = wkv7_channel(i, q, k, r, vc, wc, a, dg, mvec(lref(l, L_KK), c), mvec(lref(l, L_KA), c),
                                   mvec(lref(l, L_RK), c));
        wkv7_update(S, i, q);
        [[unroll]] for (uint u = 0u; u < Q4; u++)
            av[stb].v[base4 + 4u * u] = S[u];
        uint co = h * N + min(tid, N - 1u);
        float out_v = wkv7_out(tid, uintBitsToFloat(tab[H_GN_EPS]), mvec(lref(l, L_LNXW), co),
                               mvec(lref(l, L_LNXB), co), bonus);
        if (tid < N)
            aset(gref(T_Y), co, out_v);
        barrier();
    }
}

// ---- O, K, V and the head ----

void stage(uint ref, uint c0, uint n)
{
    for (uint c = tid; c < n; c += WG)
        put_xs(c, aget(ref, c0 + c));
    barrier();
}

gemv_job o_job(uint l)
{
    uint r0, r1;
    my_rows(C, r0, r1);
    return gemv_job_of(lref(l, L_WO), C / 8u, 0u, C / 8u, r0, r1);
}

void prefetch_o(uint l) { gemv_first(o_job(l)); }

void run_o(uint l)
{
    gemv_job j = o_job(l);
    if (j.rb >= j.re)
        return;
    stage(gref(T_Y), 0u, C);
    gemv_run(j, true, gref(T_X), 0u, 0u, true);
}

gemv_job k_job(uint l)
{
    uint r0, r1;
    my_rows(F, r0, r1);
    return gemv_job_of(lref(l, L_FKEY), C / 8u, 0u, C / 8u, r0, r1);
}

void prefetch_k(uint l) { gemv_first(k_job(l)); }

void run_k(uint l)
{
    float xx[EPT];
    load_x(xx);
    layer_norm(xx, lref(l, L_LN2W), lref(l, L_LN2B));
    uint sb = tab[lref(l, L_SFFN)];
    [[unroll]] for (uint e = 0u; e < EPT; e++) {
        uint c = tid + WG * e;
        if (c < C) {
            float prev = af[sb].f[state_at(l, L_SFFN, c)];
            put_xs(c, xx[e] + (prev - xx[e]) * mvec(lref(l, L_FXK), c));
            if (wg == 0u)
                aset(gref(T_XXF), c, xx[e]);
        }
    }
    barrier();
    gemv_run(k_job(l), true, gref(T_KF), 0u, 3u, false);
}

// slice c0 of the FFN value's K (staged KC at a time)
gemv_job v_job(uint l, uint c0)
{
    uint r0, r1;
    my_rows(C, r0, r1);
    return gemv_job_of(lref(l, L_FVAL), F / 8u, c0 / 8u, min(KC, F - c0) / 8u, r0, r1);
}

void prefetch_v(uint l) { gemv_first(v_job(l, 0u)); }

void run_v(uint l)
{
    uint sb = tab[lref(l, L_SFFN)];
    for (uint c = wg * WG + tid; c < C; c += G * WG)
        af[sb].f[state_at(l, L_SFFN, c)] = aget(gref(T_XXF), c);
    for (uint c0 = 0u; c0 < F; c0 += KC) {
        gemv_job j = v_job(l, c0);
        if (j.rb >= j.re)
            return;
        barrier(); // the previous slice is consumed
        stage(gref(T_KF), c0, min(KC, F - c0));
        gemv_run(j, c0 == 0u, gref(T_X), 0u, 0u, true);
    }
}

gemv_job head_job()
{
    uint r0, r1;
    my_rows(tab[H_VOCAB], r0, r1);
    return gemv_job_of(gref(T_HEAD), C / 8u, 0u, C / 8u, r0, r1);
}

void prefetch_head() { gemv_first(head_job()); }

void run_head()
{
    float xx[EPT];
    load_x(xx);
    layer_norm(xx, gref(T_LNOW), gref(T_LNOB));
    [[unroll]] for (uint e = 0u; e < EPT; e++)
        if (tid + WG * e < C)
            put_xs(tid + WG * e, xx[e]);
    barrier();
    gemv_run(head_job(), true, gref(T_LOGITS), 0u, 0u, false);
}

// Each phase's first weights (and W's state rows) are loaded before the grid barrier that precedes
// it: they do not depend on the other workgroups, and their latency then hides the barrier's.
void main()
{
    tid = gl_LocalInvocationID.x;
    wg = gl_WorkGroupID.x;
    G = gl_NumWorkGroups.x;
    sg = gl_SubgroupID;
    lane = gl_SubgroupInvocationID;
    NSG = NUM_SUBGROUPS(WG);
    SGS = gl_SubgroupSize;
    slot = ck_seg_slot(0u);
    uint epoch = 0u, L = tab[H_LAYERS];
#ifdef PROF
    t_mark = clockRealtime2x32EXT().x;
#endif
    prefetch_a(0u);
    for (uint l = 0u; l < L; l++) {
        run_a(l);
        prefetch_w(l);
        if (!grid_sync(epoch, 0u))
            return;
        run_w(l);
        prefetch_o(l);
        if (!grid_sync(epoch, 1u))
            return;
        run_o(l);
        prefetch_k(l);
        if (!grid_sync(epoch, 2u))
            return;
        run_k(l);
        prefetch_v(l);
        if (!grid_sync(epoch, 3u))
            return;
        run_v(l);
        if (l + 1u < L)
            prefetch_a(l + 1u);
        else if (pc.rows > 0u)
            prefetch_head();
        if (!grid_sync(epoch, 4u))
            return;
    }
    if (pc.rows > 0u)
        run_head();
    barrier();
    mark(10u);
}
