/* CPU kernels: the reference implementation of every op, in float32 arithmetic over F32/F16/BF16
 * weights. SIMD variants (AVX2 + F16C + FMA) are picked at run time; the portable C path is always
 * there. */
#ifndef RWKV_BACKEND_CPU_KERNELS_H
#define RWKV_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "model/program.h"

/* A strided float matrix view: row t at p + t * stride. */
struct cpu_mat {
    float *p;
    size_t stride;
};

/* Converts weight row `row` (cols values) to float32. */
void cpu_row_to_f32(const struct rwkv_weight *w, int64_t row, float *dst);

/* y[t][o] (+)= act(sum_i W[o][i] x[t][i] + bias[o]) for o in [o0, o1), t in [0, T).
 * `scratch` holds 4 * cols floats. */
void cpu_matmul_rows(const struct rwkv_weight *w, struct cpu_mat x, int T, struct cpu_mat y, int o0, int o1,
                     const float *bias, enum rwkv_act act, int accumulate, float *scratch);

float cpu_activate(enum rwkv_act act, float z);

void cpu_layernorm_row(const float *x, float *y, int n, const float *w, const float *b, float eps);

/* One head of WKV over a segment of `len` tokens (rows of the given views, already offset to the head). */
struct cpu_wkv_io {
    struct cpu_mat r, k, v, w, a, g, y;
    int len;
};

void cpu_wkv4_seg(const struct cpu_wkv_io *io, int C, const float *decay, const float *first, float *state);
void cpu_wkv5_head(const struct cpu_wkv_io *io, int N, const float *decay, const float *u, const float *lnw,
                   const float *lnb, float eps, float *S);
void cpu_wkv7_head(const struct cpu_wkv_io *io, int N, const float *k_k, const float *k_a, const float *r_k,
                   const float *lnw, const float *lnb, float eps, float *S);

/* Picks the SIMD variants supported by this CPU; returns a short feature string ("avx2+f16c+fma"). */
const char *cpu_kernels_init(void);

#endif
