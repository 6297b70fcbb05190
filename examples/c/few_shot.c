/*
 * Few-shot question answering: worked examples, then the question; the
 * answer is one line. Mirrors examples/few-shot (Rust) call for call, so the
 * output is byte-identical for the same model and input.
 */
#include "arbor.h"

static const char *const EXAMPLES[][2] = {
    {"What is the capital of France?", "Paris"},
    {"How many legs does a spider have?", "Eight"},
    {"Which planet is closest to the Sun?", "Mercury"},
};

bool arbor_run(arbor_str question, arbor_string *output) {
    bool ok = false;
    arbor_string prompt = ARBOR_STRING_INIT, answer = ARBOR_STRING_INIT;
    arbor_state *s = arbor_state_new();
    if (!s || !arbor_append(s, "Answer each question in a few words.\n\n")) goto done;
    for (size_t i = 0; i < sizeof EXAMPLES / sizeof EXAMPLES[0]; i++) {
        arbor_string_clear(&prompt);
        arbor_push(&prompt, "Question: ");
        arbor_push(&prompt, EXAMPLES[i][0]);
        arbor_push(&prompt, "\nAnswer: ");
        arbor_push(&prompt, EXAMPLES[i][1]);
        arbor_push(&prompt, "\n\n");
        if (!arbor_append(s, &prompt)) goto done;
    }
    arbor_string_clear(&prompt);
    arbor_push(&prompt, "Question: ");
    arbor_push(&prompt, arbor_trim(question));
    arbor_push(&prompt, "\nAnswer:");
    if (!arbor_append(s, &prompt) ||
        !arbor_generate(s, "answer", ARBOR_GEN(.max_tokens = 32, .stop = {"\n"})) ||
        !arbor_variable(s, "answer", &answer))
        goto done;
    arbor_push(output, arbor_trim(&answer));
    ok = true;
done:
    arbor_state_free(s);
    arbor_string_free(&prompt);
    arbor_string_free(&answer);
    return ok;
}
