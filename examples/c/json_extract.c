/*
 * JSON extraction: the model fills a record from free text, constrained by a
 * JSON Schema so the output always parses. Mirrors examples/json-extract
 * (Rust): the same schema bytes, the same calls, the record decoded with
 * serde_json's rules (unknown keys skipped, duplicates and missing fields
 * refused, age a u32, error messages and positions included) and written
 * back like serde_json::to_string.
 */
#include "arbor.h"

/* serde_json writes the json! schema with its keys sorted; these are the
 * exact bytes the Rust example sends. */
static const char SCHEMA[] =
    "{\"additionalProperties\":false,\"properties\":{\"age\":{\"maximum\":150,\"minimum\":0,"
    "\"type\":\"integer\"},\"city\":{\"maxLength\":40,\"type\":\"string\"},\"name\":{"
    "\"maxLength\":40,\"type\":\"string\"}},\"required\":[\"name\",\"age\",\"city\"],"
    "\"type\":\"object\"}";

/* struct Person { name: String, age: u32, city: String } */
typedef struct person {
    arbor_string name, city;
    uint32_t age;
} person;

/* Reads field `f` (0 name, 1 age, 2 city) of a Person. */
static bool read_field(arbor_json *j, int f, person *p) {
    return f == 0   ? arbor_json_read_string(j, &p->name)
           : f == 1 ? arbor_json_read_u32(j, &p->age)
                    : arbor_json_read_string(j, &p->city);
}

/*
 * Decodes `text` like serde_json::from_str::<Person>: an object (unknown keys
 * skipped, duplicate and missing fields refused) or, as serde also accepts
 * for structs, an array of the three fields in order. Errors carry serde's
 * message and position.
 */
static bool parse_person(arbor_str text, person *p) {
    static const char *const fields[3] = {"name", "age", "city"};
    bool seen[3] = {false, false, false}, is_array;
    arbor_string key = ARBOR_STRING_INIT;
    arbor_json j;
    int r;
    bool ok = false;
    arbor_json_init(&j, text);
    if (!arbor_json_begin_struct(&j, "struct Person", &is_array)) goto done;
    if (is_array) {
        for (int i = 0; i < 3; i++) {
            if ((r = arbor_json_next_element(&j)) < 0) goto done;
            if (r == 0) {
                /* serde leaves the array before placing the error */
                if (arbor_json_end_array(&j))
                    arbor_json_fail(&j, "invalid length %d, expected struct Person with 3 elements", i);
                goto done;
            }
            if (!read_field(&j, i, p)) goto done;
        }
        if (!arbor_json_end_array(&j)) goto done;
        ok = arbor_json_finish(&j);
        goto done;
    }
    while ((r = arbor_json_next_key(&j, &key)) == 1) {
        int f = -1;
        for (int i = 0; i < 3; i++)
            if (arbor_str_eq(ARBOR_STR(&key), fields[i])) f = i;
        if (f < 0) { /* serde ignores unknown fields */
            if (!arbor_json_skip(&j)) goto done;
            continue;
        }
        if (seen[f]) {
            arbor_json_fail(&j, "duplicate field `%s`", fields[f]);
            goto done;
        }
        seen[f] = true;
        if (!read_field(&j, f, p)) goto done;
    }
    if (r < 0 || !arbor_json_end_object(&j)) goto done;
    for (int i = 0; i < 3; i++) {
        if (!seen[i]) {
            arbor_json_fail(&j, "missing field `%s`", fields[i]);
            goto done;
        }
    }
    ok = arbor_json_finish(&j);
done:
    arbor_string_free(&key);
    return ok;
}

bool arbor_run(arbor_str text, arbor_string *output) {
    bool ok = false;
    arbor_string raw = ARBOR_STRING_INIT;
    person p = {ARBOR_STRING_INIT, ARBOR_STRING_INIT, 0};
    arbor_state *s = arbor_state_new();
    if (!s || !arbor_system(s, "Extract the person described in the text as JSON.") ||
        !arbor_user(s, arbor_trim(text)) ||
        !arbor_assistant_generate(s, "person", ARBOR_GEN(.max_tokens = 96, .json_schema = SCHEMA)) ||
        !arbor_variable(s, "person", &raw) || !parse_person(ARBOR_STR(&raw), &p))
        goto done;
    arbor_push(output, "{\"name\":");
    arbor_json_string(output, &p.name);
    arbor_push(output, ",\"age\":");
    arbor_string_push_u64(output, p.age);
    arbor_push(output, ",\"city\":");
    arbor_json_string(output, &p.city);
    arbor_push(output, "}");
    ok = true;
done:
    arbor_state_free(s);
    arbor_string_free(&raw);
    arbor_string_free(&p.name);
    arbor_string_free(&p.city);
    return ok;
}
