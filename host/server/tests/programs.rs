//! Programs and runs end to end: upload, run (sync and SSE), idempotency,
//! isolation between tenants, quotas, cancel, restart and crash recovery
//! (re-queued runs, counted attempts).

mod common;

use arbor_server::Quotas;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn programs_runs_isolation_quota_cancel_restart_and_crash() {
    let data = tempfile::tempdir().unwrap();
    let alice = tenant(data.path(), "alice");
    let bob = tenant(data.path(), "bob");
    let few_shot = guest("few_shot");
    let spin = guest("misbehave");
    let mut cfg = config(data.path());
    // One place per tenant and no queue: a second request of a busy tenant is refused.
    cfg.quotas.max_concurrent = 1;
    cfg.quotas.max_queued = 0;
    let h = Harness::start(cfg.clone());
    let addr = h.addr;
    let (pid, sync_run, idem_run) = rt().block_on(async {
        let r = upload(addr, &alice, &few_shot).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let pid = r.json()["id"].as_str().unwrap().to_string();
        assert_eq!(pid.len(), 64);
        assert_eq!(
            upload(addr, &alice, &few_shot).await.status,
            200,
            "same content, same program"
        );
        let list = get(addr, "/v1/programs", &alice).await.json();
        assert_eq!(list["data"].as_array().unwrap().len(), 1);

        // Bob can neither see, run nor delete Alice's program: 404, not 403.
        assert_eq!(
            get(addr, &format!("/v1/programs/{pid}"), &bob).await.status,
            404
        );
        assert_eq!(
            post(
                addr,
                &format!("/v1/programs/{pid}/runs"),
                &bob,
                json!({"input": "x"})
            )
            .await
            .status,
            404
        );
        assert_eq!(
            call(
                addr,
                "DELETE",
                &format!("/v1/programs/{pid}"),
                Some(&bob),
                None
            )
            .await
            .status,
            404
        );
        assert_eq!(
            get(addr, "/v1/programs", &bob).await.json()["data"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            get(addr, "/v1/programs/not-a-hash", &alice).await.status,
            404
        );

        // A synchronous run.
        let run = post(
            addr,
            &format!("/v1/programs/{pid}/runs"),
            &alice,
            json!({"input": "What is 2+2?"}),
        )
        .await;
        assert_eq!(run.status, 200, "{}", run.text());
        let run = run.json();
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(run["output"].is_string());
        assert!(run["stats"]["generated_tokens"].as_u64().unwrap() >= 1);
        let sync_run = run["id"].as_str().unwrap().to_string();
        assert_eq!(
            get(addr, &format!("/v1/runs/{sync_run}"), &bob)
                .await
                .status,
            404
        );

        // Streaming: text as it is generated, then the record.
        let s = post(
            addr,
            &format!("/v1/programs/{pid}/runs"),
            &alice,
            json!({"input": "Who?", "stream": true}),
        )
        .await;
        assert_eq!(s.status, 200);
        let text = s.text();
        assert!(
            text.contains("event: text") && text.contains("\"variable\":\"answer\""),
            "{text}"
        );
        assert!(
            text.contains("event: done") && text.contains("\"status\":\"succeeded\""),
            "{text}"
        );

        // Idempotency: a retry gets the first run, not a second one.
        let idem = |k: &'static str| {
            let body = json!({"input": "Again?"}).to_string();
            request_bytes(
                "POST",
                &format!("/v1/programs/{pid}/runs"),
                Some(&alice),
                &[("Idempotency-Key", k), ("Content-Type", "application/json")],
                body.as_bytes(),
            )
        };
        let first = send_raw(addr, &idem("k-1")).await.json();
        let again = send_raw(addr, &idem("k-1")).await.json();
        assert_eq!(first["id"], again["id"]);
        assert_eq!(first["idempotency_key"], "k-1");

        // Quota and cancel: a spinning run holds Alice's only place, so her
        // next request is refused with 429 while Bob is served; DELETE
        // cancels the run and frees the place.
        let r = upload(addr, &alice, &spin).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let spin_id = r.json()["id"].as_str().unwrap().to_string();
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let body = json!({"input": "spin", "stream": true}).to_string();
        tokio::io::AsyncWriteExt::write_all(
            &mut sock,
            &request_bytes(
                "POST",
                &format!("/v1/programs/{spin_id}/runs"),
                Some(&alice),
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            ),
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        while !got.contains("\"id\":\"run_") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += &String::from_utf8_lossy(&buf[..n]);
        }
        let spin_run = got
            .split("\"id\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let busy = post(
            addr,
            "/v1/completions",
            &alice,
            json!({"model": MODEL, "prompt": "x", "max_tokens": 2}),
        )
        .await;
        assert_eq!(busy.status, 429, "{}", busy.text());
        assert!(busy.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(
            post(
                addr,
                "/v1/completions",
                &bob,
                json!({"model": MODEL, "prompt": "x", "max_tokens": 2})
            )
            .await
            .status,
            200
        );
        assert_eq!(
            get(addr, &format!("/v1/runs/{spin_run}"), &alice)
                .await
                .json()["status"],
            "running"
        );
        assert_eq!(
            call(
                addr,
                "DELETE",
                &format!("/v1/runs/{spin_run}"),
                Some(&bob),
                None
            )
            .await
            .status,
            404
        );
        assert_eq!(
            call(
                addr,
                "DELETE",
                &format!("/v1/runs/{spin_run}"),
                Some(&alice),
                None
            )
            .await
            .status,
            202
        );
        let t0 = Instant::now();
        loop {
            let st = get(addr, &format!("/v1/runs/{spin_run}"), &alice)
                .await
                .json();
            if st["status"] == "cancelled" {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{st}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            post(
                addr,
                "/v1/completions",
                &alice,
                json!({"model": MODEL, "prompt": "x", "max_tokens": 2})
            )
            .await
            .status,
            200
        );
        // Deleting frees the name for Alice only.
        assert_eq!(
            call(
                addr,
                "DELETE",
                &format!("/v1/programs/{spin_id}"),
                Some(&alice),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(
            get(addr, &format!("/v1/programs/{spin_id}"), &alice)
                .await
                .status,
            404
        );
        (pid, sync_run, first["id"].as_str().unwrap().to_string())
    });
    h.stop();

    // Restart: tenants, keys, programs and runs are all still there.
    let h = Harness::start(cfg.clone());
    let addr = h.addr;
    let spin_run = rt().block_on(async {
        assert_eq!(
            get(addr, &format!("/v1/programs/{pid}"), &alice)
                .await
                .status,
            200
        );
        let run = get(addr, &format!("/v1/runs/{sync_run}"), &alice)
            .await
            .json();
        assert_eq!(run["status"], "succeeded");
        assert_eq!(
            get(addr, &format!("/v1/runs/{idem_run}"), &alice)
                .await
                .json()["idempotency_key"],
            "k-1"
        );
        let r = post(
            addr,
            &format!("/v1/programs/{pid}/runs"),
            &alice,
            json!({"input": "After restart?"}),
        )
        .await;
        assert_eq!(r.json()["status"], "succeeded");
        // Start a run that is still going when the server stops.
        let r = upload(addr, &bob, &spin).await;
        let spin_id = r.json()["id"].as_str().unwrap().to_string();
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let body = json!({"input": "spin", "stream": true}).to_string();
        tokio::io::AsyncWriteExt::write_all(
            &mut sock,
            &request_bytes(
                "POST",
                &format!("/v1/programs/{spin_id}/runs"),
                Some(&bob),
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            ),
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        while !got.contains("\"id\":\"run_") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += &String::from_utf8_lossy(&buf[..n]);
        }
        got.split("\"id\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    });
    // A graceful stop leaves the run for the next start, its lost attempt
    // not counted; each crash during an attempt counts it; after the second
    // the run is failed with the reason rather than retried forever.
    h.stop();
    for attempts in [1, 2] {
        let h = Harness::start(cfg.clone());
        let addr = h.addr;
        rt().block_on(async {
            let t0 = Instant::now();
            loop {
                let run = get(addr, &format!("/v1/runs/{spin_run}"), &bob)
                    .await
                    .json();
                assert_eq!(run["status"], "running", "{run}");
                if run["attempts"] == attempts {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "{run}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        h.crash();
    }
    let h = Harness::start(cfg);
    let addr = h.addr;
    rt().block_on(async {
        let run = get(addr, &format!("/v1/runs/{spin_run}"), &bob)
            .await
            .json();
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["error"]
                .as_str()
                .unwrap()
                .contains("the server stopped during each of this run's 2 attempts"),
            "{run}"
        );
    });
    h.stop();
}

/// Issue 12: every run reserved its whole token limit (16,384) up front,
/// so at the default quota a tenant was refused after 61 queued runs of
/// ~140 tokens. Runs reserve call by call now: 200 queue and succeed.
#[test]
fn two_hundred_small_runs_queue_at_the_default_quota_without_a_429() {
    let data = tempfile::tempdir().unwrap();
    let key = tenant(data.path(), "busy");
    let cfg = config(data.path());
    assert_eq!(
        cfg.quotas.tokens_per_minute,
        Quotas::default().tokens_per_minute
    );
    let h = Harness::start(cfg);
    let addr = h.addr;
    rt().block_on(async {
        let pid = upload(addr, &key, &guest("few_shot")).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let runs: Vec<_> = (0..200)
            .map(|i| {
                let (key, path) = (key.clone(), format!("/v1/programs/{pid}/runs"));
                tokio::spawn(async move {
                    post(
                        addr,
                        &path,
                        &key,
                        json!({"input": format!("Question {i}?")}),
                    )
                    .await
                })
            })
            .collect();
        let mut used = 0;
        for r in runs {
            let r = r.await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let run = r.json();
            assert_eq!(run["status"], "succeeded", "{run}");
            used += run["stats"]["prompt_tokens"].as_u64().unwrap()
                + run["stats"]["generated_tokens"].as_u64().unwrap();
        }
        // What they used, not what they could have, is what the minute holds.
        assert!(used < 200 * 1000, "{used}");
    });
    h.stop();
}

/// A spent minute: admitted runs wait for their calls' tokens up to their
/// deadline (and say so if it comes first); new runs and completions get
/// 429 with Retry-After; the tokens used stay within the quota.
#[test]
fn a_spent_minute_holds_calls_until_the_deadline_and_refuses_new_work() {
    const LIMIT: u64 = 600;
    let data = tempfile::tempdir().unwrap();
    let key = tenant(data.path(), "thrifty");
    let other = tenant(data.path(), "other");
    let mut cfg = config(data.path());
    cfg.quotas.tokens_per_minute = LIMIT;
    cfg.quotas.run_deadline = Duration::from_secs(3);
    let h = Harness::start(cfg);
    let addr = h.addr;
    rt().block_on(async {
        let few_shot = guest("few_shot");
        let pid = upload(addr, &key, &few_shot).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let path = format!("/v1/programs/{pid}/runs");
        let cost = |run: &serde_json::Value| {
            run["stats"]["prompt_tokens"].as_u64().unwrap()
                + run["stats"]["generated_tokens"].as_u64().unwrap()
        };
        // Seven runs of ~145 tokens: four fit in the 600 of the minute. All
        // are admitted (the minute is not spent when they arrive); the calls
        // that do not fit wait.
        let runs: Vec<_> = (0..7)
            .map(|i| {
                let (key, path) = (key.clone(), path.clone());
                tokio::spawn(async move {
                    post(addr, &path, &key, json!({"input": format!("Question {i}?")})).await
                })
            })
            .collect();
        let (mut used, mut succeeded, mut waited_out) = (0, 0, 0);
        for r in runs {
            let r = r.await.unwrap();
            if r.status == 429 {
                // Only if the minute was already all but spent on arrival.
                assert!(r.header("retry-after").is_some());
                continue;
            }
            assert_eq!(r.status, 200, "{}", r.text());
            let run = r.json();
            match run["status"].as_str().unwrap() {
                "succeeded" => {
                    succeeded += 1;
                    used += cost(&run);
                }
                _ => {
                    let error = run["error"].as_str().unwrap();
                    assert!(error.contains("waiting for the token quota"), "{run}");
                    waited_out += 1;
                }
            }
        }
        eprintln!("{succeeded} succeeded, {waited_out} waited out their deadline, {used} of {LIMIT} tokens used");
        assert!(succeeded >= 1 && waited_out >= 1, "{succeeded} succeeded, {waited_out} waited");
        assert!(used <= LIMIT, "the runs used {used} of {LIMIT} tokens per minute");
        // The minute is spent: new work is refused at once, with a time to retry.
        for (path, body) in [
            (path.as_str(), json!({"input": "More?"})),
            ("/v1/completions", json!({"model": MODEL, "prompt": "x", "max_tokens": 200})),
        ] {
            let r = post(addr, path, &key, body).await;
            assert_eq!(r.status, 429, "{path}: {}", r.text());
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=61).contains(&retry), "{retry}");
        }
        // Another tenant's minute is its own.
        let pid = upload(addr, &other, &few_shot).await.json()["id"].as_str().unwrap().to_string();
        let r = post(addr, &format!("/v1/programs/{pid}/runs"), &other, json!({"input": "Mine?"})).await;
        assert_eq!(r.json()["status"], "succeeded", "{}", r.text());
    });
    h.stop();
}
