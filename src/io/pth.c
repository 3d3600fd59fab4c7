/* PyTorch checkpoint reader: the zip archive that torch.save writes (PyTorch >= 1.6) and the subset of
 * pickle it uses for a state dict. Nothing is executed: data.pkl is interpreted by a small stack machine
 * that knows four kinds of callables (OrderedDict, the two tensor rebuild functions, typed storages) and
 * refuses everything else. Every size, offset and index read from the file is checked before use.
 *
 * Archive layout (every entry STORED, all under one folder "<archive>/"):
 *   <archive>/data.pkl      the pickled dict {name: tensor}
 *   <archive>/data/<key>    the raw little-endian bytes of storage <key>
 *   <archive>/byteorder     "little" (absent in old files); also version, .format_version, ...
 * A tensor is _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) whose
 * storage is the persistent id ('storage', torch.<Type>Storage, key, location, numel). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/tensor_table.h"
#include "io/zip.h"

/* ---- limits: far above what any real checkpoint needs, low enough to bound memory on hostile input ---- */
#define PK_MAX_PICKLE ((uint64_t)256 << 20) /* data.pkl bytes */
#define PK_MAX_OBJECTS (1u << 22)
#define PK_MAX_STACK (1u << 20)
#define PK_MAX_MARKS 256 /* torch.save nests MARK three deep */
#define PK_MAX_MEMO (1u << 20)
#define PK_MAX_STRING (1u << 16)
#define PK_MAX_LINE 256 /* a GLOBAL "module\nname\n" line */
#define PK_NO_OBJ UINT32_MAX

static char *copy_string(const void *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

/* ================================ archive ================================ */

/* The archive folder: the one entry named "<folder>/data.pkl" (the folder name is free: torch uses the
 * file's stem or "archive"). */
static rwkv_status find_pickle(const struct rwkv_zip *z, const struct rwkv_zip_entry **pkl, size_t *prefix_len,
                               struct rwkv_error *err)
{
    static const char suffix[] = "/data.pkl";
    const size_t slen = sizeof suffix - 1;
    *pkl = NULL;
    for (size_t i = 0; i < z->n; i++) {
        const struct rwkv_zip_entry *e = &z->entries[i];
        if (e->name_len <= slen || memcmp(e->name + e->name_len - slen, suffix, slen) != 0 ||
            memchr(e->name, '/', e->name_len - slen))
            continue;
        char q[RWKV_QUOTE_CAP], q2[RWKV_QUOTE_CAP];
        if (*pkl)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: several data.pkl entries ('%s', '%s')", z->path,
                             rwkv_quote_bytes(q, sizeof q, (*pkl)->name, (*pkl)->name_len),
                             rwkv_quote_bytes(q2, sizeof q2, e->name, e->name_len));
        *pkl = e;
        *prefix_len = e->name_len - slen;
    }
    if (!*pkl)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: zip archive without '<folder>/data.pkl': not a torch.save checkpoint", z->path);
    if ((*pkl)->size > PK_MAX_PICKLE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: data.pkl is %llu bytes (limit %llu)", z->path,
                         (unsigned long long)(*pkl)->size, (unsigned long long)PK_MAX_PICKLE);
    return RWKV_OK;
}

/* ================================ pickle ================================ */

enum pk_type { PK_NONE, PK_BOOL, PK_INT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL, PK_STORAGE, PK_TENSOR };

static const char *const pk_type_names[] = {"None", "bool", "int", "str", "tuple", "list", "dict", "class",
                                            "storage", "tensor"};

enum pk_global { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE };

struct storage_kind {
    const char *cls;         /* torch.<cls> */
    enum rwkv_dtype dtype;   /* RWKV_DTYPE_COUNT: not supported */
    size_t size;
    const char *torch_name;
};

static const struct storage_kind storage_kinds[] = {
    {"FloatStorage", RWKV_DTYPE_F32, 4, "float32"},      {"HalfStorage", RWKV_DTYPE_F16, 2, "float16"},
    {"BFloat16Storage", RWKV_DTYPE_BF16, 2, "bfloat16"}, {"DoubleStorage", RWKV_DTYPE_COUNT, 8, "float64"},
    {"LongStorage", RWKV_DTYPE_COUNT, 8, "int64"},       {"IntStorage", RWKV_DTYPE_COUNT, 4, "int32"},
    {"ShortStorage", RWKV_DTYPE_COUNT, 2, "int16"},      {"CharStorage", RWKV_DTYPE_COUNT, 1, "int8"},
    {"ByteStorage", RWKV_DTYPE_COUNT, 1, "uint8"},       {"BoolStorage", RWKV_DTYPE_COUNT, 1, "bool"},
};

struct pk_seq {
    uint32_t *v; /* TUPLE, LIST: items; DICT: key0, value0, key1, value1, ... */
    size_t n, cap;
};

struct pk_obj {
    enum pk_type type;
    union {
        int64_t i; /* BOOL, INT */
        struct {
            const char *p; /* into data.pkl, not NUL-terminated */
            size_t len;
        } s;
        struct pk_seq seq;
        struct {
            enum pk_global kind;
            const struct storage_kind *storage; /* G_STORAGE */
        } g;
        struct {
            const struct storage_kind *kind;
            const uint8_t *data;
            uint64_t numel;
            uint32_t key; /* STR object */
        } storage;
        uint32_t args; /* TENSOR: the _rebuild_tensor_v2 argument tuple, checked when the tensor is named */
    } u;
};

struct pk_vm {
    const char *path;
    const struct rwkv_zip *zip;
    const uint8_t *prefix; /* "<archive>" */
    size_t prefix_len;
    const uint8_t *p;      /* data.pkl */
    size_t size, pos, op_pos;
    uint8_t op;
    int done;
    struct pk_obj *obj;
    size_t n_obj, cap_obj;
    uint32_t *stack;
    size_t sp, cap_stack;
    size_t marks[PK_MAX_MARKS];
    size_t n_marks;
    uint32_t *memo;
    size_t cap_memo, memo_count;
    char *name_buf; /* scratch for "<archive>/data/<key>" */
    size_t name_cap;
    struct rwkv_error *err;
};

static const char *const op_names[256] = {
    ['('] = "MARK", ['.'] = "STOP", ['0'] = "POP", ['1'] = "POP_MARK", ['2'] = "DUP", ['F'] = "FLOAT",
    ['I'] = "INT", ['J'] = "BININT", ['K'] = "BININT1", ['L'] = "LONG", ['M'] = "BININT2", ['N'] = "NONE",
    ['P'] = "PERSID", ['Q'] = "BINPERSID", ['R'] = "REDUCE", ['S'] = "STRING", ['T'] = "BINSTRING",
    ['U'] = "SHORT_BINSTRING", ['V'] = "UNICODE", ['X'] = "BINUNICODE", ['a'] = "APPEND", ['b'] = "BUILD",
    ['c'] = "GLOBAL", ['d'] = "DICT", ['}'] = "EMPTY_DICT", ['e'] = "APPENDS", ['g'] = "GET", ['h'] = "BINGET",
    ['i'] = "INST", ['j'] = "LONG_BINGET", ['l'] = "LIST", [']'] = "EMPTY_LIST", ['o'] = "OBJ", ['p'] = "PUT",
    ['q'] = "BINPUT", ['r'] = "LONG_BINPUT", ['s'] = "SETITEM", ['t'] = "TUPLE", [')'] = "EMPTY_TUPLE",
    ['u'] = "SETITEMS", ['G'] = "BINFLOAT", ['B'] = "BINBYTES", ['C'] = "SHORT_BINBYTES", [0x80] = "PROTO",
    [0x81] = "NEWOBJ", [0x82] = "EXT1", [0x83] = "EXT2", [0x84] = "EXT4", [0x85] = "TUPLE1", [0x86] = "TUPLE2",
    [0x87] = "TUPLE3", [0x88] = "NEWTRUE", [0x89] = "NEWFALSE", [0x8a] = "LONG1", [0x8b] = "LONG4",
    [0x8c] = "SHORT_BINUNICODE", [0x8d] = "BINUNICODE8", [0x8e] = "BINBYTES8", [0x8f] = "EMPTY_SET",
    [0x90] = "ADDITEMS", [0x91] = "FROZENSET", [0x92] = "NEWOBJ_EX", [0x93] = "STACK_GLOBAL", [0x94] = "MEMOIZE",
    [0x95] = "FRAME", [0x96] = "BYTEARRAY8", [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
};

static const char *op_name(uint8_t op)
{
    return op_names[op] ? op_names[op] : "unknown";
}

/* "<path>: data.pkl offset N, OPNAME: why". `why` may quote strings from the file (at most 100 bytes
 * each): their control characters are replaced, so that the message stays one line. */
static rwkv_status vm_fail(struct pk_vm *vm, const char *fmt, ...) RWKV_PRINTF(2, 3);
static rwkv_status vm_fail(struct pk_vm *vm, const char *fmt, ...)
{
    char why[384], clean[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return rwkv_fail(vm->err, RWKV_ERR_FORMAT, "%s: data.pkl offset %zu, %s: %s", vm->path, vm->op_pos,
                     op_name(vm->op), rwkv_quote_bytes(clean, sizeof clean, why, strlen(why)));
}

static rwkv_status vm_nomem(struct pk_vm *vm)
{
    return rwkv_fail(vm->err, RWKV_ERR_NOMEM, "%s: out of memory reading data.pkl", vm->path);
}

/* Grows *buf (of *cap elements of `size` bytes) to hold at least `need`; 0 on failure. */
static int grow(void **buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 1;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *nb = realloc(*buf, nc * size);
    if (!nb)
        return 0;
    *buf = nb;
    *cap = nc;
    return 1;
}

static rwkv_status vm_read(struct pk_vm *vm, size_t n, const uint8_t **out)
{
    if (n > vm->size - vm->pos)
        return vm_fail(vm, "argument runs past the end of data.pkl (truncated?)");
    *out = vm->p + vm->pos;
    vm->pos += n;
    return RWKV_OK;
}

/* Objects are referred to by index: the pool may move as it grows. */
static rwkv_status vm_new(struct pk_vm *vm, enum pk_type type, uint32_t *idx)
{
    if (vm->n_obj >= PK_MAX_OBJECTS)
        return vm_fail(vm, "more than %u objects", PK_MAX_OBJECTS);
    if (!grow((void **)&vm->obj, &vm->cap_obj, vm->n_obj + 1, sizeof *vm->obj))
        return vm_nomem(vm);
    memset(&vm->obj[vm->n_obj], 0, sizeof *vm->obj);
    vm->obj[vm->n_obj].type = type;
    *idx = (uint32_t)vm->n_obj++;
    return RWKV_OK;
}

static rwkv_status vm_push(struct pk_vm *vm, uint32_t idx)
{
    if (vm->sp >= PK_MAX_STACK)
        return vm_fail(vm, "stack deeper than %u", PK_MAX_STACK);
    if (!grow((void **)&vm->stack, &vm->cap_stack, vm->sp + 1, sizeof *vm->stack))
        return vm_nomem(vm);
    vm->stack[vm->sp++] = idx;
    return RWKV_OK;
}

/* The items above the innermost MARK are all that may be popped (as in CPython). */
static size_t vm_fence(const struct pk_vm *vm)
{
    return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
}

static rwkv_status vm_need(struct pk_vm *vm, size_t n)
{
    if (vm->sp - vm_fence(vm) < n)
        return vm_fail(vm, "stack underflow (needs %zu items, has %zu)", n, vm->sp - vm_fence(vm));
    return RWKV_OK;
}

static rwkv_status vm_pop(struct pk_vm *vm, uint32_t *idx)
{
    rwkv_status st = vm_need(vm, 1);
    if (!st)
        *idx = vm->stack[--vm->sp];
    return st;
}

static rwkv_status vm_pop_mark(struct pk_vm *vm, size_t *base)
{
    if (!vm->n_marks)
        return vm_fail(vm, "no MARK on the stack");
    *base = vm->marks[--vm->n_marks];
    return RWKV_OK;
}

static rwkv_status vm_push_new(struct pk_vm *vm, enum pk_type type, int64_t value)
{
    uint32_t idx = 0;
    rwkv_status st = vm_new(vm, type, &idx);
    if (st)
        return st;
    vm->obj[idx].u.i = value;
    return vm_push(vm, idx);
}

static rwkv_status seq_add(struct pk_vm *vm, uint32_t container, uint32_t item)
{
    struct pk_seq *s = &vm->obj[container].u.seq;
    if (!grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v))
        return vm_nomem(vm);
    s->v[s->n++] = item;
    return RWKV_OK;
}

/* Pops stack[base..sp) into a new tuple and pushes it. */
static rwkv_status vm_tuple_from(struct pk_vm *vm, size_t base)
{
    uint32_t idx = 0;
    rwkv_status st = vm_new(vm, PK_TUPLE, &idx);
    for (size_t i = base; i < vm->sp && !st; i++)
        st = seq_add(vm, idx, vm->stack[i]);
    if (st)
        return st;
    vm->sp = base;
    return vm_push(vm, idx);
}

static rwkv_status op_tuple_n(struct pk_vm *vm, size_t n)
{
    rwkv_status st = vm_need(vm, n);
    return st ? st : vm_tuple_from(vm, vm->sp - n);
}

static rwkv_status op_mark_tuple(struct pk_vm *vm)
{
    size_t base = 0;
    rwkv_status st = vm_pop_mark(vm, &base);
    return st ? st : vm_tuple_from(vm, base);
}

static rwkv_status op_mark(struct pk_vm *vm)
{
    if (vm->n_marks >= PK_MAX_MARKS)
        return vm_fail(vm, "MARK nesting deeper than %d", PK_MAX_MARKS);
    vm->marks[vm->n_marks++] = vm->sp;
    return RWKV_OK;
}

static rwkv_status op_string(struct pk_vm *vm, size_t len_bytes)
{
    const uint8_t *a = NULL, *s = NULL;
    rwkv_status st = vm_read(vm, len_bytes, &a);
    if (st)
        return st;
    uint64_t len = len_bytes == 1 ? a[0] : len_bytes == 4 ? zip_rd32(a) : zip_rd64(a);
    if (len > PK_MAX_STRING)
        return vm_fail(vm, "string of %llu bytes (limit %u)", (unsigned long long)len, PK_MAX_STRING);
    uint32_t idx = 0;
    if ((st = vm_read(vm, (size_t)len, &s)) || (st = vm_new(vm, PK_STR, &idx)))
        return st;
    vm->obj[idx].u.s.p = (const char *)s;
    vm->obj[idx].u.s.len = (size_t)len;
    return vm_push(vm, idx);
}

/* BININT (signed 4 bytes), BININT1/BININT2 (unsigned), LONG1 (n-byte two's complement, n <= 8 here). */
static rwkv_status op_int(struct pk_vm *vm, size_t n, int is_signed)
{
    const uint8_t *a = NULL;
    rwkv_status st = vm_read(vm, n, &a);
    if (st)
        return st;
    if (vm->op == 0x8a) { /* LONG1: the first byte is the length */
        n = a[0];
        if (n > 8)
            return vm_fail(vm, "integer of %zu bytes is too large", n);
        if ((st = vm_read(vm, n, &a)))
            return st;
        is_signed = 1;
    }
    uint64_t u = 0;
    for (size_t i = n; i-- > 0;)
        u = u << 8 | a[i];
    if (is_signed && n > 0 && n < 8 && (a[n - 1] & 0x80))
        u |= ~UINT64_C(0) << (8 * n);
    return vm_push_new(vm, PK_INT, (int64_t)u);
}

static rwkv_status memo_put(struct pk_vm *vm, uint64_t index)
{
    if (!vm->sp)
        return vm_fail(vm, "stack underflow (nothing to memoize)");
    if (index >= PK_MAX_MEMO)
        return vm_fail(vm, "memo index %llu exceeds the limit %u", (unsigned long long)index, PK_MAX_MEMO);
    size_t old = vm->cap_memo;
    if (!grow((void **)&vm->memo, &vm->cap_memo, (size_t)index + 1, sizeof *vm->memo))
        return vm_nomem(vm);
    for (size_t i = old; i < vm->cap_memo; i++)
        vm->memo[i] = PK_NO_OBJ;
    vm->memo_count += vm->memo[index] == PK_NO_OBJ;
    vm->memo[index] = vm->stack[vm->sp - 1];
    return RWKV_OK;
}

static rwkv_status op_memo(struct pk_vm *vm, size_t n, int get)
{
    const uint8_t *a = NULL;
    rwkv_status st = vm_read(vm, n, &a);
    if (st)
        return st;
    uint64_t index = n == 0 ? vm->memo_count : n == 1 ? a[0] : zip_rd32(a); /* n == 0: MEMOIZE */
    if (!get)
        return memo_put(vm, index);
    if (index >= vm->cap_memo || vm->memo[index] == PK_NO_OBJ)
        return vm_fail(vm, "memo index %llu is out of range or unset", (unsigned long long)index);
    return vm_push(vm, vm->memo[index]);
}

static int str_eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Resolves module.name to one of the few callables a state dict needs; anything else is refused here,
 * before it could be used. */
static rwkv_status push_global(struct pk_vm *vm, const char *mod, size_t mlen, const char *name, size_t nlen)
{
    enum pk_global kind;
    const struct storage_kind *sk = NULL;
    if (str_eq(mod, mlen, "collections") && str_eq(name, nlen, "OrderedDict"))
        kind = G_ORDERED_DICT;
    else if (str_eq(mod, mlen, "torch._utils") && str_eq(name, nlen, "_rebuild_tensor_v2"))
        kind = G_REBUILD_TENSOR;
    else if (str_eq(mod, mlen, "torch._utils") && str_eq(name, nlen, "_rebuild_parameter"))
        kind = G_REBUILD_PARAMETER;
    else {
        kind = G_STORAGE;
        for (size_t i = 0; i < sizeof storage_kinds / sizeof storage_kinds[0] && !sk; i++)
            if (str_eq(mod, mlen, "torch") && str_eq(name, nlen, storage_kinds[i].cls))
                sk = &storage_kinds[i];
        if (!sk)
            return vm_fail(vm, "unsupported global '%.*s.%.*s' (only tensors, storages and OrderedDict are allowed)",
                           (int)(mlen > 100 ? 100 : mlen), mod, (int)(nlen > 100 ? 100 : nlen), name);
    }
    uint32_t idx = 0;
    rwkv_status st = vm_new(vm, PK_GLOBAL, &idx);
    if (st)
        return st;
    vm->obj[idx].u.g.kind = kind;
    vm->obj[idx].u.g.storage = sk;
    return vm_push(vm, idx);
}

static rwkv_status read_line(struct pk_vm *vm, const char **s, size_t *len)
{
    size_t left = vm->size - vm->pos;
    const uint8_t *nl = memchr(vm->p + vm->pos, '\n', left < PK_MAX_LINE ? left : PK_MAX_LINE);
    if (!nl)
        return vm_fail(vm, "unterminated or overlong name");
    *s = (const char *)vm->p + vm->pos;
    *len = (size_t)(nl - (vm->p + vm->pos));
    vm->pos += *len + 1;
    return RWKV_OK;
}

static rwkv_status op_global(struct pk_vm *vm)
{
    const char *mod = NULL, *name = NULL;
    size_t mlen = 0, nlen = 0;
    rwkv_status st = read_line(vm, &mod, &mlen);
    if (!st)
        st = read_line(vm, &name, &nlen);
    return st ? st : push_global(vm, mod, mlen, name, nlen);
}

static rwkv_status op_stack_global(struct pk_vm *vm)
{
    uint32_t m = 0, n = 0;
    rwkv_status st = vm_need(vm, 2);
    if (st)
        return st;
    vm_pop(vm, &n);
    vm_pop(vm, &m);
    if (vm->obj[m].type != PK_STR || vm->obj[n].type != PK_STR)
        return vm_fail(vm, "module and name are not strings");
    return push_global(vm, vm->obj[m].u.s.p, vm->obj[m].u.s.len, vm->obj[n].u.s.p, vm->obj[n].u.s.len);
}

static const struct pk_obj *item(const struct pk_vm *vm, const struct pk_obj *seq, size_t i)
{
    return &vm->obj[seq->u.seq.v[i]];
}

/* The bytes of storage `key`: entry "<archive>/data/<key>", which must hold exactly numel elements. */
static rwkv_status find_storage(struct pk_vm *vm, const struct pk_obj *key, const struct storage_kind *kind,
                                uint64_t numel, const uint8_t **data)
{
    static const char mid[] = "/data/";
    size_t len = vm->prefix_len + sizeof mid - 1 + key->u.s.len;
    if (!grow((void **)&vm->name_buf, &vm->name_cap, len, 1))
        return vm_nomem(vm);
    memcpy(vm->name_buf, vm->prefix, vm->prefix_len);
    memcpy(vm->name_buf + vm->prefix_len, mid, sizeof mid - 1);
    memcpy(vm->name_buf + vm->prefix_len + sizeof mid - 1, key->u.s.p, key->u.s.len);
    const struct rwkv_zip_entry *e = rwkv_zip_find(vm->zip, vm->name_buf, len);
    int klen = (int)(key->u.s.len > 100 ? 100 : key->u.s.len);
    if (!e)
        return vm_fail(vm, "storage '%.*s' has no zip entry '%.*s'", klen, key->u.s.p, (int)(len > 150 ? 150 : len),
                       vm->name_buf);
    if (numel > UINT64_MAX / kind->size || numel * kind->size != e->size)
        return vm_fail(vm, "storage '%.*s': %llu elements of %s but its zip entry has %llu bytes", klen, key->u.s.p,
                       (unsigned long long)numel, kind->torch_name, (unsigned long long)e->size);
    *data = vm->zip->base + e->data;
    return RWKV_OK;
}

/* BINPERSID with the id ('storage', torch.<Type>Storage, key, location, numel). */
static rwkv_status op_persid(struct pk_vm *vm)
{
    uint32_t pid = 0;
    rwkv_status st = vm_pop(vm, &pid);
    if (st)
        return st;
    const struct pk_obj *t = &vm->obj[pid];
    if (t->type != PK_TUPLE || t->u.seq.n != 5 || item(vm, t, 0)->type != PK_STR ||
        !str_eq(item(vm, t, 0)->u.s.p, item(vm, t, 0)->u.s.len, "storage") || item(vm, t, 1)->type != PK_GLOBAL ||
        item(vm, t, 1)->u.g.kind != G_STORAGE || item(vm, t, 2)->type != PK_STR || item(vm, t, 4)->type != PK_INT ||
        item(vm, t, 4)->u.i < 0)
        return vm_fail(vm, "persistent id is not ('storage', <Type>Storage, key, location, numel)");
    const struct storage_kind *kind = item(vm, t, 1)->u.g.storage;
    uint32_t key = t->u.seq.v[2];
    uint64_t numel = (uint64_t)item(vm, t, 4)->u.i;
    const uint8_t *data = NULL;
    uint32_t idx = 0;
    if ((st = find_storage(vm, &vm->obj[key], kind, numel, &data)) || (st = vm_new(vm, PK_STORAGE, &idx)))
        return st;
    vm->obj[idx].u.storage.kind = kind;
    vm->obj[idx].u.storage.data = data;
    vm->obj[idx].u.storage.numel = numel;
    vm->obj[idx].u.storage.key = key;
    return vm_push(vm, idx);
}

static rwkv_status op_reduce(struct pk_vm *vm)
{
    uint32_t args = 0, fn = 0, idx = 0;
    rwkv_status st = vm_need(vm, 2);
    if (st)
        return st;
    vm_pop(vm, &args);
    vm_pop(vm, &fn);
    const struct pk_obj *f = &vm->obj[fn], *a = &vm->obj[args];
    if (f->type != PK_GLOBAL || f->u.g.kind == G_STORAGE)
        return vm_fail(vm, "cannot call a %s", f->type == PK_GLOBAL ? "storage class" : pk_type_names[f->type]);
    if (a->type != PK_TUPLE)
        return vm_fail(vm, "arguments are a %s, not a tuple", pk_type_names[a->type]);
    size_t n = a->u.seq.n;
    switch (f->u.g.kind) {
    case G_ORDERED_DICT:
        if (n != 0)
            return vm_fail(vm, "OrderedDict with %zu arguments (expected none)", n);
        return vm_push_new(vm, PK_DICT, 0);
    case G_REBUILD_TENSOR:
        if (n != 6 && n != 7)
            return vm_fail(vm, "_rebuild_tensor_v2 with %zu arguments (expected 6 or 7)", n);
        if ((st = vm_new(vm, PK_TENSOR, &idx)))
            return st;
        vm->obj[idx].u.args = args;
        return vm_push(vm, idx);
    case G_REBUILD_PARAMETER: /* a Parameter is its tensor here */
        if (n != 3 || item(vm, a, 0)->type != PK_TENSOR)
            return vm_fail(vm, "_rebuild_parameter needs (tensor, requires_grad, hooks)");
        return vm_push(vm, a->u.seq.v[0]);
    case G_STORAGE:
        break;
    }
    return vm_fail(vm, "cannot call this class");
}

/* SETITEM(S) and APPEND(S): stack[base-1] is the container, stack[base..sp) the items. */
static rwkv_status op_fill(struct pk_vm *vm, int use_mark, int dict)
{
    size_t base = 0;
    rwkv_status st;
    if (use_mark) {
        if ((st = vm_pop_mark(vm, &base)))
            return st;
    } else {
        if ((st = vm_need(vm, dict ? 3 : 2)))
            return st;
        base = vm->sp - (dict ? 2 : 1);
    }
    if (base <= vm_fence(vm))
        return vm_fail(vm, "stack underflow (no container below the items)");
    uint32_t c = vm->stack[base - 1];
    if (vm->obj[c].type != (dict ? PK_DICT : PK_LIST))
        return vm_fail(vm, "target is a %s, not a %s", pk_type_names[vm->obj[c].type], dict ? "dict" : "list");
    if (dict && (vm->sp - base) % 2)
        return vm_fail(vm, "odd number of items for a dict");
    for (size_t i = base; i < vm->sp && !st; i++)
        st = seq_add(vm, c, vm->stack[i]);
    vm->sp = base;
    return st;
}

/* BUILD sets state on an object (OrderedDict._metadata of a module state dict): not needed, dropped. */
static rwkv_status op_build(struct pk_vm *vm)
{
    uint32_t state = 0;
    rwkv_status st = vm_need(vm, 2);
    if (!st)
        vm_pop(vm, &state);
    return st;
}

static rwkv_status op_proto(struct pk_vm *vm)
{
    const uint8_t *a = NULL;
    rwkv_status st = vm_read(vm, 1, &a);
    if (!st && (a[0] < 2 || a[0] > 5))
        return vm_fail(vm, "pickle protocol %u is not supported (2 to 5)", a[0]);
    return st;
}

/* Protocol 4+ frames only group opcodes for buffered reading: skip the length, check it fits. */
static rwkv_status op_frame(struct pk_vm *vm)
{
    const uint8_t *a = NULL;
    rwkv_status st = vm_read(vm, 8, &a);
    if (!st && zip_rd64(a) > vm->size - vm->pos)
        return vm_fail(vm, "frame of %llu bytes runs past the end of data.pkl", (unsigned long long)zip_rd64(a));
    return st;
}

static rwkv_status op_stop(struct pk_vm *vm, uint32_t *result)
{
    rwkv_status st = vm_pop(vm, result);
    vm->done = !st;
    return st;
}

static rwkv_status vm_step(struct pk_vm *vm, uint32_t *result)
{
    switch (vm->op) {
    case 0x80: return op_proto(vm);
    case 0x95: return op_frame(vm);
    case '}': return vm_push_new(vm, PK_DICT, 0);
    case ']': return vm_push_new(vm, PK_LIST, 0);
    case ')': return vm_push_new(vm, PK_TUPLE, 0);
    case 'N': return vm_push_new(vm, PK_NONE, 0);
    case 0x88: return vm_push_new(vm, PK_BOOL, 1);
    case 0x89: return vm_push_new(vm, PK_BOOL, 0);
    case '(': return op_mark(vm);
    case 'X': return op_string(vm, 4);
    case 0x8c: return op_string(vm, 1);
    case 0x8d: return op_string(vm, 8);
    case 'q': return op_memo(vm, 1, 0);
    case 'r': return op_memo(vm, 4, 0);
    case 0x94: return op_memo(vm, 0, 0);
    case 'h': return op_memo(vm, 1, 1);
    case 'j': return op_memo(vm, 4, 1);
    case 'J': return op_int(vm, 4, 1);
    case 'K': return op_int(vm, 1, 0);
    case 'M': return op_int(vm, 2, 0);
    case 0x8a: return op_int(vm, 1, 1);
    case 't': return op_mark_tuple(vm);
    case 0x85: return op_tuple_n(vm, 1);
    case 0x86: return op_tuple_n(vm, 2);
    case 0x87: return op_tuple_n(vm, 3);
    case 'c': return op_global(vm);
    case 0x93: return op_stack_global(vm);
    case 'Q': return op_persid(vm);
    case 'R': return op_reduce(vm);
    case 's': return op_fill(vm, 0, 1);
    case 'u': return op_fill(vm, 1, 1);
    case 'a': return op_fill(vm, 0, 0);
    case 'e': return op_fill(vm, 1, 0);
    case 'b': return op_build(vm);
    case '.': return op_stop(vm, result);
    default:
        return rwkv_fail(vm->err, RWKV_ERR_FORMAT, "%s: data.pkl offset %zu: unsupported pickle opcode 0x%02x (%s)",
                         vm->path, vm->op_pos, vm->op, op_name(vm->op));
    }
}

static rwkv_status vm_run(struct pk_vm *vm, uint32_t *result)
{
    while (!vm->done) {
        if (vm->pos >= vm->size)
            return rwkv_fail(vm->err, RWKV_ERR_FORMAT, "%s: data.pkl ends without STOP (truncated?)", vm->path);
        vm->op_pos = vm->pos;
        vm->op = vm->p[vm->pos++];
        rwkv_status st = vm_step(vm, result);
        if (st)
            return st;
    }
    return RWKV_OK;
}

static void vm_free(struct pk_vm *vm)
{
    for (size_t i = 0; i < vm->n_obj; i++)
        if (vm->obj[i].type == PK_TUPLE || vm->obj[i].type == PK_LIST || vm->obj[i].type == PK_DICT)
            free(vm->obj[i].u.seq.v);
    free(vm->obj);
    free(vm->stack);
    free(vm->memo);
    free(vm->name_buf);
}

/* ================================ tensors ================================ */

struct geometry {
    int ndim;
    int64_t size[RWKV_MAX_DIMS], stride[RWKV_MAX_DIMS], offset;
    uint64_t numel;
    int contiguous;
};

#define GEOM_LIMIT (UINT64_C(1) << 62) /* element indices beyond this are absurd and risk overflow */

static int read_int_tuple(const struct pk_vm *vm, const struct pk_obj *t, int64_t *out, int *n)
{
    if (t->type != PK_TUPLE || t->u.seq.n > RWKV_MAX_DIMS)
        return 0;
    for (size_t i = 0; i < t->u.seq.n; i++) {
        if (item(vm, t, i)->type != PK_INT)
            return 0;
        out[i] = item(vm, t, i)->u.i;
    }
    *n = (int)t->u.seq.n;
    return 1;
}

/* Checks size/stride/offset against the storage: every element index must fall inside it. */
static rwkv_status check_geometry(struct geometry *g, uint64_t storage_numel, const char *path, const char *name,
                                  struct rwkv_error *err)
{
    uint64_t numel = 1, last = (uint64_t)g->offset;
    for (int d = 0; d < g->ndim; d++) {
        if (g->size[d] < 0 || g->stride[d] < 0)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': negative size or stride in dimension %d", path,
                             name, d);
        if (g->size[d] == 0)
            numel = 0;
    }
    if (g->offset < 0 || (uint64_t)g->offset > storage_numel)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: tensor '%s': storage offset %lld beyond its storage of %llu elements", path, name,
                         (long long)g->offset, (unsigned long long)storage_numel);
    for (int d = 0; d < g->ndim && numel; d++) {
        uint64_t s = (uint64_t)g->size[d], stride = (uint64_t)g->stride[d];
        if (s > GEOM_LIMIT / numel || (stride && s - 1 > GEOM_LIMIT / stride) || (s - 1) * stride > GEOM_LIMIT - last)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': size or stride overflows", path, name);
        numel *= s;
        last += (s - 1) * stride;
    }
    if (numel && last >= storage_numel)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: tensor '%s': element index %llu lies beyond its storage of %llu elements", path, name,
                         (unsigned long long)last, (unsigned long long)storage_numel);
    if (numel > storage_numel)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: tensor '%s': %llu elements from a storage of %llu (overlapping strides are not "
                         "supported)",
                         path, name, (unsigned long long)numel, (unsigned long long)storage_numel);
    uint64_t expect = 1;
    g->contiguous = 1;
    for (int d = g->ndim; d-- > 0;) {
        if (g->size[d] != 1 && (uint64_t)g->stride[d] != expect)
            g->contiguous = 0;
        expect *= (uint64_t)g->size[d];
    }
    g->numel = numel;
    return RWKV_OK;
}

/* Row-major copy of a strided view (the element order a contiguous tensor would have). */
static void gather(const struct geometry *g, const uint8_t *src, size_t esize, uint8_t *dst)
{
    int64_t idx[RWKV_MAX_DIMS] = {0};
    for (uint64_t i = 0; i < g->numel; i++) {
        uint64_t off = (uint64_t)g->offset;
        for (int d = 0; d < g->ndim; d++)
            off += (uint64_t)idx[d] * (uint64_t)g->stride[d];
        memcpy(dst + i * esize, src + off * esize, esize);
        for (int d = g->ndim; d-- > 0;) {
            if (++idx[d] < g->size[d])
                break;
            idx[d] = 0;
        }
    }
}

/* Fills `out` (whose name is set) from the _rebuild_tensor_v2 arguments of tensor object `obj`. Views
 * that are not contiguous are copied; the copies may not add up to more than `*budget` bytes, so that a
 * small file cannot ask for huge memory by aliasing one storage many times. */
static rwkv_status make_tensor(const struct pk_vm *vm, const struct pk_obj *obj, const char *name,
                               struct rwkv_tensor *out, struct rwkv_tensor_table *t, size_t *budget,
                               struct rwkv_error *err)
{
    const char *path = vm->path;
    const struct pk_obj *args = &vm->obj[obj->u.args];
    const struct pk_obj *storage = item(vm, args, 0), *offset = item(vm, args, 1);
    struct geometry g = {0};
    int n_stride = -1;
    if (storage->type != PK_STORAGE || offset->type != PK_INT)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': bad _rebuild_tensor_v2 arguments", path, name);
    if (!read_int_tuple(vm, item(vm, args, 2), g.size, &g.ndim) ||
        !read_int_tuple(vm, item(vm, args, 3), g.stride, &n_stride) || n_stride != g.ndim)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': size and stride must be tuples of at most %d ints",
                         path, name, RWKV_MAX_DIMS);
    const struct storage_kind *kind = storage->u.storage.kind;
    if (kind->dtype == RWKV_DTYPE_COUNT)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (float32, float16, "
                         "bfloat16 only)", path, name, kind->torch_name);
    g.offset = offset->u.i;
    rwkv_status st = check_geometry(&g, storage->u.storage.numel, path, name, err);
    if (st)
        return st;
    out->dtype = kind->dtype;
    out->ndim = g.ndim;
    memcpy(out->shape, g.size, sizeof g.size);
    out->nbytes = (size_t)g.numel * kind->size; /* <= the storage's bytes, which are in the file */
    if (g.contiguous) {
        out->data = storage->u.storage.data + (size_t)g.offset * kind->size;
        return RWKV_OK;
    }
    if (out->nbytes > *budget)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': strided copies would exceed the file size "
                         "(aliased views?)", path, name);
    uint8_t *copy = malloc(out->nbytes ? out->nbytes : 1);
    if (!copy)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: tensor '%s': out of memory", path, name);
    t->owned[t->n_owned++] = copy;
    *budget -= out->nbytes;
    gather(&g, storage->u.storage.data, kind->size, copy);
    out->data = copy;
    return RWKV_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static rwkv_status check_unique(const struct rwkv_tensor_table *t, struct rwkv_error *err)
{
    if (t->n_tensors < 2)
        return RWKV_OK;
    const char **names = malloc(t->n_tensors * sizeof *names);
    if (!names)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", t->path);
    for (size_t i = 0; i < t->n_tensors; i++)
        names[i] = t->tensors[i].name;
    qsort(names, t->n_tensors, sizeof *names, cmp_tensor_name);
    rwkv_status st = RWKV_OK;
    char q[RWKV_QUOTE_CAP];
    for (size_t i = 1; i < t->n_tensors && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' appears twice", t->path,
                           rwkv_quote_bytes(q, sizeof q, names[i], strlen(names[i])));
    free(names);
    return st;
}

/* The dict to read: the unpickled object itself, or its "state_dict" entry (training checkpoints). */
static const struct pk_obj *state_dict(const struct pk_vm *vm, uint32_t root)
{
    const struct pk_obj *d = &vm->obj[root];
    if (d->type != PK_DICT)
        return d;
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const struct pk_obj *k = item(vm, d, i), *v = item(vm, d, i + 1);
        if (k->type == PK_STR && str_eq(k->u.s.p, k->u.s.len, "state_dict") && v->type == PK_DICT)
            return v;
    }
    return d;
}

static rwkv_status collect(const struct pk_vm *vm, uint32_t root, struct rwkv_tensor_table *t,
                           struct rwkv_error *err)
{
    const struct pk_obj *d = state_dict(vm, root);
    if (d->type != PK_DICT)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: data.pkl holds a %s, not a dict of tensors", t->path,
                         pk_type_names[d->type]);
    size_t n = d->u.seq.n / 2, budget = t->map.size;
    t->tensors = calloc(n ? n : 1, sizeof *t->tensors);
    t->owned = calloc(n ? n : 1, sizeof *t->owned);
    if (!t->tensors || !t->owned)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", t->path);
    for (size_t i = 0; i < n; i++) {
        const struct pk_obj *k = item(vm, d, 2 * i), *v = item(vm, d, 2 * i + 1);
        if (k->type != PK_STR)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: a state dict key is a %s, not a string", t->path,
                             pk_type_names[k->type]);
        if (memchr(k->u.s.p, '\0', k->u.s.len))
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor name with a NUL byte", t->path);
        struct rwkv_tensor *out = &t->tensors[t->n_tensors];
        char q[RWKV_QUOTE_CAP]; /* the name, for messages */
        rwkv_quote_bytes(q, sizeof q, k->u.s.p, k->u.s.len);
        if (!(out->name = copy_string(k->u.s.p, k->u.s.len)))
            return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", t->path);
        t->n_tensors++;
        if (v->type != PK_TENSOR)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: state dict entry '%s' is not a tensor (%s)", t->path, q,
                             pk_type_names[v->type]);
        rwkv_status st = make_tensor(vm, v, q, out, t, &budget, err);
        if (st)
            return st;
    }
    return check_unique(t, err);
}

/* ================================ entry points ================================ */

/* Files written on big-endian machines say so in "<archive>/byteorder"; their storages would need swapping. */
static rwkv_status check_byteorder(const struct rwkv_zip *z, const struct rwkv_zip_entry *pkl, size_t prefix_len,
                                   struct rwkv_error *err)
{
    char name[PK_MAX_LINE + 16];
    static const char leaf[] = "/byteorder";
    if (prefix_len > PK_MAX_LINE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: archive folder name longer than %d bytes", z->path, PK_MAX_LINE);
    memcpy(name, pkl->name, prefix_len);
    memcpy(name + prefix_len, leaf, sizeof leaf - 1);
    const struct rwkv_zip_entry *e = rwkv_zip_find(z, name, prefix_len + sizeof leaf - 1);
    char q[24];
    if (e && !(e->size == 6 && memcmp(z->base + e->data, "little", 6) == 0))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: byteorder is '%s'; only little-endian checkpoints are "
                         "supported", z->path, rwkv_quote_bytes(q, sizeof q, z->base + e->data, (size_t)e->size));
    return RWKV_OK;
}

/* Before PyTorch 1.6, torch.save wrote a bare pickle stream that starts with a pickled magic number. */
static int is_legacy_format(const uint8_t *p, size_t size)
{
    return size >= 3 && p[0] == 0x80 && p[1] == 2 && p[2] == 0x8a;
}

rwkv_status rwkv_pth_parse(struct rwkv_tensor_table *t, struct rwkv_error *err)
{
    if (is_legacy_format(t->map.data, t->map.size))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "%s: legacy torch.save format (PyTorch < 1.6, not a zip archive) is not supported; "
                         "re-save it with a current PyTorch",
                         t->path);
    struct rwkv_zip z;
    const struct rwkv_zip_entry *pkl = NULL;
    size_t prefix_len = 0;
    rwkv_status st = rwkv_zip_open(&z, t->path, t->map.data, t->map.size, err);
    if (st)
        return st;
    st = find_pickle(&z, &pkl, &prefix_len, err);
    if (!st)
        st = check_byteorder(&z, pkl, prefix_len, err);
    if (!st) {
        struct pk_vm vm = {.path = t->path, .zip = &z, .prefix = pkl->name, .prefix_len = prefix_len,
                           .p = z.base + pkl->data, .size = (size_t)pkl->size, .err = err};
        uint32_t root = 0;
        st = vm_run(&vm, &root);
        if (!st)
            st = collect(&vm, root, t, err);
        vm_free(&vm);
    }
    rwkv_zip_close(&z);
    return st;
}

rwkv_status rwkv_pth_open(const char *path, struct rwkv_tensor_table *out, struct rwkv_error *err)
{
    return rwkv_table_open_with(path, rwkv_pth_parse, out, err);
}
