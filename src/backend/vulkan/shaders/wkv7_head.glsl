// One WKV7 step of one head for one token, shared by wkv7_one.comp and token7.comp: a workgroup of
// 4 N invocations, invocation 4 i + q owning the 16-byte key blocks q, q + 4, ... of value row i of
// S[value][key] (Q4 vec4s), so that each access of a subgroup covers 64 contiguous bytes of each of its
// 8 rows, and a row's sums over its keys are finished by two shuffles inside each group of four lanes.
//   kk = L2norm(k * k_k); k' = k * (1 + (a - 1) * k_a)
//   S[i][j] = S[i][j] w[j] - (sum_j' S[i][j'] kk[j']) kk[j] a[j] + v[i] k'[j];  y[i] = sum_j S[i][j] r[j]
//   out = (GroupNorm(y) * ln_w + ln_b + (sum_j r[j] k'[j] r_k[j]) v) * g
// Include after reduce.glsl with N (head size), and wg_sum2 defined (WG_SUM_OF(vec2, ...)). With BDOT
// defined (a LoRA row's block against two vec4s of the hidden vector), LORA_DOT sums channel c's
// blocks q, q + 4, ... of a LoRA up-projection row held in registers.

const uint Q4 = N / 16u; // vec4s of keys per invocation: blocks q + 4 u
shared vec4 skk[N / 4u], sab[N / 4u], skb[N / 4u], sw[N / 4u], sr[N / 4u];
shared float sv[N], sgate[N], sy[N];

#define PUT4(A, J, V) A[(J) / 4u][(J) % 4u] = (V)

// The sum over the four lanes that share a row.
float quad_sum(float v)
{
    v += subgroupShuffleXor(v, 1u);
    return v + subgroupShuffleXor(v, 2u);
}

#ifdef BDOT
#define LORA_DOT(D, R, H0, q, out)                                                \
    {                                                                             \
        const uint nb = (D) >> 3;                                                 \
        out = 0.0;                                                                \
        [[unroll]] for (uint u = 0u; u < (nb + 3u) / 4u; u++) {                   \
            uint b = min((q) + 4u * u, nb - 1u);                                  \
            float keep = (q) + 4u * u < nb ? 1.0 : 0.0;                           \
            out += keep * BDOT(R, u, shid[(H0) + 2u * b], shid[(H0) + 2u * b + 1u]); \
        }                                                                         \
    }
#endif

// A: channel i's vectors, made by its four invocations and kept by the first, into shared memory;
// returns the head's sum of r k' r_k (the bonus). Every invocation calls it (its barriers).
float wkv7_channel(uint i, uint q, float k, float r, float v, float w, float a, float g, float k_k, float k_a,
                   float r_k)
{
    float kk = k * k_k, kb = k * (1.0 + (a - 1.0) * k_a);
    vec2 part = vec2(0.0);
    if (q == 0u) {
        PUT4(skb, i, kb);
        PUT4(sw, i, w);
        PUT4(sr, i, r);
        sv[i] = v;
        sgate[i] = g;
        part = vec2(kk * kk, r * kb * r_k);
    }
    vec2 sums = wg_sum2(part); // its barriers also publish the shared writes above
    if (q == 0u) {
        kk *= 1.0 / max(sqrt(sums.x), 1e-12);
        PUT4(skk, i, kk);
        PUT4(sab, i, kk * a);
    }
    barrier();
    return sums.y;
}

// B: this invocation's state blocks updated (the caller stores them), y[i] into sy.
void wkv7_update(inout vec4 S[Q4], uint i, uint q)
{
    vec4 sa4 = vec4(0.0);
    [[unroll]] for (uint u = 0u; u < Q4; u++)
        sa4 -= S[u] * skk[q + 4u * u];
    float sa = quad_sum((sa4.x + sa4.y) + (sa4.z + sa4.w)), vi = sv[i];
    vec4 acc4 = vec4(0.0);
    [[unroll]] for (uint u = 0u; u < Q4; u++) {
        uint j = q + 4u * u;
        S[u] = S[u] * sw[j] + sa * sab[j] + vi * skb[j];
        acc4 += S[u] * sr[j];
    }
    float yi = quad_sum((acc4.x + acc4.y) + (acc4.z + acc4.w));
    if (q == 0u)
        sy[i] = yi;
    barrier();
}

// C: the head's output of channel tid (< N): GroupNorm over the head (two passes, as the CPU), bonus
// and gate. Every invocation calls it.
float wkv7_out(uint tid, float eps, float ln_w, float ln_b, float bonus)
{
    float yv = tid < N ? sy[tid] : 0.0;
    float mean = wg_sum2(vec2(yv, 0.0)).x / float(N), d = tid < N ? yv - mean : 0.0;
    float inv = 1.0 / sqrt(wg_sum2(vec2(d * d, 0.0)).x / float(N) + eps);
    uint t = min(tid, N - 1u);
    return (d * inv * ln_w + ln_b + bonus * sv[t]) * sgate[t];
}
