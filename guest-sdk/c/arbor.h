/*
 * arbor.h: C SDK for Arbor programs (WebAssembly components of the WIT world
 * `arbor:lm/program`, see wit/arbor.wit).
 *
 * A program is one C file that includes this header and defines
 *
 *     bool arbor_run(arbor_str input, arbor_string *output);
 *
 * Return true with the output written to `output`, or false after a call
 * failed (the SDK has recorded why; arbor_error() reads it) or after
 * arbor_fail(...). Build it into a component with
 *
 *     guest-sdk/c/build.sh program.c program.wasm
 *
 * Conventions (the same shape as the Rust SDK, guest-sdk/src):
 * - Every call that can fail returns `bool` (or NULL): false means it failed
 *   and the message is in arbor_error(); it stays there until the next
 *   failure or the end of the run. Messages match the Rust SDK's Display
 *   ("invalid argument: ...", "invalid JSON: ... at line 1 column 5").
 * - Text arguments take a `const char *` (NUL-terminated), an `arbor_str`
 *   (pointer + length, may hold NUL bytes) or an `arbor_string`: the macros
 *   below pick the right conversion with C11 _Generic. Text must be UTF-8
 *   (a WIT string); invalid UTF-8 is refused with an error instead of making
 *   the component trap.
 * - Strings the SDK returns are `arbor_string`s owned by the caller: release
 *   them with arbor_string_free(). States are released with
 *   arbor_state_free(); states still alive when arbor_run returns are released
 *   by the SDK, so an early `return false` leaks no host resource.
 * - Calls that extend a state return at once; the host runs each state's
 *   commands in order and different states in parallel. Reads (text,
 *   variable, choice, token_count) and arbor_join wait.
 *
 * The generated bindings (guest-sdk/c/bindings/program.h, wit-bindgen 0.63)
 * stay available for what this header does not wrap; arbor_state_handle()
 * gives a state's raw handle.
 */
#ifndef ARBOR_H
#define ARBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "program.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */
/* ------------------------------------------------------------------------ */

/** A borrowed byte string (usually UTF-8): `len` bytes at `ptr`, no NUL needed. */
typedef struct arbor_str {
    const char *ptr;
    size_t len;
} arbor_str;

/**
 * An owned, growable byte string. `ptr` is NUL-terminated whenever it is not
 * NULL (the content itself may hold NUL bytes: `len` is authoritative). Start
 * from ARBOR_STRING_INIT (or `= {0}`); every SDK call that writes one leaves
 * `ptr` non-NULL. Release with arbor_string_free().
 */
typedef struct arbor_string {
    char *ptr;
    size_t len;
    size_t cap;
} arbor_string;

/** An empty arbor_string. */
#define ARBOR_STRING_INIT {NULL, 0, 0}

/** A view of the NUL-terminated string `s` (NULL gives the empty string). */
arbor_str arbor_str_c(const char *s);
/** A view of `len` bytes at `ptr`. */
arbor_str arbor_strn(const char *ptr, size_t len);
/** A view of the content of `s` (valid until `s` changes). */
arbor_str arbor_str_of(const arbor_string *s);
/** Identity, so that ARBOR_STR() accepts an arbor_str. */
arbor_str arbor_str_id(arbor_str s);
/** A view of an arbor_string passed by value. */
arbor_str arbor_str_of_value(arbor_string s);

/**
 * ARBOR_STR(x): `x` as an arbor_str, where x is a `char *`/`const char *`
 * (NUL-terminated, string literals included), an arbor_str, an arbor_string
 * or a pointer to one.
 */
#define ARBOR_STR(x)                                \
    _Generic((x),                                   \
        char *: arbor_str_c,                        \
        const char *: arbor_str_c,                  \
        arbor_str: arbor_str_id,                    \
        arbor_string: arbor_str_of_value,           \
        arbor_string *: arbor_str_of,               \
        const arbor_string *: arbor_str_of)(x)

/** The content of `s` as a C string ("" when never written). */
const char *arbor_cstr(const arbor_string *s);
/** Whether `a` holds exactly the bytes of the C string `b`. */
bool arbor_str_eq(arbor_str a, const char *b);

/** Appends `text` to `out`. */
void arbor_string_push_str(arbor_string *out, arbor_str text);
/** arbor_push(out, text): appends any text accepted by ARBOR_STR. */
#define arbor_push(out, text) arbor_string_push_str((out), ARBOR_STR(text))
/** Appends one byte. */
void arbor_string_push_byte(arbor_string *out, char c);
/** Appends the decimal digits of `n`. */
void arbor_string_push_u64(arbor_string *out, uint64_t n);
/** Appends printf-formatted text (note: `%s` stops at a NUL byte). */
void arbor_string_printf(arbor_string *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** A new owned copy of `text`. */
arbor_string arbor_string_copy(arbor_str text);
/** Empties `s`, keeping its buffer. */
void arbor_string_clear(arbor_string *s);
/** Frees `s` and leaves it empty (ARBOR_STRING_INIT). */
void arbor_string_free(arbor_string *s);

/** Whether `s` is well-formed UTF-8. */
bool arbor_utf8_valid(arbor_str s);

/**
 * Whether code point `c` is Unicode White_Space (Rust's char::is_whitespace):
 * U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000.
 */
bool arbor_is_whitespace(uint32_t c);

/** `s` without leading and trailing White_Space: Rust's `str::trim`. */
arbor_str arbor_trim_str(arbor_str s);
/** arbor_trim(x): arbor_trim_str on any text accepted by ARBOR_STR. */
#define arbor_trim(x) arbor_trim_str(ARBOR_STR(x))

/**
 * Splits on White_Space like Rust's `str::split_whitespace`: stores the next
 * word of `*rest` in `*word`, advances `*rest` past it and returns true, or
 * returns false when only whitespace is left.
 */
bool arbor_next_word(arbor_str *rest, arbor_str *word);

/**
 * Appends `s` the way Rust's `{:?}` prints a str: quoted, with \" \\ \n \r
 * \t \0 and \u{..} escapes. Control characters and a few invisible ones are
 * escaped; Rust also escapes some rarer non-printable code points that this
 * prints raw.
 */
void arbor_string_push_debug(arbor_string *out, arbor_str s);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/** What the last failure was. */
typedef enum arbor_error_kind {
    ARBOR_OK = 0,
    /** The regex or JSON Schema constraint is invalid or unsupported. */
    ARBOR_ERR_BAD_CONSTRAINT,
    /** A per-run limit would be exceeded. */
    ARBOR_ERR_LIMIT_EXCEEDED,
    /** An argument is out of range or a call came out of order. */
    ARBOR_ERR_INVALID_ARGUMENT,
    /** No variable of that name was captured on this state. */
    ARBOR_ERR_UNKNOWN_VARIABLE,
    /** The host cancelled the work. */
    ARBOR_ERR_CANCELLED,
    /** The engine failed. */
    ARBOR_ERR_ENGINE,
    /** Text was not the JSON the program asked for (arbor_json_*). */
    ARBOR_ERR_JSON,
    /** The program failed on its own (arbor_fail). */
    ARBOR_ERR_PROGRAM,
} arbor_error_kind;

/** The message of the last failure ("" if none). Valid until the next failure. */
const char *arbor_error(void);
/** The kind of the last failure (ARBOR_OK if none). */
arbor_error_kind arbor_error_kind_get(void);
/** Forgets the last failure. */
void arbor_clear_error(void);
/** Records a printf-formatted failure of the program; returns false. */
bool arbor_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Records `text` as the failure of the program (no printf involved); returns false. */
bool arbor_fail_str(arbor_str text);
/** arbor_fail_text(text): arbor_fail_str on any text accepted by ARBOR_STR. */
#define arbor_fail_text(text) arbor_fail_str(ARBOR_STR(text))
/** Records `msg` (any bytes) as the failure; takes ownership of it; returns false. */
bool arbor_fail_with(arbor_string *msg);

/* ------------------------------------------------------------------------ */
/* States                                                                    */
/* ------------------------------------------------------------------------ */

/** Chat roles, rendered with the model's chat template. */
typedef enum arbor_role {
    ARBOR_SYSTEM = ARBOR_LM_LM_ROLE_SYSTEM,
    ARBOR_USER = ARBOR_LM_LM_ROLE_USER,
    ARBOR_ASSISTANT = ARBOR_LM_LM_ROLE_ASSISTANT,
} arbor_role;

/** A prompt being built; see the conventions at the top. Opaque. */
typedef struct arbor_state arbor_state;

/** Most stop strings one arbor_gen holds. */
#define ARBOR_GEN_MAX_STOP 8

/** An optional seed: ARBOR_SEED(n) sets it. */
typedef struct arbor_seed {
    bool set;
    uint64_t value;
} arbor_seed;
#define ARBOR_SEED(n) ((arbor_seed){true, (uint64_t)(n)})

/**
 * Options of arbor_generate. Build them with ARBOR_GEN(...), which starts
 * from the defaults of the Rust SDK's Gen (128 tokens, temperature 0 =
 * greedy, top_p 1, top_k 0, no stop strings, no seed, no constraint) and
 * applies the designated initializers given:
 *
 *     ARBOR_GEN(.max_tokens = 48, .temperature = 0.8f,
 *               .seed = ARBOR_SEED(21), .stop = {"\n"})
 *
 * Strings are borrowed until arbor_generate returns. At most one of regex
 * and json_schema may be set.
 */
typedef struct arbor_gen {
    /** Upper bound on generated tokens. */
    uint32_t max_tokens;
    /** Sampling temperature; 0 is greedy. */
    float temperature;
    /** Nucleus sampling mass; 1 disables it. */
    float top_p;
    /** Keep only the k most likely tokens; 0 keeps all. */
    uint32_t top_k;
    /** Stop strings, NUL-terminated each; the list ends at the first NULL. */
    const char *stop[ARBOR_GEN_MAX_STOP];
    /** Seed of the sampler. */
    arbor_seed seed;
    /** Regular expression the output must match (NULL: none). */
    const char *regex;
    /** JSON Schema text the output must be valid against (NULL: none). */
    const char *json_schema;
} arbor_gen;

/* Later designated initializers override the defaults on purpose, so the
 * warning about overriding is silenced inside the macro only. */
#define ARBOR_GEN(...)                                                        \
    (_Pragma("clang diagnostic push")                                         \
     _Pragma("clang diagnostic ignored \"-Winitializer-overrides\"")          \
     (arbor_gen){.max_tokens = 128, .temperature = 0.0f, .top_p = 1.0f,       \
                 .top_k = 0, __VA_ARGS__}                                     \
     _Pragma("clang diagnostic pop"))

/** A new, empty state, or NULL (e.g. the run's live-state limit). */
arbor_state *arbor_state_new(void);
/** Releases `s` (NULL is fine); its queued work is cancelled unless forks need it. */
void arbor_state_free(arbor_state *s);
/** The raw WIT handle, for the generated bindings. */
arbor_lm_lm_borrow_state_t arbor_state_handle(const arbor_state *s);

bool arbor_append_str(arbor_state *s, arbor_str text);
bool arbor_message_str(arbor_state *s, arbor_role role, arbor_str content);
/** arbor_append(s, text): appends text (tokenized on its own). */
#define arbor_append(s, text) arbor_append_str((s), ARBOR_STR(text))
/** arbor_message(s, role, content): appends a whole chat message. */
#define arbor_message(s, role, content) arbor_message_str((s), (role), ARBOR_STR(content))
/** Appends a system message. */
#define arbor_system(s, content) arbor_message_str((s), ARBOR_SYSTEM, ARBOR_STR(content))
/** Appends a user message. */
#define arbor_user(s, content) arbor_message_str((s), ARBOR_USER, ARBOR_STR(content))
/** Appends an assistant message with known content. */
#define arbor_assistant(s, content) arbor_message_str((s), ARBOR_ASSISTANT, ARBOR_STR(content))

/** Opens a chat message whose content is appended or generated next. */
bool arbor_begin(arbor_state *s, arbor_role role);
/** Closes the message opened by arbor_begin. */
bool arbor_end(arbor_state *s);
/** Generates text into variable `name` (see arbor_gen). */
bool arbor_generate(arbor_state *s, const char *name, arbor_gen options);
/** Generates a whole assistant message into `name`: begin, generate, end. */
bool arbor_assistant_generate(arbor_state *s, const char *name, arbor_gen options);
/**
 * Picks the most likely of the `n` strings `choices` into variable `name`;
 * read the index with arbor_choice.
 */
bool arbor_select(arbor_state *s, const char *name, const char *const *choices, size_t n);
/**
 * `n` copies of `s` that share its prefix, stored in out[0..n). On failure
 * nothing is stored.
 */
bool arbor_fork(arbor_state *s, uint32_t n, arbor_state **out);

/** The full text, once queued work is done (replaces *out's content). */
bool arbor_text(arbor_state *s, arbor_string *out);
/** Captured variable `name`, once queued work is done (replaces *out's content). */
bool arbor_variable(arbor_state *s, const char *name, arbor_string *out);
/** The index picked by arbor_select for `name`. */
bool arbor_choice(arbor_state *s, const char *name, uint32_t *out);
/** Number of tokens of the state, once queued work is done. */
bool arbor_token_count(arbor_state *s, uint32_t *out);
/** Waits for the queued work of the `n` states; the first error wins. */
bool arbor_join(arbor_state *const *states, size_t n);

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

/**
 * Appends `s` as a JSON string the way serde_json writes it: `"` and `\`
 * escaped, \b \f \n \r \t, other U+0000-001F as \u00xx (lowercase hex),
 * everything else raw (non-ASCII included).
 */
void arbor_json_push_str(arbor_string *out, arbor_str s);
/** arbor_json_string(out, text): arbor_json_push_str on any ARBOR_STR text. */
#define arbor_json_string(out, text) arbor_json_push_str((out), ARBOR_STR(text))

/**
 * A pull reader over JSON text with serde_json's grammar, error messages and
 * positions ("invalid JSON: EOF while parsing a string at line 1 column 42"),
 * for decoding records field by field (examples/c/json_extract.c decodes a
 * struct in both of serde's forms):
 *
 *     arbor_json j; arbor_json_init(&j, text);
 *     if (!arbor_json_begin_object(&j, "struct Person")) ...
 *     while ((r = arbor_json_next_key(&j, &key)) == 1) {
 *         if (arbor_str_eq(ARBOR_STR(&key), "name")) ok = arbor_json_read_string(&j, &name);
 *         else ok = arbor_json_skip(&j);
 *     }
 *     if (r < 0 || !arbor_json_end_object(&j) || !arbor_json_finish(&j)) ...
 *
 * After next_key or next_element returns 1, read one value (read_*, skip,
 * or begin_* ... end_* for a nested object or array).
 * Failures set arbor_error() (kind ARBOR_ERR_JSON) and return false / -1.
 */
typedef struct arbor_json {
    const unsigned char *p;
    size_t len;
    size_t pos;
    /** A key was read and its `:` not yet. */
    bool after_key;
    /** No key read yet in the innermost object. */
    bool first;
    /** Object nesting left before "recursion limit exceeded" (serde_json: 128). */
    uint32_t depth_left;
} arbor_json;

void arbor_json_init(arbor_json *j, arbor_str text);
/**
 * Expects an object and enters it. Anything else fails with serde's
 * "invalid type: ..., expected <expected>".
 */
bool arbor_json_begin_object(arbor_json *j, const char *expected);
/**
 * Expects an object or an array and enters it, as serde decodes a struct
 * (which it accepts in both forms); *is_array says which.
 */
bool arbor_json_begin_struct(arbor_json *j, const char *expected, bool *is_array);
/** Expects an array and enters it. */
bool arbor_json_begin_array(arbor_json *j, const char *expected);
/**
 * Moves to the next array element: 1 = an element follows (read exactly one
 * value), 0 = end of array, -1 = error.
 */
int arbor_json_next_element(arbor_json *j);
/** Leaves the array (serde's end_seq: more elements are an error). */
bool arbor_json_end_array(arbor_json *j);
/**
 * Reads the next key into *key: 1 = key read (a value must follow; one left
 * unread is skipped), 0 = end of object, -1 = error.
 */
int arbor_json_next_key(arbor_json *j, arbor_string *key);
/** Leaves the object (after next_key returned 0). */
bool arbor_json_end_object(arbor_json *j);
/** Reads a string value (replaces *out's content). */
bool arbor_json_read_string(arbor_json *j, arbor_string *out);
/**
 * Reads an unsigned integer value no greater than `max`, with serde's
 * messages for `expected` (e.g. "u32"): negative, fractional or too large
 * numbers and other types fail.
 */
bool arbor_json_read_uint(arbor_json *j, uint64_t max, const char *expected, uint64_t *out);
/** Reads a u32 value like serde. */
bool arbor_json_read_u32(arbor_json *j, uint32_t *out);
/** Skips any value. */
bool arbor_json_skip(arbor_json *j);
/** Checks that only whitespace follows. */
bool arbor_json_finish(arbor_json *j);
/**
 * Records a decoding failure such as "missing field `age`" at the reader's
 * position, like serde's custom errors; returns false.
 */
bool arbor_json_fail(arbor_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* The program                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Defined by the program: runs on `input` (valid UTF-8, borrowed for the
 * call). Return true with the output in `*output` (starts empty; the SDK
 * frees it), or false with a failure recorded (arbor_fail or a failed SDK
 * call); the failure's message becomes the run's `err`.
 */
bool arbor_run(arbor_str input, arbor_string *output);

#ifdef __cplusplus
}
#endif

#endif /* ARBOR_H */
