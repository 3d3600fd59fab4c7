// WG_SUM_OF(T, NAME, SH) defines T NAME(T v): the sum of v (float or vector type T) over the
// workgroup of WG invocations (a specialization constant defined before including), with shared T
// SH[WG]. With USE_SUBGROUP, subgroup adds and one shared slot per subgroup; else a shared-memory
// tree. Call from uniform control flow; every invocation gets the result. wg_sum (float) is defined.
#ifdef USE_SUBGROUP
#define WG_SUM_OF(T, NAME, SH)                                                                          \
    shared T SH[WG];                                                                                    \
    T NAME(T v)                                                                                         \
    {                                                                                                   \
        v = subgroupAdd(v);                                                                             \
        if (subgroupElect())                                                                            \
            SH[gl_SubgroupID] = v;                                                                      \
        barrier();                                                                                      \
        T s = T(0.0);                                                                                   \
        /* many full subgroups: a lane per subgroup's sum, then one add (else a serial pass) */         \
        if (NUM_SUBGROUPS(WG) > 4u && WG % gl_SubgroupSize == 0u) {                                     \
            for (uint i = gl_SubgroupInvocationID; i < NUM_SUBGROUPS(WG); i += gl_SubgroupSize)         \
                s += SH[i];                                                                             \
            s = subgroupAdd(s);                                                                         \
        } else {                                                                                        \
            for (uint i = 0u; i < NUM_SUBGROUPS(WG); i++)                                               \
                s += SH[i];                                                                             \
        }                                                                                               \
        barrier();                                                                                      \
        return s;                                                                                       \
    }
#else
#define WG_SUM_OF(T, NAME, SH)                                                                          \
    shared T SH[WG];                                                                                    \
    T NAME(T v)                                                                                         \
    {                                                                                                   \
        uint tid = gl_LocalInvocationID.x;                                                              \
        SH[tid] = v;                                                                                    \
        barrier();                                                                                      \
        uint p = 1u;                                                                                    \
        while (p < WG)                                                                                  \
            p <<= 1;                                                                                    \
        for (uint s = p >> 1; s > 0u; s >>= 1) {                                                        \
            if (tid < s && tid + s < WG)                                                                \
                SH[tid] += SH[tid + s];                                                                 \
            barrier();                                                                                  \
        }                                                                                               \
        T r = SH[0];                                                                                    \
        barrier();                                                                                      \
        return r;                                                                                       \
    }
#endif

WG_SUM_OF(float, wg_sum, red_sh)

// GroupNorm over the workgroup, one value per invocation: (v - mean) / sqrt(var + eps) * w + b with the
// two-pass variance of cpu's group_norm. Needs common.glsl (pc.eps).
float wg_norm(float v, float w, float b)
{
    float mean = wg_sum(v) / float(WG);
    float d = v - mean;
    float inv = 1.0 / sqrt(wg_sum(d * d) / float(WG) + pc.eps);
    return d * inv * w + b;
}
