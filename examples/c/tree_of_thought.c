/*
 * Tree of thought: at each of three levels, three branches propose the next
 * step in parallel; the model picks the most promising one, which the next
 * level extends. Returns the chosen path and the final answer as JSON
 * ({"steps":[...],"answer":"..."}). Mirrors examples/tree-of-thought (Rust)
 * call for call, states freed in the same order, so the output is
 * byte-identical for the same model and input.
 */
#include "arbor.h"

#define DEPTH 3
#define WIDTH 3

/* Asks the model which of the WIDTH candidates is most promising. */
static bool pick_best(arbor_str problem, const arbor_string *so_far, size_t n_so_far,
                      const arbor_string *candidates, size_t *best) {
    static const char *const labels[WIDTH] = {"1", "2", "3"};
    bool ok = false;
    uint32_t choice;
    arbor_string line = ARBOR_STRING_INIT;
    arbor_state *judge = arbor_state_new();
    if (!judge) goto done;
    arbor_push(&line, "Problem: ");
    arbor_push(&line, arbor_trim(problem));
    arbor_push(&line, "\nSteps so far:\n");
    if (!arbor_append(judge, &line)) goto done;
    for (size_t i = 0; i < n_so_far; i++) {
        arbor_string_clear(&line);
        arbor_push(&line, "- ");
        arbor_push(&line, &so_far[i]);
        arbor_push(&line, "\n");
        if (!arbor_append(judge, &line)) goto done;
    }
    if (!arbor_append(judge, "Candidate next steps:\n")) goto done;
    for (size_t i = 0; i < WIDTH; i++) {
        arbor_string_clear(&line);
        arbor_push(&line, labels[i]);
        arbor_push(&line, ". ");
        arbor_push(&line, &candidates[i]);
        arbor_push(&line, "\n");
        if (!arbor_append(judge, &line)) goto done;
    }
    if (!arbor_append(judge, "The most promising candidate is number ") ||
        !arbor_select(judge, "best", labels, WIDTH) || !arbor_choice(judge, "best", &choice))
        goto done;
    if (choice >= WIDTH) {
        arbor_fail_text("select returned an index out of range");
        goto done;
    }
    *best = choice;
    ok = true;
done:
    arbor_state_free(judge);
    arbor_string_free(&line);
    return ok;
}

bool arbor_run(arbor_str problem, arbor_string *output) {
    bool ok = false;
    arbor_string text = ARBOR_STRING_INIT, answer = ARBOR_STRING_INIT;
    arbor_string steps[DEPTH] = {0};
    arbor_string candidates[WIDTH] = {0};
    arbor_state *branches[WIDTH] = {0};
    size_t nsteps = 0;

    arbor_state *current = arbor_state_new();
    if (!current) goto done;
    arbor_push(&text, "Solve the problem step by step.\nProblem: ");
    arbor_push(&text, arbor_trim(problem));
    arbor_push(&text, "\n");
    if (!arbor_append(current, &text)) goto done;

    for (int depth = 1; depth <= DEPTH; depth++) {
        if (!arbor_fork(current, WIDTH, branches)) goto done;
        for (int i = 0; i < WIDTH; i++) {
            char label[16] = "Step ";
            label[5] = (char)('0' + depth);
            label[6] = ':';
            label[7] = 0;
            if (!arbor_append(branches[i], label) ||
                !arbor_generate(branches[i], "step",
                                ARBOR_GEN(.max_tokens = 48, .temperature = 0.8f,
                                          .seed = ARBOR_SEED(depth * 10 + i), .stop = {"\n"})) ||
                !arbor_append(branches[i], "\n"))
                goto done;
        }
        if (!arbor_join(branches, WIDTH)) goto done;
        for (int i = 0; i < WIDTH; i++) {
            if (!arbor_variable(branches[i], "step", &text)) goto done;
            arbor_string_clear(&candidates[i]);
            arbor_push(&candidates[i], arbor_trim(&text));
        }
        size_t best;
        if (!pick_best(problem, steps, nsteps, candidates, &best)) goto done;
        steps[nsteps] = candidates[best];
        candidates[best] = (arbor_string)ARBOR_STRING_INIT;
        nsteps++;
        /* Rust's `current = branches.into_iter().nth(best)` drops the
         * branches before `best`, then the old current, then the rest. */
        arbor_state *next = branches[best];
        for (size_t i = 0; i < best; i++) arbor_state_free(branches[i]);
        arbor_state_free(current);
        for (size_t i = best + 1; i < WIDTH; i++) arbor_state_free(branches[i]);
        for (size_t i = 0; i < WIDTH; i++) branches[i] = NULL;
        current = next;
    }
    if (!arbor_append(current, "Final answer:") ||
        !arbor_generate(current, "answer", ARBOR_GEN(.max_tokens = 32, .stop = {"\n"})) ||
        !arbor_variable(current, "answer", &answer))
        goto done;

    /* serde_json of struct Output { steps, answer }, fields in that order. */
    arbor_push(output, "{\"steps\":[");
    for (size_t i = 0; i < nsteps; i++) {
        if (i) arbor_push(output, ",");
        arbor_json_string(output, &steps[i]);
    }
    arbor_push(output, "],\"answer\":");
    arbor_json_string(output, arbor_trim(&answer));
    arbor_push(output, "}");
    ok = true;
done:
    for (int i = 0; i < WIDTH; i++) {
        arbor_state_free(branches[i]);
        arbor_string_free(&candidates[i]);
    }
    for (int i = 0; i < DEPTH; i++) arbor_string_free(&steps[i]);
    arbor_state_free(current);
    arbor_string_free(&text);
    arbor_string_free(&answer);
    return ok;
}
