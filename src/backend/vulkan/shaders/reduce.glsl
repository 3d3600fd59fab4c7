// wg_sum: the sum of one float over the workgroup (WG invocations, a specialization constant defined
// before including). With USE_SUBGROUP, subgroup adds and one shared slot per subgroup; else a
// shared-memory tree. Call from uniform control flow; every invocation gets the result.
shared float red_sh[WG];

float wg_sum(float v)
{
#ifdef USE_SUBGROUP
    v = subgroupAdd(v);
    if (subgroupElect())
        red_sh[gl_SubgroupID] = v;
    barrier();
    float s = 0.0;
    for (uint i = 0u; i < NUM_SUBGROUPS(WG); i++)
        s += red_sh[i];
    barrier();
    return s;
#else
    uint tid = gl_LocalInvocationID.x;
    red_sh[tid] = v;
    barrier();
    uint p = 1u;
    while (p < WG)
        p <<= 1;
    for (uint s = p >> 1; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG)
            red_sh[tid] += red_sh[tid + s];
        barrier();
    }
    float r = red_sh[0];
    barrier();
    return r;
#endif
}

// GroupNorm over the workgroup, one value per invocation: (v - mean) / sqrt(var + eps) * w + b with the
// two-pass variance of cpu's group_norm. Needs common.glsl (pc.eps).
float wg_norm(float v, float w, float b)
{
    float mean = wg_sum(v) / float(WG);
    float d = v - mean;
    float inv = 1.0 / sqrt(wg_sum(d * d) / float(WG) + pc.eps);
    return d * inv * w + b;
}
