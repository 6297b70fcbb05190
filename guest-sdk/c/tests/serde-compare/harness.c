/*
 * The C side of run.sh: for each NUL-separated case on stdin, prints what
 * the C SDK makes of it, in the format of src/main.rs (serde_json and std).
 * Built natively; the WIT imports stay unresolved because no state is used.
 */
#include "arbor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define arbor_run json_extract_run
#include "../../../../examples/c/json_extract.c"
#undef arbor_run
bool arbor_run(arbor_str input, arbor_string *output) { return false; }
static void put(arbor_string *s) { fwrite(s->ptr, 1, s->len, stdout); putchar('\n'); }
int main(void) {
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && buf[i] != 0) continue;
        arbor_str s = arbor_strn(buf + start, i - start);
        start = i + 1;
        person p = {ARBOR_STRING_INIT, ARBOR_STRING_INIT, 0};
        arbor_string o = ARBOR_STRING_INIT;
        if (parse_person(s, &p)) {
            arbor_push(&o, "OK {\"name\":"); arbor_json_string(&o, &p.name);
            arbor_push(&o, ",\"age\":"); arbor_string_push_u64(&o, p.age);
            arbor_push(&o, ",\"city\":"); arbor_json_string(&o, &p.city); arbor_push(&o, "}");
        } else { arbor_push(&o, "ERR "); arbor_push(&o, arbor_error()); }
        put(&o); arbor_string_clear(&o);
        arbor_push(&o, "TRIM "); arbor_string_push_debug(&o, arbor_trim(s)); arbor_push(&o, " WORDS [");
        arbor_str rest = s, w; int k = 0;
        while (arbor_next_word(&rest, &w)) { if (k++) arbor_push(&o, ", "); arbor_string_push_debug(&o, w); }
        arbor_push(&o, "]"); put(&o); arbor_string_clear(&o);
        arbor_push(&o, "DEBUG "); arbor_string_push_debug(&o, s); put(&o); arbor_string_clear(&o);
        arbor_push(&o, "JSON "); arbor_json_string(&o, s); put(&o);
        arbor_string_free(&o); arbor_string_free(&p.name); arbor_string_free(&p.city);
    }
    return 0;
}
