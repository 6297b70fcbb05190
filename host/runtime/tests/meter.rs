//! Token metering on the real stack: every model call reserves before it
//! runs and settles exactly once after, with what it used; a run whose
//! meter makes it wait past its deadline says so.

#[path = "support/scheduler.rs"]
mod scheduler;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor_runtime::{
    Limits, MeterTicket, RunError, RunOptions, RunOutcome, Runtime, RuntimeConfig, TokenMeter,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use support::guest;

/// What an embedder's meter saw, by ticket: reserved, then settled.
#[derive(Debug, Default)]
struct Ledger {
    calls: Mutex<Vec<(u64, Option<u64>)>>,
    /// How the meter answers a reservation.
    mode: Mode,
}

#[derive(Debug, Default)]
enum Mode {
    #[default]
    Grant,
    /// Never grants: the owner's quota stays spent.
    Wait,
    Refuse,
}

impl TokenMeter for Ledger {
    fn reserve(&self, tokens: u64) -> BoxFuture<'static, Result<MeterTicket, String>> {
        match self.mode {
            Mode::Grant => {
                let mut calls = self.calls.lock().unwrap();
                calls.push((tokens, None));
                futures::future::ready(Ok(MeterTicket(calls.len() as u64 - 1))).boxed()
            }
            Mode::Wait => futures::future::pending().boxed(),
            Mode::Refuse => futures::future::ready(Err("no tokens for you".into())).boxed(),
        }
    }

    fn settle(&self, ticket: MeterTicket, used: u64) {
        let mut calls = self.calls.lock().unwrap();
        let call = &mut calls[ticket.0 as usize];
        assert_eq!(call.1, None, "ticket {} settled twice", ticket.0);
        call.1 = Some(used);
    }
}

async fn metered(
    name: &str,
    input: &str,
    mode: Mode,
    deadline_ms: u64,
) -> (RunOutcome, Arc<Ledger>) {
    let rt = Runtime::new(RuntimeConfig::default(), scheduler::start()).expect("runtime");
    let program = rt.load(&guest(name)).expect("load");
    let ledger = Arc::new(Ledger {
        mode,
        ..Ledger::default()
    });
    let opts = RunOptions {
        limits: Limits {
            deadline: Duration::from_millis(deadline_ms),
            ..Limits::default()
        },
        meter: Some(ledger.clone()),
        ..RunOptions::default()
    };
    (rt.run(&program, input, opts).await, ledger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_reserves_its_most_and_settles_what_it_used() {
    let (out, ledger) = metered("tree_of_thought", "Plan a picnic.", Mode::Grant, 30_000).await;
    out.output.unwrap_or_else(|e| panic!("{e}\n{}", out.log));
    let calls = ledger.calls.lock().unwrap();
    assert_eq!(
        calls.len() as u64,
        out.stats.generate_calls + out.stats.select_calls,
        "one reservation per model call"
    );
    let mut settled = 0;
    for &(reserved, used) in calls.iter() {
        let used = used.expect("every reservation is settled");
        assert!(used <= reserved, "used {used} of {reserved} reserved");
        settled += used;
    }
    assert_eq!(
        settled,
        out.stats.prompt_tokens + out.stats.generated_tokens
    );
    let reserved: u64 = calls.iter().map(|c| c.0).sum();
    assert!(settled < reserved, "settling returns what was not used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_short_by_the_deadline_settles_what_it_streamed() {
    let (out, ledger) = metered("misbehave", "tokens 1000", Mode::Grant, 300).await;
    assert!(
        matches!(out.output, Err(RunError::Deadline(_))),
        "{:?}",
        out.output
    );
    // The cut call's worker is aborted as the run ends; its drop settles.
    for _ in 0..200 {
        if ledger.calls.lock().unwrap().iter().all(|c| c.1.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let calls = ledger.calls.lock().unwrap();
    assert!(calls.iter().all(|c| c.1.is_some()), "{calls:?}");
    // The stats count the cut call's prompt but none of its tokens.
    let settled: u64 = calls.iter().map(|c| c.1.unwrap()).sum();
    assert!(
        settled >= out.stats.prompt_tokens + out.stats.generated_tokens,
        "the cut call is charged its prompt and what it streamed: {calls:?} {:?}",
        out.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_while_waiting_for_the_quota_says_so() {
    let (out, ledger) = metered("few_shot", "Who?", Mode::Wait, 300).await;
    assert_eq!(
        out.output,
        Err(RunError::DeadlineWaitingForQuota(Duration::from_millis(
            300
        )))
    );
    assert!(
        out.output
            .unwrap_err()
            .to_string()
            .contains("waiting for the token quota")
    );
    assert!(ledger.calls.lock().unwrap().is_empty());
    assert_eq!(out.stats.generated_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_meter_is_a_limit_the_guest_sees() {
    let (out, _) = metered("few_shot", "Who?", Mode::Refuse, 30_000).await;
    let err = out.output.unwrap_err();
    assert!(
        matches!(&err, RunError::Program(m) if m.contains("no tokens for you")),
        "{err}"
    );
}
