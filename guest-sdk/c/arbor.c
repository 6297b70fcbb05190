/*
 * arbor.c: the C SDK over the wit-bindgen C bindings; see arbor.h.
 *
 * Memory rules of the bindings that this file follows:
 * - strings and lists the host returns are allocated with cabi_realloc
 *   (malloc) and are ours to free; an empty one has no allocation behind its
 *   pointer, so it must never be freed or reallocated;
 * - arguments we pass are only read during the call (the host copies them);
 * - the exported `run` owns its input, and the post-return hook frees the
 *   output (or error) string with free() when it is not empty.
 */
#include "arbor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bindings are generated with --no-object-file (the world's type reaches
 * the linker through --component-type instead), but program.c still
 * references the object's force-link symbol. */
void __component_type_object_force_link_program(void) {}

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */
/* ------------------------------------------------------------------------ */

/* Out of memory is not recoverable inside a guest: trap, as cabi_realloc does. */
static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */
/* ------------------------------------------------------------------------ */

arbor_str arbor_str_c(const char *s) {
    return (arbor_str){s ? s : "", s ? strlen(s) : 0};
}
arbor_str arbor_strn(const char *ptr, size_t len) {
    return (arbor_str){len ? ptr : "", len};
}
arbor_str arbor_str_of(const arbor_string *s) {
    return (arbor_str){s->ptr ? s->ptr : "", s->len};
}
arbor_str arbor_str_id(arbor_str s) { return s; }
arbor_str arbor_str_of_value(arbor_string s) { return arbor_str_of(&s); }

const char *arbor_cstr(const arbor_string *s) { return s->ptr ? s->ptr : ""; }

bool arbor_str_eq(arbor_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

/* Makes room for `extra` more bytes plus the NUL. */
static void reserve(arbor_string *s, size_t extra) {
    if (extra > SIZE_MAX - s->len - 1) abort();
    size_t need = s->len + extra + 1;
    if (need <= s->cap) return;
    size_t cap = s->cap ? s->cap : 16;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    s->ptr = xrealloc(s->ptr, cap);
    s->cap = cap;
}

void arbor_string_push_str(arbor_string *out, arbor_str text) {
    reserve(out, text.len);
    if (text.len) memcpy(out->ptr + out->len, text.ptr, text.len);
    out->len += text.len;
    out->ptr[out->len] = 0;
}

void arbor_string_push_byte(arbor_string *out, char c) {
    reserve(out, 1);
    out->ptr[out->len++] = c;
    out->ptr[out->len] = 0;
}

void arbor_string_push_u64(arbor_string *out, uint64_t n) {
    char buf[20];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    arbor_string_push_str(out, arbor_strn(buf + i, sizeof buf - i));
}

static void vprintf_to(arbor_string *out, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) abort();
    reserve(out, (size_t)n);
    vsnprintf(out->ptr + out->len, (size_t)n + 1, fmt, ap);
    out->len += (size_t)n;
}

void arbor_string_printf(arbor_string *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf_to(out, fmt, ap);
    va_end(ap);
}

arbor_string arbor_string_copy(arbor_str text) {
    arbor_string s = ARBOR_STRING_INIT;
    arbor_string_push_str(&s, text);
    return s;
}

void arbor_string_clear(arbor_string *s) {
    s->len = 0;
    if (s->ptr) s->ptr[0] = 0;
}

void arbor_string_free(arbor_string *s) {
    free(s->ptr);
    *s = (arbor_string)ARBOR_STRING_INIT;
}

/* Gives an empty string a buffer, so that its ptr is a valid C string. */
static void ensure_buf(arbor_string *s) {
    if (!s->ptr) {
        reserve(s, 0);
        s->ptr[0] = 0;
    }
}

/* Takes a string the host returned (malloc'd, not NUL-terminated, or no
 * allocation at all when empty) into *out, replacing its content. */
static void take_host_string(program_string_t *h, arbor_string *out) {
    arbor_string_free(out);
    if (h->len == 0) {
        ensure_buf(out);
        return;
    }
    out->ptr = xrealloc(h->ptr, h->len + 1);
    out->ptr[h->len] = 0;
    out->len = h->len;
    out->cap = h->len + 1;
    h->ptr = NULL;
    h->len = 0;
}

/* ------------------------------------------------------------------------ */
/* Unicode                                                                   */
/* ------------------------------------------------------------------------ */

/* Decodes the UTF-8 sequence at s[i] (strictly: no overlongs, surrogates or
 * values above U+10FFFF). Returns its length, or 0 if it is malformed. */
static size_t utf8_decode(const unsigned char *s, size_t len, size_t i, uint32_t *cp) {
    unsigned char b = s[i];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t n;
    uint32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) { n = 2; c = b & 0x1F; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { n = 3; c = b & 0x0F; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF4) { n = 4; c = b & 0x07; min = 0x10000; }
    else return 0;
    if (len - i < n) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

bool arbor_utf8_valid(arbor_str s) {
    const unsigned char *p = (const unsigned char *)s.ptr;
    uint32_t cp;
    for (size_t i = 0; i < s.len;) {
        if (p[i] < 0x80) { i++; continue; }
        size_t n = utf8_decode(p, s.len, i, &cp);
        if (!n) return false;
        i += n;
    }
    return true;
}

bool arbor_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Length of the whitespace character at s[i], or 0 if there is none there. */
static size_t ws_at(arbor_str s, size_t i) {
    uint32_t cp;
    size_t n = utf8_decode((const unsigned char *)s.ptr, s.len, i, &cp);
    return n && arbor_is_whitespace(cp) ? n : 0;
}

/* Length of the whitespace character that ends at s[end), or 0. */
static size_t ws_before(arbor_str s, size_t end) {
    size_t start = end;
    /* Step back over at most 3 continuation bytes to the lead byte. */
    while (start > 0 && end - start < 4) {
        start--;
        if (((unsigned char)s.ptr[start] & 0xC0) != 0x80) break;
    }
    size_t n = ws_at(s, start);
    return n == end - start ? n : 0;
}

arbor_str arbor_trim_str(arbor_str s) {
    size_t a = 0, b = s.len, n;
    while (a < b && (n = ws_at(s, a))) a += n;
    while (b > a && (n = ws_before(s, b))) b -= n;
    return arbor_strn(s.ptr + a, b - a);
}

bool arbor_next_word(arbor_str *rest, arbor_str *word) {
    arbor_str s = *rest;
    size_t i = 0, n;
    while (i < s.len && (n = ws_at(s, i))) i += n;
    if (i == s.len) {
        *rest = arbor_strn(s.ptr + s.len, 0);
        return false;
    }
    size_t start = i;
    while (i < s.len && !ws_at(s, i)) {
        uint32_t cp;
        size_t m = utf8_decode((const unsigned char *)s.ptr, s.len, i, &cp);
        i += m ? m : 1;
    }
    *word = arbor_strn(s.ptr + start, i - start);
    *rest = arbor_strn(s.ptr + i, s.len - i);
    return true;
}

static const char HEX[] = "0123456789abcdef";

static void push_hex_escape(arbor_string *out, uint32_t c) {
    char buf[8];
    size_t i = sizeof buf;
    do {
        buf[--i] = HEX[c & 15];
        c >>= 4;
    } while (c);
    arbor_push(out, "\\u{");
    arbor_string_push_str(out, arbor_strn(buf + i, sizeof buf - i));
    arbor_string_push_byte(out, '}');
}

void arbor_string_push_debug(arbor_string *out, arbor_str s) {
    const unsigned char *p = (const unsigned char *)s.ptr;
    arbor_string_push_byte(out, '"');
    for (size_t i = 0; i < s.len;) {
        uint32_t c;
        size_t n = utf8_decode(p, s.len, i, &c);
        if (!n) { /* not UTF-8: show the byte */
            arbor_push(out, "\\x");
            arbor_string_push_byte(out, HEX[p[i] >> 4]);
            arbor_string_push_byte(out, HEX[p[i] & 15]);
            i++;
            continue;
        }
        switch (c) {
        case 0: arbor_push(out, "\\0"); break;
        case '\t': arbor_push(out, "\\t"); break;
        case '\r': arbor_push(out, "\\r"); break;
        case '\n': arbor_push(out, "\\n"); break;
        case '"': arbor_push(out, "\\\""); break;
        case '\\': arbor_push(out, "\\\\"); break;
        default:
            /* Controls, non-ASCII spaces, soft hyphen, zero-width/bidi
             * format characters and the BOM: the non-printable characters
             * of Rust's table that matter in practice (the rest of the
             * table, unassigned and private-use code points, prints raw). */
            if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD || c == 0x1680 ||
                c == 0x180E || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
                (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF ||
                /* the common combining marks (grapheme extenders) */
                (c >= 0x300 && c <= 0x36F) || (c >= 0x1AB0 && c <= 0x1AFF) ||
                (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x20D0 && c <= 0x20FF) ||
                (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFE20 && c <= 0xFE2F))
                push_hex_escape(out, c);
            else
                arbor_string_push_str(out, arbor_strn(s.ptr + i, n));
        }
        i += n;
    }
    arbor_string_push_byte(out, '"');
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static arbor_string g_error = ARBOR_STRING_INIT;
static arbor_error_kind g_error_kind = ARBOR_OK;

const char *arbor_error(void) { return arbor_cstr(&g_error); }
arbor_error_kind arbor_error_kind_get(void) { return g_error_kind; }

void arbor_clear_error(void) {
    arbor_string_clear(&g_error);
    g_error_kind = ARBOR_OK;
}

/* Starts a new error message (the SDK builds its messages without printf,
 * which would add its formatting code to every component). */
static arbor_string *begin_error(arbor_error_kind kind) {
    arbor_string_clear(&g_error);
    ensure_buf(&g_error);
    g_error_kind = kind;
    return &g_error;
}

static bool set_error(arbor_error_kind kind, const char *msg) {
    arbor_push(begin_error(kind), msg);
    return false;
}

bool arbor_fail(const char *fmt, ...) {
    arbor_string_clear(&g_error);
    va_list ap;
    va_start(ap, fmt);
    vprintf_to(&g_error, fmt, ap);
    va_end(ap);
    g_error_kind = ARBOR_ERR_PROGRAM;
    return false;
}

bool arbor_fail_str(arbor_str text) {
    arbor_string_push_str(begin_error(ARBOR_ERR_PROGRAM), text);
    return false;
}

bool arbor_fail_with(arbor_string *msg) {
    arbor_string_free(&g_error);
    g_error = *msg;
    *msg = (arbor_string)ARBOR_STRING_INIT;
    if (!g_error.ptr) begin_error(ARBOR_ERR_PROGRAM);
    g_error_kind = ARBOR_ERR_PROGRAM;
    return false;
}

/* Turns the WIT error variant into the Rust SDK's message and frees it. */
static bool lm_error(arbor_lm_lm_error_t *e) {
    static const struct {
        const char *prefix;
        arbor_error_kind kind;
    } kinds[] = {
        [ARBOR_LM_LM_ERROR_BAD_CONSTRAINT] = {"bad constraint", ARBOR_ERR_BAD_CONSTRAINT},
        [ARBOR_LM_LM_ERROR_LIMIT_EXCEEDED] = {"limit exceeded", ARBOR_ERR_LIMIT_EXCEEDED},
        [ARBOR_LM_LM_ERROR_INVALID_ARGUMENT] = {"invalid argument", ARBOR_ERR_INVALID_ARGUMENT},
        [ARBOR_LM_LM_ERROR_UNKNOWN_VARIABLE] = {"unknown variable", ARBOR_ERR_UNKNOWN_VARIABLE},
        [ARBOR_LM_LM_ERROR_CANCELLED] = {"cancelled", ARBOR_ERR_CANCELLED},
        [ARBOR_LM_LM_ERROR_ENGINE] = {"engine error", ARBOR_ERR_ENGINE},
    };
    if (e->tag >= sizeof kinds / sizeof kinds[0]) {
        arbor_push(begin_error(ARBOR_ERR_ENGINE), "engine error: unknown error case ");
        arbor_string_push_u64(&g_error, e->tag);
        return false;
    }
    arbor_string_clear(&g_error);
    arbor_push(&g_error, kinds[e->tag].prefix);
    if (e->tag != ARBOR_LM_LM_ERROR_CANCELLED) {
        /* Every other case carries a message; the union's members all share
         * one layout, so any of them reads it. */
        program_string_t *m = &e->val.engine;
        arbor_push(&g_error, ": ");
        arbor_string_push_str(&g_error, arbor_strn((const char *)m->ptr, m->len));
    }
    g_error_kind = kinds[e->tag].kind;
    arbor_lm_lm_error_free(e);
    return false;
}

/* A WIT string argument viewing `s`; refuses invalid UTF-8, which would make
 * the host trap the whole component instead of returning an error. */
static bool wit_arg(arbor_str s, const char *what, program_string_t *out) {
    if (!arbor_utf8_valid(s)) {
        arbor_string *m = begin_error(ARBOR_ERR_INVALID_ARGUMENT);
        arbor_push(m, "invalid argument: ");
        arbor_push(m, what);
        arbor_push(m, " is not valid UTF-8");
        return false;
    }
    out->ptr = (uint8_t *)s.ptr;
    out->len = s.len;
    return true;
}

/* ------------------------------------------------------------------------ */
/* States                                                                    */
/* ------------------------------------------------------------------------ */

/* States live in a list so that the end of a run can drop the ones the
 * program did not free. */
struct arbor_state {
    arbor_lm_lm_own_state_t own;
    arbor_state *prev, *next;
};

static arbor_state *g_states = NULL;

static arbor_state *track(arbor_lm_lm_own_state_t own) {
    arbor_state *s = xrealloc(NULL, sizeof *s);
    s->own = own;
    s->prev = NULL;
    s->next = g_states;
    if (g_states) g_states->prev = s;
    g_states = s;
    return s;
}

static arbor_lm_lm_borrow_state_t B(const arbor_state *s) {
    return arbor_lm_lm_borrow_state(s->own);
}

arbor_lm_lm_borrow_state_t arbor_state_handle(const arbor_state *s) { return B(s); }

arbor_state *arbor_state_new(void) {
    arbor_lm_lm_own_state_t own;
    arbor_lm_lm_error_t err;
    if (!arbor_lm_lm_static_state_create(&own, &err)) {
        lm_error(&err);
        return NULL;
    }
    return track(own);
}

void arbor_state_free(arbor_state *s) {
    if (!s) return;
    if (s->prev) s->prev->next = s->next;
    else g_states = s->next;
    if (s->next) s->next->prev = s->prev;
    arbor_lm_lm_state_drop_own(s->own);
    free(s);
}

bool arbor_append_str(arbor_state *s, arbor_str text) {
    program_string_t t;
    arbor_lm_lm_error_t err;
    if (!wit_arg(text, "text", &t)) return false;
    return arbor_lm_lm_method_state_append(B(s), &t, &err) || lm_error(&err);
}

bool arbor_message_str(arbor_state *s, arbor_role role, arbor_str content) {
    program_string_t t;
    arbor_lm_lm_error_t err;
    if (!wit_arg(content, "content", &t)) return false;
    return arbor_lm_lm_method_state_append_message(B(s), (arbor_lm_lm_role_t)role, &t, &err) ||
           lm_error(&err);
}

bool arbor_begin(arbor_state *s, arbor_role role) {
    arbor_lm_lm_error_t err;
    return arbor_lm_lm_method_state_begin_message(B(s), (arbor_lm_lm_role_t)role, &err) ||
           lm_error(&err);
}

bool arbor_end(arbor_state *s) {
    arbor_lm_lm_error_t err;
    return arbor_lm_lm_method_state_end_message(B(s), &err) || lm_error(&err);
}

bool arbor_generate(arbor_state *s, const char *name, arbor_gen o) {
    program_string_t n, stops[ARBOR_GEN_MAX_STOP];
    arbor_lm_lm_generate_options_t opts;
    arbor_lm_lm_error_t err;
    size_t nstop = 0;
    if (!wit_arg(arbor_str_c(name), "name", &n)) return false;
    while (nstop < ARBOR_GEN_MAX_STOP && o.stop[nstop]) {
        if (!wit_arg(arbor_str_c(o.stop[nstop]), "stop string", &stops[nstop])) return false;
        nstop++;
    }
    opts.max_tokens = o.max_tokens;
    opts.temperature = o.temperature;
    opts.top_p = o.top_p;
    opts.top_k = o.top_k;
    opts.stop.ptr = stops;
    opts.stop.len = nstop;
    opts.seed.is_some = o.seed.set;
    opts.seed.val = o.seed.value;
    opts.constraint.is_some = false;
    if (o.regex && o.json_schema) {
        return set_error(ARBOR_ERR_INVALID_ARGUMENT,
                         "invalid argument: set at most one of regex and json_schema");
    }
    if (o.regex) {
        opts.constraint.is_some = true;
        opts.constraint.val.tag = ARBOR_LM_LM_CONSTRAINT_REGEX;
        if (!wit_arg(arbor_str_c(o.regex), "regex", &opts.constraint.val.val.regex)) return false;
    } else if (o.json_schema) {
        opts.constraint.is_some = true;
        opts.constraint.val.tag = ARBOR_LM_LM_CONSTRAINT_JSON_SCHEMA;
        if (!wit_arg(arbor_str_c(o.json_schema), "json schema", &opts.constraint.val.val.json_schema))
            return false;
    }
    return arbor_lm_lm_method_state_generate(B(s), &n, &opts, &err) || lm_error(&err);
}

bool arbor_assistant_generate(arbor_state *s, const char *name, arbor_gen options) {
    return arbor_begin(s, ARBOR_ASSISTANT) && arbor_generate(s, name, options) && arbor_end(s);
}

bool arbor_select(arbor_state *s, const char *name, const char *const *choices, size_t n) {
    program_string_t nm;
    program_list_string_t list;
    arbor_lm_lm_error_t err;
    bool ok;
    if (!wit_arg(arbor_str_c(name), "name", &nm)) return false;
    if (n > SIZE_MAX / sizeof(program_string_t)) abort();
    list.ptr = xrealloc(NULL, n * sizeof(program_string_t));
    list.len = n;
    for (size_t i = 0; i < n; i++) {
        if (!wit_arg(arbor_str_c(choices[i]), "choice", &list.ptr[i])) {
            free(list.ptr);
            return false;
        }
    }
    ok = arbor_lm_lm_method_state_select(B(s), &nm, &list, &err) || lm_error(&err);
    free(list.ptr);
    return ok;
}

bool arbor_fork(arbor_state *s, uint32_t n, arbor_state **out) {
    arbor_lm_lm_list_own_state_t list;
    arbor_lm_lm_error_t err;
    if (!arbor_lm_lm_method_state_fork(B(s), n, &list, &err)) return lm_error(&err);
    if (list.len != n) {
        /* The host promised n states: drop what came rather than guess. */
        for (size_t i = 0; i < list.len; i++) arbor_lm_lm_state_drop_own(list.ptr[i]);
        if (list.len) free(list.ptr);
        arbor_string *m = begin_error(ARBOR_ERR_ENGINE);
        arbor_push(m, "engine error: fork(");
        arbor_string_push_u64(m, n);
        arbor_push(m, ") returned ");
        arbor_string_push_u64(m, list.len);
        arbor_push(m, " states");
        return false;
    }
    for (size_t i = 0; i < n; i++) out[i] = track(list.ptr[i]);
    if (list.len) free(list.ptr);
    return true;
}

bool arbor_text(arbor_state *s, arbor_string *out) {
    program_string_t t;
    arbor_lm_lm_error_t err;
    if (!arbor_lm_lm_method_state_text(B(s), &t, &err)) return lm_error(&err);
    take_host_string(&t, out);
    return true;
}

bool arbor_variable(arbor_state *s, const char *name, arbor_string *out) {
    program_string_t n, t;
    arbor_lm_lm_error_t err;
    if (!wit_arg(arbor_str_c(name), "name", &n)) return false;
    if (!arbor_lm_lm_method_state_variable(B(s), &n, &t, &err)) return lm_error(&err);
    take_host_string(&t, out);
    return true;
}

bool arbor_choice(arbor_state *s, const char *name, uint32_t *out) {
    program_string_t n;
    arbor_lm_lm_error_t err;
    if (!wit_arg(arbor_str_c(name), "name", &n)) return false;
    return arbor_lm_lm_method_state_choice(B(s), &n, out, &err) || lm_error(&err);
}

bool arbor_token_count(arbor_state *s, uint32_t *out) {
    arbor_lm_lm_error_t err;
    return arbor_lm_lm_method_state_token_count(B(s), out, &err) || lm_error(&err);
}

bool arbor_join(arbor_state *const *states, size_t n) {
    arbor_lm_lm_borrow_state_t small[16];
    arbor_lm_lm_list_borrow_state_t list;
    arbor_lm_lm_error_t err;
    bool ok;
    if (n > SIZE_MAX / sizeof small[0]) abort();
    list.ptr = n <= 16 ? small : xrealloc(NULL, n * sizeof small[0]);
    list.len = n;
    for (size_t i = 0; i < n; i++) list.ptr[i] = B(states[i]);
    ok = arbor_lm_lm_join(&list, &err) || lm_error(&err);
    if (list.ptr != small) free(list.ptr);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* JSON writing                                                              */
/* ------------------------------------------------------------------------ */

void arbor_json_push_str(arbor_string *out, arbor_str s) {
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not yet copied */
    arbor_string_push_byte(out, '"');
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        const char *esc = NULL;
        char u[6];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
        } else continue;
        arbor_string_push_str(out, arbor_strn(s.ptr + run, i - run));
        arbor_string_push_str(out, esc ? arbor_str_c(esc) : arbor_strn(u, 6));
        run = i + 1;
    }
    arbor_string_push_str(out, arbor_strn(s.ptr + run, s.len - run));
    arbor_string_push_byte(out, '"');
}

/* ------------------------------------------------------------------------ */
/* JSON reading: serde_json's grammar, error messages and positions           */
/* ------------------------------------------------------------------------ */

/* The code below follows serde_json 1.0 (de.rs, read.rs: SliceRead) closely
 * so that a failure reads the same as the Rust SDK's "invalid JSON: ...".
 * serde_json reports `error` positions at the reader's index and
 * `peek_error` positions one byte further; both appear below as jerr/jpeek. */

/* Appends serde_json's " at line L column C" for byte index i. */
static void push_position(arbor_string *out, const arbor_json *j, size_t i) {
    size_t line = 1, start = 0;
    for (size_t k = 0; k < i; k++) {
        if (j->p[k] == '\n') {
            line++;
            start = k + 1;
        }
    }
    arbor_push(out, " at line ");
    arbor_string_push_u64(out, line);
    arbor_push(out, " column ");
    arbor_string_push_u64(out, i - start);
}

static bool jerr_at(arbor_json *j, size_t i, const char *msg) {
    arbor_string *m = begin_error(ARBOR_ERR_JSON);
    arbor_push(m, "invalid JSON: ");
    arbor_push(m, msg);
    push_position(m, j, i);
    return false;
}
static bool jerr(arbor_json *j, const char *msg) { return jerr_at(j, j->pos, msg); }
static bool jpeek(arbor_json *j, const char *msg) {
    return jerr_at(j, j->pos + 1 < j->len ? j->pos + 1 : j->len, msg);
}

#define E_EOF_LIST "EOF while parsing a list"
#define E_EOF_OBJECT "EOF while parsing an object"
#define E_EOF_STRING "EOF while parsing a string"
#define E_EOF_VALUE "EOF while parsing a value"
#define E_COLON "expected `:`"
#define E_LIST_COMMA "expected `,` or `]`"
#define E_OBJECT_COMMA "expected `,` or `}`"
#define E_IDENT "expected ident"
#define E_VALUE "expected value"
#define E_ESCAPE "invalid escape"
#define E_NUMBER "invalid number"
#define E_RANGE "number out of range"
#define E_CONTROL "control character (\\u0000-\\u001F) found while parsing a string"
#define E_KEY "key must be a string"
#define E_LONE "lone leading surrogate in hex escape"
#define E_TRAILING_COMMA "trailing comma"
#define E_TRAILING "trailing characters"
#define E_HEX_END "unexpected end of hex escape"
#define E_RECURSION "recursion limit exceeded"

void arbor_json_init(arbor_json *j, arbor_str text) {
    j->p = (const unsigned char *)text.ptr;
    j->len = text.len;
    j->pos = 0;
    j->after_key = false;
    j->first = false;
    j->depth_left = 128;
}

static int jpeekc(arbor_json *j) { return j->pos < j->len ? j->p[j->pos] : -1; }

/* serde's parse_whitespace: skips JSON whitespace, returns the next byte or -1. */
static int jws(arbor_json *j) {
    while (j->pos < j->len) {
        unsigned char c = j->p[j->pos];
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r') return c;
        j->pos++;
    }
    return -1;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* SliceRead::decode_hex_escape. */
static bool jhex4(arbor_json *j, uint32_t *n) {
    if (j->len - j->pos < 4) {
        j->pos = j->len;
        return jerr(j, E_EOF_STRING);
    }
    uint32_t v = 0;
    bool ok = true;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->p[j->pos + k]);
        if (h < 0) ok = false;
        v = v << 4 | (uint32_t)(h < 0 ? 0 : h);
    }
    j->pos += 4;
    if (!ok) return jerr(j, E_ESCAPE);
    *n = v;
    return true;
}

static void push_utf8(arbor_string *out, uint32_t c) {
    char b[4];
    size_t n;
    if (c < 0x80) { b[0] = (char)c; n = 1; }
    else if (c < 0x800) { b[0] = (char)(0xC0 | c >> 6); b[1] = (char)(0x80 | (c & 0x3F)); n = 2; }
    else if (c < 0x10000) {
        b[0] = (char)(0xE0 | c >> 12); b[1] = (char)(0x80 | (c >> 6 & 0x3F));
        b[2] = (char)(0x80 | (c & 0x3F)); n = 3;
    } else {
        b[0] = (char)(0xF0 | c >> 18); b[1] = (char)(0x80 | (c >> 12 & 0x3F));
        b[2] = (char)(0x80 | (c >> 6 & 0x3F)); b[3] = (char)(0x80 | (c & 0x3F)); n = 4;
    }
    arbor_string_push_str(out, arbor_strn(b, n));
}

/* parse_escape / parse_unicode_escape with validate = true (strings become
 * UTF-8, so surrogates must pair). `out` may be NULL to only check. The
 * backslash has been consumed. */
static bool jescape(arbor_json *j, arbor_string *out, bool check_surrogates) {
    if (j->pos >= j->len) return jerr(j, E_EOF_STRING);
    unsigned char c = j->p[j->pos++];
    char ch;
    switch (c) {
    case '"': ch = '"'; break;
    case '\\': ch = '\\'; break;
    case '/': ch = '/'; break;
    case 'b': ch = '\b'; break;
    case 'f': ch = '\f'; break;
    case 'n': ch = '\n'; break;
    case 'r': ch = '\r'; break;
    case 't': ch = '\t'; break;
    case 'u': {
        uint32_t n, n2;
        if (!jhex4(j, &n)) return false;
        if (!check_surrogates) return true; /* ignore_escape only checks the digits */
        if (n >= 0xDC00 && n <= 0xDFFF) return jerr(j, E_LONE);
        if (n < 0xD800 || n > 0xDBFF) {
            if (out) push_utf8(out, n);
            return true;
        }
        if (j->pos >= j->len) return jerr(j, E_EOF_STRING);
        if (j->p[j->pos++] != '\\') return jerr(j, E_HEX_END);
        if (j->pos >= j->len) return jerr(j, E_EOF_STRING);
        if (j->p[j->pos++] != 'u') return jerr(j, E_HEX_END);
        if (!jhex4(j, &n2)) return false;
        if (n2 < 0xDC00 || n2 > 0xDFFF) return jerr(j, E_LONE);
        if (out) push_utf8(out, (((n - 0xD800) << 10) | (n2 - 0xDC00)) + 0x10000);
        return true;
    }
    default: return jerr(j, E_ESCAPE);
    }
    if (out) arbor_string_push_byte(out, ch);
    return true;
}

/* SliceRead::parse_str_bytes (out != NULL) or ignore_str (out == NULL); the
 * opening quote has been consumed. */
static bool jstring_body(arbor_json *j, arbor_string *out) {
    size_t start = j->pos;
    for (;;) {
        while (j->pos < j->len) {
            unsigned char c = j->p[j->pos];
            if (c == '"' || c == '\\' || c < 0x20) break;
            j->pos++;
        }
        if (j->pos == j->len) return jerr(j, E_EOF_STRING);
        unsigned char c = j->p[j->pos];
        if (out) arbor_string_push_str(out, arbor_strn((const char *)j->p + start, j->pos - start));
        if (c == '"') {
            j->pos++;
            return true;
        }
        if (c == '\\') {
            j->pos++;
            if (!jescape(j, out, out != NULL)) return false;
            start = j->pos;
            continue;
        }
        /* parse_str reports the position after the control character,
         * ignore_str the position before it. */
        if (out) j->pos++;
        return jerr(j, E_CONTROL);
    }
}

/* A parsed number, as serde's ParserNumber. */
typedef struct {
    enum { NUM_U64, NUM_I64, NUM_F64 } kind;
    uint64_t u;
    int64_t i;
    double f;
} jnum;

static const double POW10[309] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
    1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43,
    1e44, 1e45, 1e46, 1e47, 1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57,
    1e58, 1e59, 1e60, 1e61, 1e62, 1e63, 1e64, 1e65, 1e66, 1e67, 1e68, 1e69, 1e70, 1e71,
    1e72, 1e73, 1e74, 1e75, 1e76, 1e77, 1e78, 1e79, 1e80, 1e81, 1e82, 1e83, 1e84, 1e85,
    1e86, 1e87, 1e88, 1e89, 1e90, 1e91, 1e92, 1e93, 1e94, 1e95, 1e96, 1e97, 1e98, 1e99,
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109, 1e110, 1e111,
    1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119, 1e120, 1e121, 1e122, 1e123,
    1e124, 1e125, 1e126, 1e127, 1e128, 1e129, 1e130, 1e131, 1e132, 1e133, 1e134, 1e135,
    1e136, 1e137, 1e138, 1e139, 1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147,
    1e148, 1e149, 1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159,
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169, 1e170, 1e171,
    1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179, 1e180, 1e181, 1e182, 1e183,
    1e184, 1e185, 1e186, 1e187, 1e188, 1e189, 1e190, 1e191, 1e192, 1e193, 1e194, 1e195,
    1e196, 1e197, 1e198, 1e199, 1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207,
    1e208, 1e209, 1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219,
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229, 1e230, 1e231,
    1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239, 1e240, 1e241, 1e242, 1e243,
    1e244, 1e245, 1e246, 1e247, 1e248, 1e249, 1e250, 1e251, 1e252, 1e253, 1e254, 1e255,
    1e256, 1e257, 1e258, 1e259, 1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267,
    1e268, 1e269, 1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279,
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289, 1e290, 1e291,
    1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, 1e300, 1e301, 1e302, 1e303,
    1e304, 1e305, 1e306, 1e307, 1e308,
};

/* f64_from_parts (serde_json without float_roundtrip), reproduced so that a
 * float shows the same value in error messages. */
static bool jf64(arbor_json *j, bool positive, uint64_t sig, int32_t exp, double *out) {
    double f = (double)sig;
    for (;;) {
        uint32_t a = exp < 0 ? (uint32_t)0 - (uint32_t)exp : (uint32_t)exp;
        if (a <= 308) {
            if (exp >= 0) {
                f *= POW10[a];
                if (f == __builtin_inf()) return jerr(j, E_RANGE);
            } else {
                f /= POW10[a];
            }
            break;
        }
        if (f == 0.0) break;
        if (exp >= 0) return jerr(j, E_RANGE);
        f /= 1e308;
        exp += 308;
    }
    *out = positive ? f : -f;
    return true;
}

static bool jexponent(arbor_json *j, bool positive, uint64_t sig, int32_t start, double *out) {
    j->pos++; /* e or E */
    bool pos_exp = true;
    int c = jpeekc(j);
    if (c == '+') j->pos++;
    else if (c == '-') { pos_exp = false; j->pos++; }
    if (j->pos >= j->len) return jerr(j, E_EOF_VALUE);
    c = j->p[j->pos++];
    if (c < '0' || c > '9') return jerr(j, E_NUMBER);
    int32_t e = c - '0';
    while ((c = jpeekc(j)) >= '0' && c <= '9') {
        j->pos++;
        if (e > (INT32_MAX - (c - '0')) / 10) {
            /* parse_exponent_overflow */
            if (sig != 0 && pos_exp) return jerr(j, E_RANGE);
            while ((c = jpeekc(j)) >= '0' && c <= '9') j->pos++;
            *out = positive ? 0.0 : -0.0;
            return true;
        }
        e = e * 10 + (c - '0');
    }
    int64_t fe = pos_exp ? (int64_t)start + e : (int64_t)start - e;
    if (fe > INT32_MAX) fe = INT32_MAX; /* saturating, as serde */
    if (fe < INT32_MIN) fe = INT32_MIN;
    return jf64(j, positive, sig, (int32_t)fe, out);
}

static bool jdecimal(arbor_json *j, bool positive, uint64_t sig, int32_t exp_before, double *out) {
    j->pos++; /* '.' */
    int32_t after = 0;
    int c;
    while ((c = jpeekc(j)) >= '0' && c <= '9') {
        uint64_t d = (uint64_t)(c - '0');
        if (sig > (UINT64_MAX - d) / 10) {
            /* parse_decimal_overflow: ignore further digits */
            while ((c = jpeekc(j)) >= '0' && c <= '9') j->pos++;
            if (c == 'e' || c == 'E') return jexponent(j, positive, sig, exp_before + after, out);
            return jf64(j, positive, sig, exp_before + after, out);
        }
        j->pos++;
        sig = sig * 10 + d;
        after--;
    }
    if (after == 0) return jpeek(j, j->pos < j->len ? E_NUMBER : E_EOF_VALUE);
    c = jpeekc(j);
    if (c == 'e' || c == 'E') return jexponent(j, positive, sig, exp_before + after, out);
    return jf64(j, positive, sig, exp_before + after, out);
}

/* parse_integer after an optional '-' was consumed. */
static bool jnumber(arbor_json *j, bool positive, jnum *n) {
    if (j->pos >= j->len) return jerr(j, E_EOF_VALUE);
    int c = j->p[j->pos++];
    uint64_t sig;
    if (c == '0') {
        int d = jpeekc(j);
        if (d >= '0' && d <= '9') return jpeek(j, E_NUMBER);
        sig = 0;
    } else if (c >= '1' && c <= '9') {
        sig = (uint64_t)(c - '0');
        while ((c = jpeekc(j)) >= '0' && c <= '9') {
            uint64_t d = (uint64_t)(c - '0');
            if (sig > (UINT64_MAX - d) / 10) {
                /* parse_long_integer: the rest only scales the value */
                int32_t exp = 0;
                for (;;) {
                    c = jpeekc(j);
                    if (c >= '0' && c <= '9') { j->pos++; exp++; continue; }
                    n->kind = NUM_F64;
                    if (c == '.') return jdecimal(j, positive, sig, exp, &n->f);
                    if (c == 'e' || c == 'E') return jexponent(j, positive, sig, exp, &n->f);
                    return jf64(j, positive, sig, exp, &n->f);
                }
            }
            j->pos++;
            sig = sig * 10 + d;
        }
    } else {
        return jerr(j, E_NUMBER);
    }
    c = jpeekc(j);
    if (c == '.') { n->kind = NUM_F64; return jdecimal(j, positive, sig, 0, &n->f); }
    if (c == 'e' || c == 'E') { n->kind = NUM_F64; return jexponent(j, positive, sig, 0, &n->f); }
    if (positive) {
        n->kind = NUM_U64;
        n->u = sig;
    } else if (sig == 0 || sig > (uint64_t)INT64_MAX + 1) {
        /* serde turns -0 and values below i64::MIN into floats */
        n->kind = NUM_F64;
        n->f = -(double)sig;
    } else {
        n->kind = NUM_I64;
        n->i = sig == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)sig;
    }
    return true;
}

/* A float the way serde_json's error messages print it (the zmij crate):
 * shortest digits that round-trip; plain notation with at least one
 * fractional digit when the decimal exponent is in -5..=15 ("30.0",
 * "0.00001"), else d.ddde+XX ("1.2345678901234567e+23", "5e-324"). */
static void push_json_f64(arbor_string *out, double f) {
    char buf[40], digits[24];
    int prec;
    if (f != f) { arbor_push(out, "NaN"); return; }
    if (f == __builtin_inf() || f == -__builtin_inf()) { arbor_push(out, f < 0 ? "-inf" : "inf"); return; }
    if (__builtin_signbit(f)) arbor_string_push_byte(out, '-');
    if (f == 0) { arbor_push(out, "0.0"); return; }
    for (prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, __builtin_fabs(f));
        if (strtod(buf, NULL) == __builtin_fabs(f)) break;
    }
    /* buf = d[.ddd]e[+-]xx */
    size_t nd = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int e10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (e10 >= -5 && e10 <= 15) {
        if ((int)nd - 1 <= e10) {
            arbor_string_push_str(out, arbor_strn(digits, nd));
            for (int k = (int)nd; k < e10 + 1; k++) arbor_string_push_byte(out, '0');
            arbor_push(out, ".0");
        } else if (e10 >= 0) {
            arbor_string_push_str(out, arbor_strn(digits, (size_t)e10 + 1));
            arbor_string_push_byte(out, '.');
            arbor_string_push_str(out, arbor_strn(digits + e10 + 1, nd - (size_t)e10 - 1));
        } else {
            arbor_push(out, "0.");
            for (int k = -1; k > e10; k--) arbor_string_push_byte(out, '0');
            arbor_string_push_str(out, arbor_strn(digits, nd));
        }
        return;
    }
    arbor_string_push_byte(out, digits[0]);
    if (nd > 1) {
        arbor_string_push_byte(out, '.');
        arbor_string_push_str(out, arbor_strn(digits + 1, nd - 1));
    }
    arbor_string_push_byte(out, 'e');
    arbor_string_push_byte(out, e10 < 0 ? '-' : '+');
    arbor_string_push_u64(out, (uint64_t)(e10 < 0 ? -e10 : e10));
}

/* A custom (position-less) serde error, placed by fix_position at the
 * reader's index. */
static bool jcustom(arbor_json *j, arbor_string *msg) {
    arbor_string *m = begin_error(ARBOR_ERR_JSON);
    arbor_push(m, "invalid JSON: ");
    arbor_string_push_str(m, arbor_str_of(msg));
    push_position(m, j, j->pos);
    arbor_string_free(msg);
    return false;
}

/* serde's Unexpected::Unsigned / Signed / Float. */
static void push_number(arbor_string *m, const jnum *n) {
    if (n->kind == NUM_U64) {
        arbor_push(m, "integer `");
        arbor_string_push_u64(m, n->u);
    } else if (n->kind == NUM_I64) {
        arbor_push(m, "integer `-");
        arbor_string_push_u64(m, (uint64_t)0 - (uint64_t)n->i);
    } else {
        arbor_push(m, "floating point `");
        push_json_f64(m, n->f);
    }
    arbor_string_push_byte(m, '`');
}

bool arbor_json_fail(arbor_json *j, const char *fmt, ...) {
    arbor_string msg = ARBOR_STRING_INIT;
    va_list ap;
    va_start(ap, fmt);
    vprintf_to(&msg, fmt, ap);
    va_end(ap);
    return jcustom(j, &msg);
}

/* parse_ident: the rest of null/true/false. */
static bool jident(arbor_json *j, const char *rest) {
    for (; *rest; rest++) {
        if (j->pos >= j->len) return jerr(j, E_EOF_VALUE);
        if (j->p[j->pos++] != (unsigned char)*rest) return jerr(j, E_IDENT);
    }
    return true;
}

/* peek_invalid_type: consumes the offending value and reports
 * "invalid type: <what>, expected <exp>" (or the syntax error found). */
static bool jinvalid_type(arbor_json *j, const char *exp) {
    arbor_string msg = ARBOR_STRING_INIT;
    int c = jpeekc(j);
    arbor_push(&msg, "invalid type: ");
    switch (c) {
    case 'n':
        j->pos++;
        if (!jident(j, "ull")) goto syntax;
        arbor_push(&msg, "null");
        break;
    case 't':
        j->pos++;
        if (!jident(j, "rue")) goto syntax;
        arbor_push(&msg, "boolean `true`");
        break;
    case 'f':
        j->pos++;
        if (!jident(j, "alse")) goto syntax;
        arbor_push(&msg, "boolean `false`");
        break;
    case '"': {
        arbor_string s = ARBOR_STRING_INIT;
        j->pos++;
        if (!jstring_body(j, &s)) {
            arbor_string_free(&s);
            goto syntax;
        }
        arbor_push(&msg, "string ");
        arbor_string_push_debug(&msg, arbor_str_of(&s));
        arbor_string_free(&s);
        break;
    }
    case '[': arbor_push(&msg, "sequence"); break;
    case '{': arbor_push(&msg, "map"); break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            jnum n;
            bool positive = c != '-';
            if (!positive) j->pos++;
            if (!jnumber(j, positive, &n)) goto syntax;
            push_number(&msg, &n);
            break;
        }
        arbor_string_free(&msg);
        return jpeek(j, E_VALUE);
    }
    arbor_push(&msg, ", expected ");
    arbor_push(&msg, exp);
    return jcustom(j, &msg);
syntax:
    arbor_string_free(&msg);
    return false;
}

/* The `:` after a key, if one is pending (MapAccess::next_value_seed). */
static bool jcolon(arbor_json *j) {
    if (!j->after_key) return true;
    j->after_key = false;
    int c = jws(j);
    if (c == ':') {
        j->pos++;
        return true;
    }
    return jpeek(j, c < 0 ? E_EOF_OBJECT : E_COLON);
}

/* Leaves the object or array whose closing bracket is at the reader; the
 * enclosing one has read a key or element already, hence first = false. */
static bool jleave(arbor_json *j) {
    j->pos++;
    j->depth_left++;
    j->first = false;
    return true;
}

/* The start of a value: the pending `:`, whitespace, then the next byte;
 * -2 after an error (EOF included). */
static int jvalue_start(arbor_json *j) {
    if (!jcolon(j)) return -2;
    int c = jws(j);
    if (c < 0) return jpeek(j, E_EOF_VALUE), -2;
    return c;
}

/* Enters the '{' or '[' at the reader (check_recursion + eat_char). */
static bool jenter(arbor_json *j) {
    if (--j->depth_left == 0) return jpeek(j, E_RECURSION);
    j->pos++;
    j->first = true;
    return true;
}

bool arbor_json_begin_object(arbor_json *j, const char *expected) {
    int c = jvalue_start(j);
    if (c == -2) return false;
    if (c != '{') return jinvalid_type(j, expected);
    return jenter(j);
}

bool arbor_json_begin_struct(arbor_json *j, const char *expected, bool *is_array) {
    int c = jvalue_start(j);
    if (c == -2) return false;
    if (c != '{' && c != '[') return jinvalid_type(j, expected);
    *is_array = c == '[';
    return jenter(j);
}

bool arbor_json_begin_array(arbor_json *j, const char *expected) {
    int c = jvalue_start(j);
    if (c == -2) return false;
    if (c != '[') return jinvalid_type(j, expected);
    return jenter(j);
}

int arbor_json_next_element(arbor_json *j) {
    int c = jws(j);
    if (c < 0) return jpeek(j, E_EOF_LIST), -1;
    if (c == ']') return 0;
    if (j->first) {
        j->first = false;
        return 1;
    }
    if (c != ',') return jpeek(j, E_LIST_COMMA), -1;
    j->pos++;
    c = jws(j);
    if (c == ']') return jpeek(j, E_TRAILING_COMMA), -1;
    if (c < 0) return jpeek(j, E_EOF_VALUE), -1;
    return 1;
}

bool arbor_json_end_array(arbor_json *j) {
    int c = jws(j);
    if (c == ']') return jleave(j);
    if (c == ',') {
        j->pos++;
        return jpeek(j, jws(j) == ']' ? E_TRAILING_COMMA : E_TRAILING);
    }
    return jpeek(j, c < 0 ? E_EOF_LIST : E_TRAILING);
}

int arbor_json_next_key(arbor_json *j, arbor_string *key) {
    /* A value left unread is skipped rather than misparsed as a key. */
    if (j->after_key && !arbor_json_skip(j)) return -1;
    int c = jws(j);
    if (c < 0) return jpeek(j, E_EOF_OBJECT), -1;
    if (c == '}') return 0;
    if (j->first) {
        j->first = false;
        if (c != '"') return jpeek(j, E_KEY), -1;
    } else if (c == ',') {
        j->pos++;
        c = jws(j);
        if (c == '}') return jpeek(j, E_TRAILING_COMMA), -1;
        if (c < 0) return jpeek(j, E_EOF_VALUE), -1;
        if (c != '"') return jpeek(j, E_KEY), -1;
    } else {
        return jpeek(j, E_OBJECT_COMMA), -1;
    }
    j->pos++;
    arbor_string_clear(key);
    ensure_buf(key);
    if (!jstring_body(j, key)) return -1;
    j->after_key = true;
    return 1;
}

bool arbor_json_end_object(arbor_json *j) {
    int c = jws(j);
    if (c == '}') return jleave(j);
    if (c == ',') return jpeek(j, E_TRAILING_COMMA);
    return jpeek(j, c < 0 ? E_EOF_OBJECT : E_TRAILING);
}

bool arbor_json_read_string(arbor_json *j, arbor_string *out) {
    int c = jvalue_start(j);
    if (c == -2) return false;
    if (c != '"') return jinvalid_type(j, "a string");
    j->pos++;
    arbor_string_clear(out);
    ensure_buf(out);
    return jstring_body(j, out);
}

bool arbor_json_read_uint(arbor_json *j, uint64_t max, const char *expected, uint64_t *out) {
    int c = jvalue_start(j);
    if (c == -2) return false;
    if (c != '-' && (c < '0' || c > '9')) return jinvalid_type(j, expected);
    bool positive = c != '-';
    if (!positive) j->pos++;
    jnum n;
    if (!jnumber(j, positive, &n)) return false;
    arbor_string msg = ARBOR_STRING_INIT;
    if (n.kind == NUM_U64 && n.u <= max) {
        *out = n.u;
        return true;
    }
    /* Integers out of range are invalid values, floats invalid types. */
    arbor_push(&msg, n.kind == NUM_F64 ? "invalid type: " : "invalid value: ");
    push_number(&msg, &n);
    arbor_push(&msg, ", expected ");
    arbor_push(&msg, expected);
    return jcustom(j, &msg);
}

bool arbor_json_read_u32(arbor_json *j, uint32_t *out) {
    uint64_t v;
    if (!arbor_json_read_uint(j, UINT32_MAX, "u32", &v)) return false;
    *out = (uint32_t)v;
    return true;
}

/* ignore_integer and friends: checks the grammar only. */
static bool jskip_number(arbor_json *j) {
    if (j->pos >= j->len) return jerr(j, E_NUMBER);
    int c = j->p[j->pos++];
    if (c == '0') {
        c = jpeekc(j);
        if (c >= '0' && c <= '9') return jpeek(j, E_NUMBER);
    } else if (c >= '1' && c <= '9') {
        while ((c = jpeekc(j)) >= '0' && c <= '9') j->pos++;
    } else {
        return jerr(j, E_NUMBER);
    }
    c = jpeekc(j);
    if (c == '.') {
        j->pos++;
        bool digit = false;
        while ((c = jpeekc(j)) >= '0' && c <= '9') { j->pos++; digit = true; }
        if (!digit) return jpeek(j, E_NUMBER);
        c = jpeekc(j);
    }
    if (c == 'e' || c == 'E') {
        j->pos++;
        c = jpeekc(j);
        if (c == '+' || c == '-') j->pos++;
        if (j->pos >= j->len) return jerr(j, E_NUMBER);
        c = j->p[j->pos++];
        if (c < '0' || c > '9') return jerr(j, E_NUMBER);
        while ((c = jpeekc(j)) >= '0' && c <= '9') j->pos++;
    }
    return true;
}

/* ignore_value: iterative, with an explicit stack of open brackets, so that
 * deep nesting cannot overflow the guest's stack. */
bool arbor_json_skip(arbor_json *j) {
    if (!jcolon(j)) return false;
    arbor_string stack = ARBOR_STRING_INIT;
    bool ok = false;
    for (;;) {
        int c = jws(j);
        int frame = 0;
        bool accept_comma;
        if (c < 0) { jpeek(j, E_EOF_VALUE); goto out; }
        switch (c) {
        case 'n': j->pos++; if (!jident(j, "ull")) goto out; break;
        case 't': j->pos++; if (!jident(j, "rue")) goto out; break;
        case 'f': j->pos++; if (!jident(j, "alse")) goto out; break;
        case '-': j->pos++; if (!jskip_number(j)) goto out; break;
        case '"': j->pos++; if (!jstring_body(j, NULL)) goto out; break;
        case '[': case '{': j->pos++; frame = c; break;
        default:
            if (c >= '0' && c <= '9') {
                if (!jskip_number(j)) goto out;
                break;
            }
            jpeek(j, E_VALUE);
            goto out;
        }
        if (frame) {
            accept_comma = false;
        } else {
            if (stack.len == 0) { ok = true; goto out; }
            frame = stack.ptr[--stack.len];
            accept_comma = true;
        }
        /* Close brackets until a value is due. */
        for (;;) {
            c = jws(j);
            if (c == ',' && accept_comma) {
                j->pos++;
                break;
            }
            if ((c == ']' && frame == '[') || (c == '}' && frame == '{')) {
                j->pos++;
                if (stack.len == 0) { ok = true; goto out; }
                frame = stack.ptr[--stack.len];
                accept_comma = true;
                continue;
            }
            if (c < 0) {
                jpeek(j, frame == '[' ? E_EOF_LIST : E_EOF_OBJECT);
                goto out;
            }
            if (accept_comma) {
                jpeek(j, frame == '[' ? E_LIST_COMMA : E_OBJECT_COMMA);
                goto out;
            }
            break;
        }
        if (frame == '{') {
            c = jws(j);
            if (c < 0) { jpeek(j, E_EOF_OBJECT); goto out; }
            if (c != '"') { jpeek(j, E_KEY); goto out; }
            j->pos++;
            if (!jstring_body(j, NULL)) goto out;
            c = jws(j);
            if (c < 0) { jpeek(j, E_EOF_OBJECT); goto out; }
            if (c != ':') { jpeek(j, E_COLON); goto out; }
            j->pos++;
        }
        arbor_string_push_byte(&stack, (char)frame);
    }
out:
    arbor_string_free(&stack);
    return ok;
}

bool arbor_json_finish(arbor_json *j) {
    if (jws(j) >= 0) return jpeek(j, E_TRAILING);
    return true;
}

/* ------------------------------------------------------------------------ */
/* The export                                                                */
/* ------------------------------------------------------------------------ */

/* Hands `s` to the bindings as the result string: they free() it after the
 * host has copied it, but only when it is not empty. */
static void give(arbor_string *s, program_string_t *to) {
    if (s->len == 0) {
        arbor_string_free(s);
        to->ptr = NULL;
        to->len = 0;
        return;
    }
    to->ptr = (uint8_t *)s->ptr;
    to->len = s->len;
    *s = (arbor_string)ARBOR_STRING_INIT;
}

bool exports_program_run(program_string_t *input, program_string_t *ret, program_string_t *err) {
    arbor_string out = ARBOR_STRING_INIT;
    arbor_clear_error();
    bool ok = arbor_run(arbor_strn((const char *)input->ptr, input->len), &out);
    program_string_free(input);
    /* Drop what the program left alive, so that nothing outlives the run. */
    while (g_states) arbor_state_free(g_states);
    if (ok && !arbor_utf8_valid(arbor_str_of(&out))) {
        /* Returning it would make the host trap the component. */
        ok = set_error(ARBOR_ERR_PROGRAM, "the program's output is not valid UTF-8");
    }
    if (ok) {
        give(&out, ret);
    } else {
        arbor_string_free(&out);
        if (g_error.len == 0 || !arbor_utf8_valid(arbor_str_of(&g_error)))
            set_error(ARBOR_ERR_PROGRAM, "the program failed without a message");
        give(&g_error, err);
    }
    arbor_clear_error();
    return ok;
}
