/* The one random generator of the project: xoshiro256** seeded through splitmix64. A seed gives the
 * same stream on every platform (sampler reproducibility, synthetic model bytes). */
#ifndef RWKV_CORE_RNG_H
#define RWKV_CORE_RNG_H

#include <stdint.h>

struct rwkv_rng {
    uint64_t s[4];
};

static inline uint64_t rwkv_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void rwkv_rng_seed(struct rwkv_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = rwkv_splitmix64(&seed);
}

static inline uint64_t rwkv_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rwkv_rng_next(struct rwkv_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rwkv_rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rwkv_rotl64(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rwkv_rng_uniform(struct rwkv_rng *r)
{
    return (double)(rwkv_rng_next(r) >> 11) * 0x1.0p-53;
}

#endif
