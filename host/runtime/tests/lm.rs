//! Programs on the real stack: the scheduler over a tiny random-weight
//! model. Outputs are gibberish; structure, limits, sharing and streaming
//! are what is checked.

#[path = "support/scheduler.rs"]
mod scheduler;
mod support;

use std::sync::Arc;

use arbor_backend::SchedulerBackend;
use arbor_runtime::{Limits, RunError, RunEvent, RunOptions, Runtime, RuntimeConfig};
use serde_json::Value;
use support::guest;

fn runtime() -> (Runtime, Arc<SchedulerBackend>) {
    let backend = scheduler::start();
    let rt = Runtime::new(RuntimeConfig::default(), backend.clone()).expect("runtime");
    (rt, backend)
}

async fn run(rt: &Runtime, name: &str, input: &str) -> arbor_runtime::RunOutcome {
    let program = rt.load(&guest(name)).expect("load");
    rt.run(&program, input, RunOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_shot_answers_in_one_line() {
    let (rt, _) = runtime();
    let out = run(&rt, "few_shot", "What colour is the sky?").await;
    let answer = out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log));
    assert!(!answer.contains('\n'), "{answer:?}");
    assert_eq!(out.stats.generate_calls, 1);
    assert!(
        (1..=32).contains(&out.stats.generated_tokens),
        "{:?}",
        out.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_of_thought_explores_forks_that_share_their_prefix() {
    let (rt, backend) = runtime();
    let out = run(&rt, "tree_of_thought", "Make 24 from 4, 7, 8 and 8.").await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 3);
    assert!(v["answer"].is_string());
    // 1 root + 3 levels of 3 branches + 3 judges.
    assert_eq!(out.stats.states_created, 13);
    assert_eq!(out.stats.generate_calls, 10);
    assert_eq!(out.stats.select_calls, 3);
    // Branches resubmit the shared prefix; the cache computes it once.
    let prefilled = backend.scheduler().stats().prefill_tokens;
    assert!(
        prefilled < out.stats.prompt_tokens,
        "prefilled {prefilled} of {}",
        out.stats.prompt_tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_each_reply_and_captures_it() {
    let (rt, _) = runtime();
    let program = rt.load(&guest("chat")).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let input = r#"{"system": "You are terse.", "turns": ["Hi!", "What is Arbor?"]}"#;
    let out = rt
        .run(
            &program,
            input,
            RunOptions {
                events: Some(tx),
                ..Default::default()
            },
        )
        .await;
    let replies: Vec<String> =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}"))).unwrap();
    assert_eq!(replies.len(), 2);
    let mut streamed = std::collections::HashMap::<String, String>::new();
    let mut captured = std::collections::HashMap::<String, String>::new();
    while let Ok(ev) = rx.try_recv() {
        match ev {
            RunEvent::Text {
                variable, delta, ..
            } => streamed.entry(variable).or_default().push_str(&delta),
            RunEvent::Captured {
                variable, value, ..
            } => {
                captured.insert(variable, value);
            }
        }
    }
    assert_eq!(captured.len(), 2, "{captured:?}");
    for (name, value) in &captured {
        let s = streamed.get(name).map(String::as_str).unwrap_or("");
        assert!(
            value.starts_with(s),
            "{name}: streamed {s:?}, captured {value:?}"
        );
        assert_eq!(replies[if name == "reply0" { 0 } else { 1 }], value.trim());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rag_retrieves_with_bm25_in_the_guest() {
    let (rt, _) = runtime();
    let out = run(&rt, "rag", "How does BM25 score documents?").await;
    let v: Value = serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}"))).unwrap();
    assert_eq!(v["passages"][0], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_flood_hits_the_generated_token_budget() {
    let (rt, _) = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_generated_tokens: 100,
        ..Default::default()
    };
    let out = rt
        .run(
            &program,
            "tokens 50",
            RunOptions {
                limits,
                ..Default::default()
            },
        )
        .await;
    let err = out.output.unwrap_err();
    assert!(
        matches!(&err, RunError::Program(m) if m.contains("budget of 100 generated tokens")),
        "{err}"
    );
    assert!(out.stats.generated_tokens <= 100, "{:?}", out.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_extract_output_always_parses_under_the_schema() {
    let (rt, _) = runtime();
    let out = run(&rt, "json_extract", "Ada Lovelace, 36, lived in London.").await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    assert!(v["name"].is_string() && v["city"].is_string(), "{v}");
    assert!(v["age"].as_u64().is_some_and(|a| a <= 150), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_agent_and_judge_run_to_completion() {
    let (rt, _) = runtime();
    let out = run(&rt, "react_agent", "What is 17 * 23?").await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 5);
    for s in steps.iter().filter(|s| s["action"] == "calculate") {
        // The regex keeps the tool input arithmetic.
        assert!(
            s["input"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| "0123456789+-*/(). ".contains(c)),
            "{s}"
        );
    }
    let input = r#"{"question": "2+2?", "answer_a": "4", "answer_b": "5"}"#;
    let out = run(&rt, "judge", input).await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    assert!(
        ["A", "B", "tie"].contains(&v["verdict"].as_str().unwrap()),
        "{v}"
    );
    assert!(!v["judgements"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_forked_branches_take_about_one_branchs_engine_steps() {
    let (rt, backend) = runtime();
    let before = backend.scheduler().stats();
    let out = run(&rt, "semantics", "fork8").await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    assert_eq!(v["outs"].as_array().unwrap().len(), 8);
    let after = backend.scheduler().stats();
    let steps = after.steps - before.steps;
    let prefilled = after.prefill_tokens - before.prefill_tokens;
    let prefix = v["prefix_tokens"].as_u64().unwrap();
    // One branch alone: one prefill step and 15 decode steps.
    assert!(
        steps <= 16 + 6,
        "8 branches of 16 tokens took {steps} engine steps"
    );
    // The prefix once, plus each branch's few own tokens.
    assert!(
        prefilled < prefix + 8 * 8,
        "prefilled {prefilled} tokens for a {prefix}-token shared prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_constraint_error_reaches_the_guest_typed() {
    let (rt, _) = runtime();
    let out = run(&rt, "semantics", "engine-rejects-constraint").await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    let bad = v["bad"].as_str().unwrap();
    assert!(bad.starts_with("invalid regex syntax:"), "{bad}");
    assert_eq!(v["other"], "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_by_four_fork_tree_fits_the_default_limits() {
    let (rt, _) = runtime();
    let out = run(&rt, "shapes", "fork-tree 4 4 2").await;
    let v: Value =
        serde_json::from_str(&out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log))).unwrap();
    assert_eq!(v["leaves"], 256);
    assert_eq!(v["live_states"], 341);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_among_twenty_long_choices_succeeds() {
    let (rt, backend) = runtime();
    let out = run(&rt, "shapes", "select 20 70").await;
    let pick: u32 = out
        .output
        .unwrap_or_else(|e| panic!("{e}\n{}", out.log))
        .parse()
        .unwrap();
    assert!(pick < 20);
    // Every choice was scored within the engine's limits, in several steps.
    let stats = arbor_runtime::LmBackend::stats(backend.as_ref());
    assert_eq!(stats["engine_failures"], 0, "{stats}");
}
