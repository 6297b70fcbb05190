//! State semantics that need only a tokenizer: ordering, chat rendering,
//! forks, joins, expected errors, and failure propagation.

mod support;

use arbor_runtime::RunOptions;
use serde_json::Value;
use support::{NO_MODEL, guest, runtime, tokenizer};

async fn scenario(name: &str) -> (Value, arbor_runtime::RunStats) {
    let rt = runtime();
    let program = rt.load(&guest("semantics")).unwrap();
    let out = rt.run(&program, name, RunOptions::default()).await;
    let text = out
        .output
        .unwrap_or_else(|e| panic!("{name}: {e}\nlog: {}", out.log));
    (serde_json::from_str(&text).unwrap(), out.stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_messages_build_the_text_in_order() {
    let (v, stats) = scenario("build").await;
    let expected = "Question: what is 2+2?\
        <|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
        <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
        <|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>";
    assert_eq!(v["text"], expected);
    // Each piece is tokenized on its own; the count is the sum.
    let tok = tokenizer();
    let pieces = [
        "Question: ",
        "what is 2+2?",
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "Hello",
        "<|eot_id|>",
    ];
    let count: usize = pieces
        .iter()
        .map(|p| tok.encode(*p, false).unwrap().len())
        .sum();
    assert_eq!(v["tokens"], count);
    assert_eq!(stats.states_created, 1);
    assert!(stats.host_calls >= 9, "{stats:?}");
    assert!(stats.first_host_call.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_copy_the_parent_at_the_fork_point() {
    let (v, stats) = scenario("fork").await;
    assert_eq!(v["parent"], "root parent-only");
    assert_eq!(
        v["children"],
        serde_json::json!(["root child0", "root child1", "root child2"])
    );
    assert_eq!(stats.states_created, 4);
    assert_eq!(stats.peak_live_states, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_survive_their_parent_being_dropped() {
    let (v, _) = scenario("fork-then-drop").await;
    assert_eq!(
        v["children"],
        serde_json::json!(["ancestor", "ancestor second"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_failures_are_errors_not_traps() {
    let (v, _) = scenario("errors").await;
    assert_eq!(v["unknown"], "unknown variable: nothing");
    assert_eq!(v["choice"], "unknown variable: nothing");
    assert_eq!(
        v["end"],
        "invalid argument: end-message without begin-message"
    );
    assert_eq!(
        v["twice"],
        "invalid argument: a User message is already open"
    );
    assert!(v["message"].as_str().unwrap().contains("a message is open"));
    assert_eq!(v["fork0"], "invalid argument: fork needs n >= 1");
    assert!(
        v["no_choices"]
            .as_str()
            .unwrap()
            .starts_with("invalid argument: select needs")
    );
    assert_eq!(v["zero"], "invalid argument: max-tokens must be at least 1");
    assert!(
        v["top_p"]
            .as_str()
            .unwrap()
            .starts_with("invalid argument: top-p")
    );
    assert_eq!(v["empty_regex"], "bad constraint: empty regex");
    assert_eq!(
        v["still_usable"],
        "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_generation_fails_its_state_only() {
    let (v, stats) = scenario("generate-fails").await;
    let expected = format!("engine error: {NO_MODEL}");
    assert_eq!(v["read"], expected);
    assert_eq!(v["text"], expected);
    assert_eq!(v["join"], expected);
    assert_eq!(v["other"], "unaffected");
    assert_eq!(stats.generate_calls, 1);
    assert_eq!(stats.generated_tokens, 0);
}
