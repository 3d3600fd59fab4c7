#include "backend/cpu/cpu_kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(RWKV_NO_SIMD)
#define CPU_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ---- conversions ---- */

static inline uint16_t load_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static void row_to_f32_portable(const struct rwkv_weight *w, int64_t row, float *dst)
{
    int64_t cols = rwkv_weight_cols(w);
    const uint8_t *base = (const uint8_t *)w->data + (size_t)(row * cols) * rwkv_dtype_size(w->dtype);
    switch (w->dtype) {
    case RWKV_DTYPE_F32: memcpy(dst, base, (size_t)cols * 4); break;
    case RWKV_DTYPE_F16:
        for (int64_t i = 0; i < cols; i++)
            dst[i] = rwkv_f16_to_f32(load_u16(base + 2 * i));
        break;
    case RWKV_DTYPE_BF16:
        for (int64_t i = 0; i < cols; i++)
            dst[i] = rwkv_bf16_to_f32(load_u16(base + 2 * i));
        break;
    default: memset(dst, 0, (size_t)cols * 4); break;
    }
}

#ifdef CPU_X86
__attribute__((target("avx2,f16c"))) static void row_to_f32_avx2(const struct rwkv_weight *w, int64_t row, float *dst)
{
    int64_t cols = rwkv_weight_cols(w);
    if (w->dtype == RWKV_DTYPE_F16) {
        const uint16_t *src = (const uint16_t *)w->data + row * cols;
        int64_t i = 0;
        for (; i + 8 <= cols; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
        for (; i < cols; i++)
            dst[i] = rwkv_f16_to_f32(src[i]);
        return;
    }
    if (w->dtype == RWKV_DTYPE_BF16) {
        const uint16_t *src = (const uint16_t *)w->data + row * cols;
        int64_t i = 0;
        for (; i + 8 <= cols; i += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
        for (; i < cols; i++)
            dst[i] = rwkv_bf16_to_f32(src[i]);
        return;
    }
    row_to_f32_portable(w, row, dst);
}
#endif

/* ---- dot products: 4 rows against one vector ---- */

/* A dot product with 8 partial sums, which compilers vectorise without reassociation flags. */
static float dot_f32(const float *a, const float *b, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void dot4_portable(const float *const rows[4], const float *x, int n, float out[4])
{
    for (int r = 0; r < 4; r++)
        out[r] = dot_f32(rows[r], x, n);
}

#ifdef CPU_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void dot4_avx2(const float *const rows[4], const float *x, int n,
                                                          float out[4])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(rows[0] + i), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(rows[1] + i), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(rows[2] + i), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(rows[3] + i), xv, a3);
    }
    out[0] = hsum256(a0);
    out[1] = hsum256(a1);
    out[2] = hsum256(a2);
    out[3] = hsum256(a3);
    for (; i < n; i++)
        for (int r = 0; r < 4; r++)
            out[r] += rows[r][i] * x[i];
}

/* Four rows against three tokens: 12 accumulators, 7 loads per 12 FMAs (prefill is compute bound). */
__attribute__((target("avx2,fma"))) static void dot4x3_avx2(const float *const rows[4], const float *x0,
                                                            const float *x1, const float *x2, int n,
                                                            float out[3][4])
{
    __m256 acc[3][4];
    for (int t = 0; t < 3; t++)
        for (int r = 0; r < 4; r++)
            acc[t][r] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(x0 + i), b = _mm256_loadu_ps(x1 + i), c = _mm256_loadu_ps(x2 + i);
        for (int r = 0; r < 4; r++) {
            __m256 w = _mm256_loadu_ps(rows[r] + i);
            acc[0][r] = _mm256_fmadd_ps(w, a, acc[0][r]);
            acc[1][r] = _mm256_fmadd_ps(w, b, acc[1][r]);
            acc[2][r] = _mm256_fmadd_ps(w, c, acc[2][r]);
        }
    }
    const float *xs[3] = {x0, x1, x2};
    for (int t = 0; t < 3; t++)
        for (int r = 0; r < 4; r++) {
            float v = hsum256(acc[t][r]);
            for (int k = i; k < n; k++)
                v += rows[r][k] * xs[t][k];
            out[t][r] = v;
        }
}

#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 4096
#endif

/* One token, four F16 rows read straight from the weights (the bandwidth-bound generation case). */
__attribute__((target("avx2,fma,f16c"))) static void dot4_f16_avx2(const uint16_t *const rows[4], const float *x,
                                                                   int n, float out[4])
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        if ((i & 31) == 0) /* a cache line per row per 32 halfs, 4 KiB ahead: the stream is latency bound (2x) */
            for (int r = 0; r < 4; r++)
                _mm_prefetch((const char *)(rows[r] + i) + PREFETCH_BYTES, _MM_HINT_T0);
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rows[0] + i))), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rows[1] + i))), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rows[2] + i))), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rows[3] + i))), xv, a3);
    }
    out[0] = hsum256(a0);
    out[1] = hsum256(a1);
    out[2] = hsum256(a2);
    out[3] = hsum256(a3);
    for (; i < n; i++)
        for (int r = 0; r < 4; r++)
            out[r] += rwkv_f16_to_f32(rows[r][i]) * x[i];
}
#endif

/* The SIMD level, detected once. An atomic, so that devices opened on several threads at once agree
 * without a data race (they all compute the same value). -1 = not detected yet, 0 = portable, 1 = AVX2. */
static atomic_int simd_level = -1;

static int detect_level(void)
{
#ifdef CPU_X86
    __builtin_cpu_init();
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)); /* not every compiler's builtin knows f16c */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
        return 1;
#endif
    return 0;
}

static inline int have_avx2(void)
{
    return atomic_load_explicit(&simd_level, memory_order_relaxed) == 1;
}

const char *cpu_kernels_init(void)
{
    int l = atomic_load(&simd_level);
    if (l < 0) {
        l = detect_level();
        atomic_store(&simd_level, l);
    }
    return l == 1 ? "avx2+fma+f16c" : "portable";
}

static void dot4(const float *const rows[4], const float *x, int n, float out[4])
{
#ifdef CPU_X86
    if (have_avx2()) {
        dot4_avx2(rows, x, n, out);
        return;
    }
#endif
    dot4_portable(rows, x, n, out);
}

void cpu_row_to_f32(const struct rwkv_weight *w, int64_t row, float *dst)
{
#ifdef CPU_X86
    if (have_avx2()) {
        row_to_f32_avx2(w, row, dst);
        return;
    }
#endif
    row_to_f32_portable(w, row, dst);
}

/* ---- activations ---- */

float cpu_activate(enum rwkv_act act, float z)
{
    switch (act) {
    case RWKV_ACT_NONE: return z;
    case RWKV_ACT_SIGMOID: return 1.0f / (1.0f + expf(-z));
    case RWKV_ACT_TANH: return tanhf(z);
    case RWKV_ACT_RELU_SQ: return z > 0 ? z * z : 0.0f;
    case RWKV_ACT_SILU: return z / (1.0f + expf(-z));
    case RWKV_ACT_EXP_NEG_EXP: return expf(-expf(z));
    case RWKV_ACT_V7_DECAY: return expf(-0.60653065971263342f / (1.0f + expf(-z)));
    }
    return z;
}

static inline void store(float *y, float v, const float *bias, int o, enum rwkv_act act, int accumulate)
{
    if (bias)
        v += bias[o];
    v = cpu_activate(act, v);
    y[o] = accumulate ? y[o] + v : v;
}

void cpu_matmul_rows(const struct rwkv_weight *w, struct cpu_mat x, int T, struct cpu_mat y, int o0, int o1,
                     const float *bias, enum rwkv_act act, int accumulate, float *scratch)
{
    int K = (int)rwkv_weight_cols(w);
    int o = o0;
    for (; o + 4 <= o1; o += 4) {
        float d[4];
#ifdef CPU_X86
        if (have_avx2() && w->dtype == RWKV_DTYPE_F16 && T <= 2) {
            const uint16_t *rows[4];
            for (int r = 0; r < 4; r++)
                rows[r] = (const uint16_t *)w->data + (size_t)(o + r) * (size_t)K;
            for (int t = 0; t < T; t++) {
                dot4_f16_avx2(rows, x.p + (size_t)t * x.stride, K, d);
                for (int r = 0; r < 4; r++)
                    store(y.p + (size_t)t * y.stride, d[r], bias, o + r, act, accumulate);
            }
            continue;
        }
#endif
        const float *rows[4];
        if (w->dtype == RWKV_DTYPE_F32) {
            for (int r = 0; r < 4; r++)
                rows[r] = (const float *)w->data + (size_t)(o + r) * (size_t)K;
        } else {
            for (int r = 0; r < 4; r++) {
                cpu_row_to_f32(w, o + r, scratch + (size_t)r * K);
                rows[r] = scratch + (size_t)r * K;
            }
        }
        int t = 0;
#ifdef CPU_X86
        if (have_avx2()) {
            float d3[3][4];
            for (; t + 3 <= T; t += 3) {
                const float *xt = x.p + (size_t)t * x.stride;
                dot4x3_avx2(rows, xt, xt + x.stride, xt + 2 * x.stride, K, d3);
                for (int k = 0; k < 3; k++)
                    for (int r = 0; r < 4; r++)
                        store(y.p + (size_t)(t + k) * y.stride, d3[k][r], bias, o + r, act, accumulate);
            }
        }
#endif
        for (; t < T; t++) {
            dot4(rows, x.p + (size_t)t * x.stride, K, d);
            for (int r = 0; r < 4; r++)
                store(y.p + (size_t)t * y.stride, d[r], bias, o + r, act, accumulate);
        }
    }
    for (; o < o1; o++) { /* the last rows when the count is not a multiple of 4 */
        const float *row;
        if (w->dtype == RWKV_DTYPE_F32) {
            row = (const float *)w->data + (size_t)o * (size_t)K;
        } else {
            cpu_row_to_f32(w, o, scratch);
            row = scratch;
        }
        const float *rows[4] = {row, row, row, row};
        float d[4];
        for (int t = 0; t < T; t++) {
            dot4(rows, x.p + (size_t)t * x.stride, K, d);
            store(y.p + (size_t)t * y.stride, d[0], bias, o, act, accumulate);
        }
    }
}

/* ---- normalisation ---- */

void cpu_layernorm_row(const float *x, float *y, int n, const float *w, const float *b, float eps)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    float mean = (float)(sum / n);
    double var = 0;
    for (int i = 0; i < n; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    float inv = (float)(1.0 / sqrt(var / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

/* ---- WKV ---- */

void cpu_wkv4_seg(const struct cpu_wkv_io *io, int C, const float *decay, const float *first, float *state)
{
    float *aa = state, *bb = state + C, *pp = state + 2 * C;
    for (int t = 0; t < io->len; t++) {
        const float *k = io->k.p + (size_t)t * io->k.stride, *v = io->v.p + (size_t)t * io->v.stride;
        const float *r = io->r.p + (size_t)t * io->r.stride;
        float *y = io->y.p + (size_t)t * io->y.stride;
        for (int c = 0; c < C; c++) {
            float ww = first[c] + k[c];
            float q = fmaxf(pp[c], ww);
            float e1 = expf(pp[c] - q), e2 = expf(ww - q);
            float wkv = (e1 * aa[c] + e2 * v[c]) / (e1 * bb[c] + e2);
            ww = pp[c] + decay[c];
            q = fmaxf(ww, k[c]);
            e1 = expf(ww - q);
            e2 = expf(k[c] - q);
            aa[c] = e1 * aa[c] + e2 * v[c];
            bb[c] = e1 * bb[c] + e2;
            pp[c] = q;
            y[c] = r[c] * wkv;
        }
    }
}

/* y = GroupNorm(y) * w + b over one head's n values. */
static void group_norm(float *y, int n, const float *w, const float *b, float eps)
{
    double sum = 0, var = 0;
    for (int i = 0; i < n; i++)
        sum += y[i];
    float mean = (float)(sum / n);
    for (int i = 0; i < n; i++) {
        double d = y[i] - mean;
        var += d * d;
    }
    float inv = (float)(1.0 / sqrt(var / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = (y[i] - mean) * inv * w[i] + b[i];
}

void cpu_wkv5_head(const struct cpu_wkv_io *io, int N, const float *decay, const float *u, const float *lnw,
                   const float *lnb, float eps, float *S)
{
    for (int t = 0; t < io->len; t++) {
        const float *r = io->r.p + (size_t)t * io->r.stride, *k = io->k.p + (size_t)t * io->k.stride;
        const float *v = io->v.p + (size_t)t * io->v.stride;
        const float *w = io->w.p ? io->w.p + (size_t)t * io->w.stride : decay;
        float *y = io->y.p + (size_t)t * io->y.stride;
        for (int j = 0; j < N; j++)
            y[j] = 0;
        for (int i = 0; i < N; i++) {
            float *s = S + (size_t)i * N;
            float ri = r[i], ki = k[i], wi = w[i], uk = u[i] * ki;
            for (int j = 0; j < N; j++) {
                float kv = ki * v[j];
                y[j] += ri * (uk * v[j] + s[j]);
                s[j] = kv + wi * s[j];
            }
        }
        group_norm(y, N, lnw, lnb, eps);
        if (io->g.p) {
            const float *g = io->g.p + (size_t)t * io->g.stride;
            for (int j = 0; j < N; j++)
                y[j] *= g[j];
        }
    }
}

void cpu_wkv7_head(const struct cpu_wkv_io *io, int N, const float *k_k, const float *k_a, const float *r_k,
                   const float *lnw, const float *lnb, float eps, float *S)
{
    float kk[1024], kb[1024], ab[1024];
    for (int t = 0; t < io->len; t++) {
        const float *r = io->r.p + (size_t)t * io->r.stride, *w = io->w.p + (size_t)t * io->w.stride;
        const float *k = io->k.p + (size_t)t * io->k.stride, *v = io->v.p + (size_t)t * io->v.stride;
        const float *a = io->a.p + (size_t)t * io->a.stride, *g = io->g.p + (size_t)t * io->g.stride;
        float *y = io->y.p + (size_t)t * io->y.stride;
        double norm = 0;
        for (int j = 0; j < N; j++) {
            kk[j] = k[j] * k_k[j];
            norm += (double)kk[j] * kk[j];
        }
        float inv = (float)(1.0 / fmax(sqrt(norm), 1e-12));
        float bonus = 0;
        for (int j = 0; j < N; j++) {
            kk[j] *= inv;
            kb[j] = k[j] * (1.0f + (a[j] - 1.0f) * k_a[j]);
            ab[j] = kk[j] * a[j];
            bonus += r[j] * kb[j] * r_k[j];
        }
        for (int i = 0; i < N; i++) {
            float *s = S + (size_t)i * N;
            float sa = -dot_f32(s, kk, N), vi = v[i];
            for (int j = 0; j < N; j++) /* no reduction here: vectorises */
                s[j] = s[j] * w[j] + sa * ab[j] + vi * kb[j];
            y[i] = dot_f32(s, r, N);
        }
        group_norm(y, N, lnw, lnb, eps);
        for (int i = 0; i < N; i++)
            y[i] = (y[i] + bonus * v[i]) * g[i];
    }
}
