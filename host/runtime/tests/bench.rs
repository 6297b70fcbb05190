//! The runtime benchmark runs end to end and reports plausible figures.

mod support;

use std::time::Duration;

use arbor_runtime::{BenchConfig, bench_runtime};
use support::{guest, runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runtime_reports_start_latency_and_call_overhead() {
    let rt = runtime();
    let config = BenchConfig {
        runs: 20,
        batches: 10,
        calls_per_batch: 100,
    };
    let r = bench_runtime(&rt, &guest("bench"), &config)
        .await
        .expect("bench");
    let second = Duration::from_secs(1);
    for p in [
        r.instantiate,
        r.start_to_first_call,
        r.run,
        r.call_empty,
        r.call_append,
        r.call_read,
    ] {
        assert!(p.median <= p.p99, "{r:?}");
        assert!(p.p99 < second, "{r:?}");
    }
    assert!(r.instantiate.median > Duration::ZERO);
    assert!(
        r.start_to_first_call.median >= r.instantiate.median,
        "{r:?}"
    );
    assert!(r.run.median >= r.start_to_first_call.median, "{r:?}");
    assert!(r.load_cached < r.load_first, "{r:?}");
}
