/* dtype names and sizes; IEEE binary16 and bfloat16 conversions. */
#include "rwkv.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[RWKV_DTYPE_COUNT] = {
    [RWKV_DTYPE_F32] = {"F32", 4}, [RWKV_DTYPE_F16] = {"F16", 2}, [RWKV_DTYPE_BF16] = {"BF16", 2},
    [RWKV_DTYPE_I8] = {"I8", 1},   [RWKV_DTYPE_U8] = {"U8", 1},
};

const char *rwkv_dtype_name(enum rwkv_dtype dtype)
{
    return (unsigned)dtype < RWKV_DTYPE_COUNT ? dtype_table[dtype].name : "?";
}

size_t rwkv_dtype_size(enum rwkv_dtype dtype)
{
    return (unsigned)dtype < RWKV_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float rwkv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float f = (float)mant * (1.0f / 16777216.0f);
        return bits_f32(f32_bits(f) | sign);
    }
    if (exp == 31)
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t rwkv_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) { /* below 2^-14: subnormal half (or zero) */
        /* value * 2^24 rounded to nearest even integer = half mantissa */
        float v = bits_f32(abs) * 16777216.0f;
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1)))
            m++;
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((abs >> 23) - 112) << 10;
    uint32_t mant = (abs >> 13) & 0x3ff;
    uint32_t rest = abs & 0x1fff;
    uint32_t h = exp | mant;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is still correct */
    return (uint16_t)(sign | h);
}

float rwkv_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}

uint16_t rwkv_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
