/* A zip archive reader for archives of STORED (uncompressed) entries, such as the ones torch.save writes:
 * the central directory is read and checked against the bytes in memory, and each entry's data is
 * located in place. Compressed or encrypted entries are refused. zip64 is supported. */
#ifndef RWKV_IO_ZIP_H
#define RWKV_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

struct rwkv_zip_entry {
    const uint8_t *name; /* in the archive bytes, not NUL-terminated */
    size_t name_len;
    uint64_t header;     /* offset of the local header */
    uint64_t data;       /* offset of the entry's bytes */
    uint64_t size;
};

struct rwkv_zip {
    const char *path;              /* for messages (not owned) */
    const uint8_t *base;           /* the whole archive (not owned) */
    size_t size;
    uint64_t cd_off, cd_size;      /* central directory */
    struct rwkv_zip_entry *entries; /* sorted by name (bytewise) */
    size_t n;
};

/* Little-endian reads from unaligned bytes (zip and pickle fields). */
static inline uint16_t zip_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t zip_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t zip_rd64(const uint8_t *p)
{
    return zip_rd32(p) | (uint64_t)zip_rd32(p + 4) << 32;
}

/* For error messages: copies s[0..len) into buf (cap >= 8 bytes, NUL-terminated) with control characters
 * replaced by '?' so that a hostile name cannot break a one-line message, and cuts a long one with
 * "...". Returns buf. */
#define RWKV_QUOTE_CAP 96
const char *rwkv_quote_bytes(char *buf, size_t cap, const void *s, size_t len);

/* Reads the directory of the archive in `data` (which must outlive `z`). Every entry is checked: stored,
 * local header consistent with the central directory, data inside the file and before the central
 * directory, no two entries overlapping or sharing a name. On failure `z` holds nothing to free. */
rwkv_status rwkv_zip_open(struct rwkv_zip *z, const char *path, const uint8_t *data, size_t size,
                          struct rwkv_error *err);
void rwkv_zip_close(struct rwkv_zip *z);

/* The entry named exactly name[0..len), or NULL. */
const struct rwkv_zip_entry *rwkv_zip_find(const struct rwkv_zip *z, const char *name, size_t len);

#endif
