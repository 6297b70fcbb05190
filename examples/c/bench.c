/*
 * The guest of arbor_runtime::bench_runtime, with the protocol of
 * examples/bench (Rust). Inputs:
 *
 * - `start`: creates a state and appends a word (start latency).
 * - `calls KIND BATCHES PER_BATCH`: times BATCHES batches of PER_BATCH calls
 *   of KIND (`empty`: append(""); `append`: append("x"); `read`:
 *   token-count()) and returns the batch times in ns as a JSON array.
 */
#include <stdlib.h>
#include <time.h>

#include "arbor.h"

/* Rust's `usize::from_str` on wasm32 (usize is 32 bits): an optional '+',
 * then ASCII digits only, no overflow. */
static bool parse_usize(arbor_str s, uint32_t *out) {
    size_t i = 0;
    uint64_t v = 0;
    if (s.len > 0 && s.ptr[0] == '+') i = 1;
    if (i == s.len) return false;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
        if (v > UINT32_MAX) return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Monotonic nanoseconds (wasi:clocks/monotonic-clock through the adapter,
 * the clock Rust's Instant reads). */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool arbor_run(arbor_str input, arbor_string *output) {
    arbor_str words[5], rest = input, w;
    size_t n = 0;
    while (n < 5 && arbor_next_word(&rest, &w)) words[n++] = w;

    if (n == 1 && arbor_str_eq(words[0], "start")) {
        arbor_state *s = arbor_state_new();
        bool ok = s && arbor_append(s, "hello");
        arbor_state_free(s);
        if (ok) arbor_push(output, "ok");
        return ok;
    }
    if (n == 4 && arbor_str_eq(words[0], "calls")) {
        arbor_str kind = words[1];
        uint32_t batches, per_batch;
        if (!parse_usize(words[2], &batches)) return arbor_fail_text("bad BATCHES");
        if (!parse_usize(words[3], &per_batch)) return arbor_fail_text("bad PER_BATCH");
        int k = arbor_str_eq(kind, "empty") ? 0 : arbor_str_eq(kind, "append") ? 1
                : arbor_str_eq(kind, "read") ? 2 : -1;
        uint64_t *times = malloc((size_t)batches * sizeof *times + 1);
        if (!times) return arbor_fail_text("too many batches");
        bool ok = true;
        for (uint32_t b = 0; ok && b < batches; b++) {
            /* A fresh state per batch keeps every state short. */
            arbor_state *s = arbor_state_new();
            ok = s && arbor_append(s, "warm");
            uint64_t t = now_ns();
            for (uint32_t c = 0; ok && c < per_batch; c++) {
                uint32_t count;
                switch (k) {
                case 0: ok = arbor_append(s, ""); break;
                case 1: ok = arbor_append(s, "x"); break;
                case 2: ok = arbor_token_count(s, &count); break;
                default: {
                    arbor_string msg = ARBOR_STRING_INIT;
                    arbor_push(&msg, "unknown kind ");
                    arbor_push(&msg, kind);
                    ok = arbor_fail_with(&msg);
                }
                }
            }
            times[b] = now_ns() - t;
            arbor_state_free(s);
        }
        if (ok) {
            arbor_push(output, "[");
            for (uint32_t b = 0; b < batches; b++) {
                if (b) arbor_push(output, ",");
                arbor_string_push_u64(output, times[b]);
            }
            arbor_push(output, "]");
        }
        free(times);
        return ok;
    }
    arbor_string msg = ARBOR_STRING_INIT;
    arbor_push(&msg, "unknown input ");
    arbor_string_push_debug(&msg, input);
    return arbor_fail_with(&msg);
}
