//! Hostile guests: every limit holds, the host reports it clearly, and
//! other runs are unaffected.

mod support;

use std::time::{Duration, Instant};

use arbor_runtime::{CancelHandle, Limits, RunError, RunOptions};
use support::{guest, limits_with_deadline, runtime};

fn opts(limits: Limits) -> RunOptions {
    RunOptions {
        limits,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_stops_at_the_deadline() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    for mode in ["spin", "spin-after-read"] {
        let t = Instant::now();
        let out = rt
            .run(&program, mode, opts(limits_with_deadline(150)))
            .await;
        let took = t.elapsed();
        assert_eq!(
            out.output,
            Err(RunError::Deadline(Duration::from_millis(150))),
            "{mode}"
        );
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(1500),
            "{mode}: {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_neighbour_does_not_stall_other_runs() {
    let rt = runtime();
    let hostile = rt.load(&guest("misbehave")).unwrap();
    let fine = rt.load(&guest("semantics")).unwrap();
    let spin = rt.run(&hostile, "spin", opts(limits_with_deadline(1000)));
    let normal = async {
        let t = Instant::now();
        let out = rt.run(&fine, "fork", RunOptions::default()).await;
        (out, t.elapsed())
    };
    let (spun, (out, took)) = tokio::join!(spin, normal);
    assert!(matches!(spun.output, Err(RunError::Deadline(_))));
    assert!(out.output.is_ok(), "{:?}", out.output);
    assert!(
        took < Duration::from_millis(500),
        "the neighbour took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_traps_at_the_limit() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_memory_bytes: 16 << 20,
        ..Default::default()
    };
    let out = rt.run(&program, "memory", opts(limits)).await;
    match out.output {
        Err(RunError::MemoryLimit(msg)) => assert!(msg.contains("limit 16777216 bytes"), "{msg}"),
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_floods_hit_the_live_state_limit() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_live_states: 20,
        ..Default::default()
    };
    let out = rt.run(&program, "states", opts(limits.clone())).await;
    let text = out.output.expect("the guest reports the error itself");
    assert!(text.starts_with("20 limit exceeded:"), "{text}");
    assert_eq!(out.stats.peak_live_states, 20);

    let out = rt.run(&program, "fork 20", opts(limits.clone())).await;
    let err = out.output.unwrap_err();
    assert!(
        matches!(&err, RunError::Program(m) if m.contains("limit exceeded")),
        "{err}"
    );
    let out = rt.run(&program, "fork 19", opts(limits)).await;
    assert_eq!(out.output.as_deref(), Ok("19"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_states_hit_the_state_token_limit() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_state_tokens: 1000,
        ..Default::default()
    };
    let out = rt
        .run(&program, "long-text 400", opts(limits.clone()))
        .await;
    assert!(out.output.unwrap().parse::<u32>().unwrap() <= 1000);
    let out = rt
        .run(&program, "long-text 4000", opts(limits.clone()))
        .await;
    let err = out.output.unwrap_err();
    assert!(
        matches!(&err, RunError::Program(m) if m.contains("limit exceeded")),
        "{err}"
    );
    // Text far beyond what a state can hold is refused before tokenizing.
    let out = rt.run(&program, "long-text 10000000", opts(limits)).await;
    let err = out.output.unwrap_err();
    assert!(
        matches!(&err, RunError::Program(m) if m.contains("cannot fit")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_beyond_the_queue_limit_waits_instead_of_failing() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_queued_commands: 4,
        ..Default::default()
    };
    let out = rt.run(&program, "queue 500", opts(limits.clone())).await;
    assert_eq!(out.output.as_deref(), Ok("500"));
    // What cannot fit in a state is refused at the call, not queued.
    let small = Limits {
        max_state_tokens: 100,
        ..limits
    };
    let out = rt.run(&program, "queue 500", opts(small)).await;
    let err = out.output.unwrap_err();
    assert!(
        matches!(&err, RunError::Program(m) if m.contains("at least 101 tokens, limit 100")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_fails_and_huge_logs_are_capped() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_output_bytes: 1000,
        max_log_bytes: 500,
        ..Default::default()
    };
    let out = rt.run(&program, "output 1000", opts(limits.clone())).await;
    assert_eq!(out.output.map(|s| s.len()), Ok(1000));
    let out = rt
        .run(&program, "output 5000000", opts(limits.clone()))
        .await;
    assert_eq!(
        out.output,
        Err(RunError::OutputTooLarge {
            size: 5_000_000,
            limit: 1000
        })
    );

    let out = rt.run(&program, "log 100000", opts(limits)).await;
    assert_eq!(out.output.as_deref(), Ok("logged"));
    assert!(out.log_truncated);
    assert_eq!(out.log.len(), 500);
    assert!(out.log.starts_with("llll"));
    assert_eq!(out.stats.log_bytes, 200_002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_a_dropped_state_ends_the_run_with_a_clear_error() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let out = rt.run(&program, "dropped", RunOptions::default()).await;
    assert!(
        matches!(out.output, Err(RunError::DroppedState(_))),
        "{:?}",
        out.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_with_the_message_in_the_log() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let out = rt.run(&program, "panic", RunOptions::default()).await;
    assert!(
        matches!(out.output, Err(RunError::Trap(_))),
        "{:?}",
        out.output
    );
    assert!(out.log.contains("deliberate panic"), "{}", out.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_says_so_before_the_backtrace() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let out = rt.run(&program, "recurse", RunOptions::default()).await;
    let Err(RunError::Trap(message)) = &out.output else {
        panic!("expected a trap, got {:?}", out.output);
    };
    let first = message.lines().next().unwrap();
    assert!(first.contains("stack overflowed"), "{message}");
    assert!(first.len() < 200, "the cause is one short line: {first}");
    assert!(
        message.contains("backtrace"),
        "the backtrace follows: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_spinning_run() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let cancel = CancelHandle::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });
    let t = Instant::now();
    let out = rt
        .run(
            &program,
            "spin",
            RunOptions {
                cancel: Some(cancel),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(out.output, Err(RunError::Cancelled));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_above_the_runtime_maximum_is_refused() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let limits = Limits {
        max_memory_bytes: 1 << 40,
        ..Default::default()
    };
    let out = rt.run(&program, "output 1", opts(limits)).await;
    assert!(
        matches!(out.output, Err(RunError::Start(_))),
        "{:?}",
        out.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_beyond_the_instance_pool_fails_to_start_and_others_go_on() {
    let rt = support::runtime_with(arbor_runtime::RuntimeConfig {
        max_concurrent_runs: 1,
        ..Default::default()
    });
    let program = rt.load(&guest("misbehave")).unwrap();
    let busy = rt.run(&program, "spin", opts(limits_with_deadline(300)));
    let late = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rt.run(&program, "output 1", RunOptions::default()).await
    };
    let (busy, late) = tokio::join!(busy, late);
    assert!(matches!(busy.output, Err(RunError::Deadline(_))));
    assert!(
        matches!(&late.output, Err(RunError::Start(_))),
        "{:?}",
        late.output
    );
    // The slot is free again.
    let again = rt.run(&program, "output 1", RunOptions::default()).await;
    assert_eq!(again.output.as_deref(), Ok("o"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_deadline_is_accepted() {
    let rt = runtime();
    let program = rt.load(&guest("misbehave")).unwrap();
    let out = rt
        .run(
            &program,
            "output 2",
            opts(Limits {
                deadline: Duration::MAX,
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(out.output.as_deref(), Ok("oo"));
}
