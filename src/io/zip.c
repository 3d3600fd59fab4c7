/* Zip archives of stored entries (see zip.h). Layout facts used here, from the PKWARE APPNOTE:
 *   [local header 30 + name + extra][data] ... [central directory: 46 + name + extra + comment each]
 *   [zip64 end record 56+][zip64 locator 20][end record 22 + comment]
 * Sizes and offsets come from the central directory (torch.save writes zeros and a data descriptor in
 * local headers); 0xffffffff there means "in the zip64 extra field". */
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_END_SIG 0x06054b50u
#define ZIP64_END_SIG 0x06064b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP_LOCAL_SIZE 30
#define ZIP_CENTRAL_SIZE 46
#define ZIP_END_SIZE 22
#define ZIP64_END_SIZE 56
#define ZIP64_LOCATOR_SIZE 20

const char *rwkv_quote_bytes(char *buf, size_t cap, const void *s, size_t len)
{
    const uint8_t *p = s;
    size_t n = len < cap ? len : cap - 4; /* room for "..." and the NUL */
    for (size_t i = 0; i < n; i++)
        buf[i] = p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
    if (n < len)
        memcpy(buf + n, "...", 3);
    buf[n < len ? n + 3 : n] = '\0';
    return buf;
}

static const char *entry_name(const struct rwkv_zip_entry *e, char q[RWKV_QUOTE_CAP])
{
    return rwkv_quote_bytes(q, RWKV_QUOTE_CAP, e->name, e->name_len);
}

/* Finds the end-of-central-directory record (the last one whose comment reaches the end of the file)
 * and, when present, the zip64 record that supersedes its 16/32-bit fields. */
static rwkv_status zip_read_end(struct rwkv_zip *z, struct rwkv_error *err)
{
    const uint8_t *p = z->base;
    if (z->size < ZIP_END_SIZE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %zu bytes: too short for a zip archive", z->path, z->size);
    size_t at = z->size - ZIP_END_SIZE;
    size_t lowest = at > 0xffff ? at - 0xffff : 0;
    while (zip_rd32(p + at) != ZIP_END_SIG || at + ZIP_END_SIZE + zip_rd16(p + at + 20) != z->size) {
        if (at == lowest)
            return rwkv_fail(err, RWKV_ERR_FORMAT,
                             "%s: no zip end-of-central-directory record (truncated, or not a zip archive)",
                             z->path);
        at--;
    }
    const uint8_t *e = p + at;
    uint64_t limit = at; /* the central directory lies before the end records */
    uint64_t n = zip_rd16(e + 10);
    z->cd_size = zip_rd32(e + 12);
    z->cd_off = zip_rd32(e + 16);
    if (at >= ZIP64_LOCATOR_SIZE && zip_rd32(e - ZIP64_LOCATOR_SIZE) == ZIP64_LOCATOR_SIG) {
        const uint8_t *l = e - ZIP64_LOCATOR_SIZE;
        uint64_t off = zip_rd64(l + 8);
        limit = at - ZIP64_LOCATOR_SIZE;
        if (zip_rd32(l + 4) != 0 || zip_rd32(l + 16) > 1)
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", z->path);
        if (off > limit || limit - off < ZIP64_END_SIZE)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip64 end record offset %llu is out of range", z->path,
                             (unsigned long long)off);
        const uint8_t *r = p + off;
        if (zip_rd32(r) != ZIP64_END_SIG)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: bad zip64 end record signature at offset %llu", z->path,
                             (unsigned long long)off);
        if (zip_rd32(r + 16) != 0 || zip_rd32(r + 20) != 0 || zip_rd64(r + 24) != zip_rd64(r + 32))
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", z->path);
        n = zip_rd64(r + 32);
        z->cd_size = zip_rd64(r + 40);
        z->cd_off = zip_rd64(r + 48);
        limit = off;
    } else if (zip_rd16(e + 4) != 0 || zip_rd16(e + 6) != 0 || zip_rd16(e + 8) != zip_rd16(e + 10)) {
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", z->path);
    } else if (n == 0xffff || z->cd_size == 0xffffffffu || z->cd_off == 0xffffffffu) {
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip64 markers without a zip64 end record", z->path);
    }
    if (z->cd_off > limit || z->cd_size > limit - z->cd_off)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: zip central directory (offset %llu, %llu bytes) lies outside the archive "
                         "(truncated?)",
                         z->path, (unsigned long long)z->cd_off, (unsigned long long)z->cd_size);
    if (n > z->cd_size / ZIP_CENTRAL_SIZE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip central directory claims %llu entries in %llu bytes",
                         z->path, (unsigned long long)n, (unsigned long long)z->cd_size);
    z->n = (size_t)n; /* fits: at most size / 46 */
    return RWKV_OK;
}

/* The zip64 extra field (id 1) holds, in this order, those of size, compressed size and local header
 * offset whose 32-bit central directory field is 0xffffffff. */
static rwkv_status zip64_extra(const struct rwkv_zip *z, const struct rwkv_zip_entry *e, const uint8_t *x, size_t len,
                               uint64_t *fields[3], struct rwkv_error *err)
{
    int need = 0;
    for (int i = 0; i < 3; i++)
        need += *fields[i] == 0xffffffffu;
    while (need && len >= 4) {
        size_t id = zip_rd16(x), sz = zip_rd16(x + 2);
        if (sz > len - 4)
            break;
        if (id == 1) {
            const uint8_t *q = x + 4;
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu)
                    continue;
                if (q + 8 > x + 4 + sz)
                    break;
                *fields[i] = zip_rd64(q);
                q += 8;
                need--;
            }
            break;
        }
        x += 4 + sz;
        len -= 4 + sz;
    }
    char q[RWKV_QUOTE_CAP];
    if (need)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip entry '%s': missing or short zip64 extra field", z->path,
                         entry_name(e, q));
    return RWKV_OK;
}

/* Checks the local header of a central directory entry and locates its data. */
static rwkv_status zip_check_local(const struct rwkv_zip *z, struct rwkv_zip_entry *e, uint16_t method,
                                   struct rwkv_error *err)
{
    char q[RWKV_QUOTE_CAP];
    if (e->header > z->cd_off || z->cd_off - e->header < ZIP_LOCAL_SIZE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip entry '%s': local header offset %llu is out of range",
                         z->path, entry_name(e, q), (unsigned long long)e->header);
    const uint8_t *h = z->base + e->header;
    uint64_t name_len = zip_rd16(h + 26), extra_len = zip_rd16(h + 28);
    uint64_t data = e->header + ZIP_LOCAL_SIZE + name_len + extra_len;
    if (zip_rd32(h) != ZIP_LOCAL_SIG || zip_rd16(h + 8) != method || data > z->cd_off || name_len != e->name_len ||
        memcmp(h + ZIP_LOCAL_SIZE, e->name, e->name_len) != 0)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip entry '%s': bad local header at offset %llu",
                         z->path, entry_name(e, q), (unsigned long long)e->header);
    if (e->size > z->cd_off - data)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: zip entry '%s': %llu bytes at offset %llu run past the central directory "
                         "(truncated or corrupt)",
                         z->path, entry_name(e, q), (unsigned long long)e->size, (unsigned long long)data);
    e->data = data;
    return RWKV_OK;
}

/* Parses the central directory entry at `c` (`left` bytes of directory remain). */
static rwkv_status zip_read_entry(const struct rwkv_zip *z, const uint8_t *c, uint64_t left, size_t index,
                                  struct rwkv_zip_entry *e, uint64_t *used, struct rwkv_error *err)
{
    if (left < ZIP_CENTRAL_SIZE || zip_rd32(c) != ZIP_CENTRAL_SIG)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip central directory entry %zu: bad signature or truncated",
                         z->path, index);
    uint16_t flags = zip_rd16(c + 8), method = zip_rd16(c + 10);
    uint64_t csize = zip_rd32(c + 20), usize = zip_rd32(c + 24);
    size_t name_len = zip_rd16(c + 28), extra_len = zip_rd16(c + 30), comment_len = zip_rd16(c + 32);
    *used = ZIP_CENTRAL_SIZE + (uint64_t)name_len + extra_len + comment_len;
    if (*used > left)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip central directory entry %zu is truncated", z->path, index);
    e->name = c + ZIP_CENTRAL_SIZE;
    e->name_len = name_len;
    e->header = zip_rd32(c + 42);
    uint64_t *fields[3] = {&usize, &csize, &e->header};
    char q[RWKV_QUOTE_CAP];
    rwkv_status st = zip64_extra(z, e, e->name + name_len, extra_len, fields, err);
    if (st)
        return st;
    if (flags & 1)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: zip entry '%s' is encrypted", z->path,
                         entry_name(e, q));
    if (method != 0)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "%s: zip entry '%s' is compressed (method %u); only stored entries are "
                         "supported, as torch.save writes them",
                         z->path, entry_name(e, q), method);
    if (csize != usize)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: zip entry '%s': stored, but sizes differ (%llu and %llu bytes)", z->path,
                         entry_name(e, q), (unsigned long long)csize, (unsigned long long)usize);
    e->size = usize;
    return zip_check_local(z, e, method, err);
}

static int cmp_name(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int cmp_entry_name(const void *a, const void *b)
{
    const struct rwkv_zip_entry *x = a, *y = b;
    return cmp_name(x->name, x->name_len, y->name, y->name_len);
}

static int cmp_entry_offset(const void *a, const void *b)
{
    const struct rwkv_zip_entry *x = a, *y = b;
    return (x->header > y->header) - (x->header < y->header);
}

/* Overlapping entries (a zip bomb trick) and duplicate names are refused: each byte belongs to one entry. */
static rwkv_status zip_check_layout(struct rwkv_zip *z, struct rwkv_error *err)
{
    char q[RWKV_QUOTE_CAP], q2[RWKV_QUOTE_CAP];
    qsort(z->entries, z->n, sizeof *z->entries, cmp_entry_offset);
    for (size_t i = 1; i < z->n; i++) {
        const struct rwkv_zip_entry *a = &z->entries[i - 1], *b = &z->entries[i];
        if (b->header < a->data + a->size)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip entries '%s' and '%s' overlap", z->path,
                             entry_name(a, q), entry_name(b, q2));
    }
    qsort(z->entries, z->n, sizeof *z->entries, cmp_entry_name);
    for (size_t i = 1; i < z->n; i++)
        if (cmp_entry_name(&z->entries[i - 1], &z->entries[i]) == 0)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: zip entry '%s' appears twice", z->path,
                             entry_name(&z->entries[i], q));
    return RWKV_OK;
}

rwkv_status rwkv_zip_open(struct rwkv_zip *z, const char *path, const uint8_t *data, size_t size,
                          struct rwkv_error *err)
{
    memset(z, 0, sizeof *z);
    z->path = path;
    z->base = data;
    z->size = size;
    rwkv_status st = zip_read_end(z, err);
    if (st)
        return st;
    if (!(z->entries = calloc(z->n ? z->n : 1, sizeof *z->entries)))
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    const uint8_t *c = data + z->cd_off; /* checked by zip_read_end */
    uint64_t left = z->cd_size;
    for (size_t i = 0; i < z->n && !st; i++) {
        uint64_t used = 0;
        st = zip_read_entry(z, c, left, i, &z->entries[i], &used, err);
        if (!st) { /* used <= left only on success */
            c += used;
            left -= used;
        }
    }
    if (!st)
        st = zip_check_layout(z, err);
    if (st)
        rwkv_zip_close(z);
    return st;
}

void rwkv_zip_close(struct rwkv_zip *z)
{
    free(z->entries);
    z->entries = NULL;
    z->n = 0;
}

const struct rwkv_zip_entry *rwkv_zip_find(const struct rwkv_zip *z, const char *name, size_t len)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_name(z->entries[mid].name, z->entries[mid].name_len, (const uint8_t *)name, len);
        if (c == 0)
            return &z->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
