//! The OpenAI-compatible endpoints end to end: auth, shapes, streaming,
//! cancellation, and hostile input that must get a clear 4xx.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

#[test]
fn auth_completions_chat_streaming_and_cancel() {
    let data = tempfile::tempdir().unwrap();
    let key = tenant(data.path(), "alice");
    let other = tenant(data.path(), "bob");
    let h = Harness::start(config(data.path()));
    let addr = h.addr;
    rt().block_on(async {
        assert_eq!(call(addr, "GET", "/healthz", None, None).await.status, 200);
        assert_eq!(call(addr, "GET", "/readyz", None, None).await.status, 200);
        let r = call(addr, "GET", "/v1/models", None, None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        assert_eq!(call(addr, "GET", "/v1/models", Some("arb_wrong"), None).await.status, 401);
        assert_eq!(call(addr, "GET", "/metrics", None, None).await.status, 401);
        let models = get(addr, "/v1/models", &key).await;
        assert_eq!(models.status, 200);
        assert_eq!(models.json()["data"][0]["id"], MODEL);

        // Completions: shape, usage, seeded sampling reproducible, n choices.
        let body = json!({"model": MODEL, "prompt": "Hello there", "max_tokens": 8, "temperature": 1.0, "seed": 42, "n": 2});
        let a = post(addr, "/v1/completions", &key, body.clone()).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let a = a.json();
        assert_eq!(a["object"], "text_completion");
        assert_eq!(a["choices"].as_array().unwrap().len(), 2);
        assert!(a["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
        assert_eq!(
            a["usage"]["total_tokens"].as_u64().unwrap(),
            a["usage"]["prompt_tokens"].as_u64().unwrap() + a["usage"]["completion_tokens"].as_u64().unwrap()
        );
        let b = post(addr, "/v1/completions", &key, body).await.json();
        assert_eq!(a["choices"], b["choices"], "same seed, same choices");
        // Another tenant gets the same text (same model) from its own namespace.
        let c = post(addr, "/v1/completions", &other, json!({"model": MODEL, "prompt": "Hello there", "max_tokens": 8, "temperature": 1.0, "seed": 42, "n": 2})).await.json();
        assert_eq!(a["choices"], c["choices"]);

        // Chat.
        let chat = post(addr, "/v1/chat/completions", &key, json!({
            "model": MODEL, "max_tokens": 6, "temperature": 0,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        })).await;
        assert_eq!(chat.status, 200, "{}", chat.text());
        let chat = chat.json();
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
        assert!(chat["choices"][0]["finish_reason"].is_string());

        // JSON-schema response format: the content parses and follows the schema.
        let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false});
        let r = post(addr, "/v1/chat/completions", &key, json!({
            "model": MODEL, "max_tokens": 48, "temperature": 1.0, "seed": 3,
            "messages": [{"role": "user", "content": "ok?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": true}}
        })).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let content = r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
        let v: Value = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
        assert!(v["ok"].is_boolean(), "{v}");
        let bad = post(addr, "/v1/chat/completions", &key, json!({
            "model": MODEL, "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "no-such-type"}}}
        })).await;
        assert_eq!(bad.status, 400, "{}", bad.text());
        // The failure keeps its type: a machine-readable code beside the message.
        assert_eq!(bad.json()["error"]["code"], "invalid_schema", "{}", bad.text());
        let unsupported = post(addr, "/v1/chat/completions", &key, json!({
            "model": MODEL, "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "string", "not": {"const": "a"}}}}
        })).await;
        assert_eq!(unsupported.status, 400, "{}", unsupported.text());
        assert_eq!(unsupported.json()["error"]["code"], "unsupported_schema_keyword", "{}", unsupported.text());
        // Streamed, the same failures answer the same status and body before
        // any event (issue 12: they were a 200 with the error in the stream),
        // also for several choices and once the failure is cached.
        for (unstreamed, schema) in [(&bad, json!({"type": "no-such-type"})), (&unsupported, json!({"type": "string", "not": {"const": "a"}}))] {
            for n in [1, 2, 1] {
                let r = post(addr, "/v1/chat/completions", &key, json!({
                    "model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": true, "n": n,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
                })).await;
                assert_eq!(r.status, 400, "n={n}: {}", r.text());
                assert!(r.header("content-type").unwrap().starts_with("application/json"), "{:?}", r.headers);
                assert_eq!(r.json(), unstreamed.json());
            }
        }

        // Streaming chat: OpenAI's chunks, the same text as without streaming, then [DONE].
        let s = post(addr, "/v1/chat/completions", &key, json!({
            "model": MODEL, "max_tokens": 6, "temperature": 0, "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        })).await;
        assert_eq!(s.status, 200);
        assert!(s.header("content-type").unwrap().starts_with("text/event-stream"));
        let events = s.sse_data();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0).and_then(|ch| ch["delta"]["content"].as_str()).map(str::to_string))
            .collect();
        assert_eq!(streamed, chat["choices"][0]["message"]["content"].as_str().unwrap());
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
        assert_eq!(usage["usage"]["completion_tokens"], chat["usage"]["completion_tokens"]);

        // Stop strings: the text stops before the stop string, streamed or not.
        let free = post(addr, "/v1/completions", &key, json!({"model": MODEL, "prompt": "a b c", "max_tokens": 24, "temperature": 0})).await.json();
        let full = free["choices"][0]["text"].as_str().unwrap().to_string();
        if let Some(stop) = full.get(3..5).filter(|s| !s.trim().is_empty()) {
            let cut = &full[..full.find(stop).unwrap()];
            for stream in [false, true] {
                let r = post(addr, "/v1/completions", &key, json!({"model": MODEL, "prompt": "a b c", "max_tokens": 24, "temperature": 0, "stop": [stop], "stream": stream})).await;
                let text: String = if stream {
                    r.sse_data().iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"].as_str().unwrap().to_string()).collect()
                } else {
                    r.json()["choices"][0]["text"].as_str().unwrap().to_string()
                };
                assert_eq!(text, cut, "stream={stream} stop={stop:?}");
            }
        }

        // Cancel: a client that leaves mid-stream frees its generation.
        let before = metric(&get(addr, "/metrics", &key).await.text(), "arbor_cancelled_total");
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let body = json!({"model": MODEL, "prompt": "Count:", "max_tokens": 400, "temperature": 1.0, "stream": true}).to_string();
        sock.write_all(&request_bytes("POST", "/v1/completions", Some(&key), &[("Content-Type", "application/json")], body.as_bytes())).await.unwrap();
        let mut buf = [0u8; 512];
        let n = sock.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        drop(sock);
        let t0 = Instant::now();
        loop {
            let m = get(addr, "/metrics", &key).await.text();
            if metric(&m, "arbor_cancelled_total") > before && metric(&m, "arbor_scheduler_running") == 0.0 {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "the abandoned stream was not cancelled:\n{m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let m = get(addr, "/metrics", &key).await.text();
        assert!(m.contains("arbor_tenant_completion_tokens_total{tenant=\"alice\"}"));
        assert!(m.contains("arbor_kv_pool_slots 8192"));

        // Revocation takes effect on the running server.
        arbor_server::tenants::revoke(data.path(), "alice").unwrap();
        assert_eq!(get(addr, "/v1/models", &key).await.status, 401);
        assert_eq!(get(addr, "/v1/models", &other).await.status, 200);
    });
    h.stop();
}

#[test]
fn hostile_requests_get_clear_4xx_and_do_not_disturb_others() {
    let data = tempfile::tempdir().unwrap();
    let key = tenant(data.path(), "mallory");
    let good = tenant(data.path(), "carol");
    let h = Harness::start(config(data.path()));
    let addr = h.addr;
    rt().block_on(async {
        let ok = json!({"model": MODEL, "prompt": "hi", "max_tokens": 4});
        // A slow client trickles its body; meanwhile another tenant is served.
        let slow = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let head = format!("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{\"model\"");
            s.write_all(head.as_bytes()).await.unwrap();
            let r = read_response(s).await;
            (r, key)
        });
        let t0 = Instant::now();
        let fine = post(addr, "/v1/completions", &good, ok.clone()).await;
        assert_eq!(fine.status, 200);
        let (r, key) = slow.await.unwrap();
        assert_eq!(r.status, 408, "{}", r.text());
        assert!(t0.elapsed() < Duration::from_secs(10));

        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            ("malformed JSON", b"{\"model\": ".to_vec(), 400, "invalid JSON"),
            ("empty body", Vec::new(), 400, "empty"),
            ("not an object", b"[1,2]".to_vec(), 400, "invalid JSON"),
            ("unknown field", json!({"model": MODEL, "prompt": "x", "temprature": 1}).to_string().into_bytes(), 400, "unknown field `temprature`"),
            ("wrong type", json!({"model": MODEL, "prompt": "x", "max_tokens": "many"}).to_string().into_bytes(), 400, "invalid JSON"),
            ("unknown model", json!({"model": "gpt-9", "prompt": "x"}).to_string().into_bytes(), 404, "gpt-9"),
            ("zero max_tokens", json!({"model": MODEL, "prompt": "x", "max_tokens": 0}).to_string().into_bytes(), 400, "max_tokens"),
            ("huge max_tokens", json!({"model": MODEL, "prompt": "x", "max_tokens": 1u64 << 40}).to_string().into_bytes(), 400, "max_tokens"),
            ("negative temperature", json!({"model": MODEL, "prompt": "x", "temperature": -1}).to_string().into_bytes(), 400, "temperature"),
            ("bad top_p", json!({"model": MODEL, "prompt": "x", "top_p": 0}).to_string().into_bytes(), 400, "top_p"),
            ("n too large", json!({"model": MODEL, "prompt": "x", "n": 1000}).to_string().into_bytes(), 400, "n "),
            ("token out of vocabulary", json!({"model": MODEL, "prompt": [4000000000u32]}).to_string().into_bytes(), 400, "vocabulary"),
            ("no prompt", json!({"model": MODEL, "prompt": []}).to_string().into_bytes(), 400, "prompts"),
            ("empty token prompt", json!({"model": MODEL, "prompt": [[]]}).to_string().into_bytes(), 400, "empty"),
            ("oversized body", format!("{{\"model\":\"{MODEL}\",\"prompt\":\"{}\"}}", "a".repeat(2 << 20)).into_bytes(), 413, "larger"),
        ];
        for (what, body, status, needle) in cases {
            let r = send_raw(addr, &request_bytes("POST", "/v1/completions", Some(&key), &[("Content-Type", "application/json")], &body)).await;
            assert_eq!(r.status, status, "{what}: {}", r.text());
            let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(msg.contains(needle), "{what}: {msg}");
        }
        let r = post(addr, "/v1/chat/completions", &key, json!({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]})).await;
        assert_eq!(r.status, 400);
        let r = post(addr, "/v1/chat/completions", &key, json!({"model": MODEL, "messages": []})).await;
        assert_eq!(r.status, 400);
        assert_eq!(call(addr, "DELETE", "/v1/completions", Some(&key), None).await.status, 405);
        assert_eq!(call(addr, "GET", "/v2/nothing", Some(&key), None).await.status, 404);

        // Programs: garbage, a core module, a component with foreign imports, too large.
        for (what, wasm, status) in [
            ("garbage", b"hello world, not wasm".to_vec(), 422),
            ("core module", b"\0asm\x01\0\0\0".to_vec(), 422),
            ("foreign imports", guest("extra_import"), 422),
            ("too large", vec![0u8; (4 << 20) + 10], 413),
        ] {
            let r = upload(addr, &key, &wasm).await;
            assert_eq!(r.status, status, "{what}: {}", r.text());
            assert!(r.json()["error"]["message"].as_str().unwrap().len() > 10);
        }
        // The other tenant was never disturbed.
        assert_eq!(post(addr, "/v1/completions", &good, ok).await.status, 200);
    });
    h.stop();
}

#[test]
fn metrics_are_right_before_the_first_request() {
    // Issue 12: `/metrics` once read 0 pool slots until a request had run
    // a scheduler step. Scraped here before any request at all (the
    // operator's listener needs no key, so not even authentication runs).
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path());
    cfg.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let slots = cfg.kv_slots as f64;
    let h = Harness::start(cfg);
    let ops = h.metrics_addr.expect("metrics listener");
    rt().block_on(async {
        let m = call(ops, "GET", "/metrics", None, None).await;
        assert_eq!(m.status, 200);
        let m = m.text();
        assert_eq!(metric(&m, "arbor_kv_pool_slots"), slots, "{m}");
        assert_eq!(metric(&m, "arbor_kv_pool_used_slots"), 0.0, "{m}");
        assert_eq!(metric(&m, "arbor_scheduler_running"), 0.0, "{m}");
        assert_eq!(metric(&m, "arbor_admission_in_use"), 0.0, "{m}");
    });
    h.stop();
}

#[test]
fn token_quota_refuses_with_429_and_retry_after_per_tenant() {
    let data = tempfile::tempdir().unwrap();
    let greedy = tenant(data.path(), "greedy");
    let modest = tenant(data.path(), "modest");
    let mut cfg = config(data.path());
    cfg.quotas.tokens_per_minute = 100;
    cfg.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let h = Harness::start(cfg);
    let addr = h.addr;
    rt().block_on(async {
        // Streamed, so the first request is still in flight (its response
        // head arrived, its tokens have not) when the second asks: the
        // quota must count what it may still use, not only what finished.
        let body = json!({"model": MODEL, "prompt": "one two three four", "max_tokens": 60, "temperature": 1.0, "seed": 1});
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let streamed = json!({"model": MODEL, "prompt": "one two three four", "max_tokens": 60, "temperature": 1.0, "stream": true}).to_string();
        sock.write_all(&request_bytes("POST", "/v1/completions", Some(&greedy), &[("Content-Type", "application/json")], streamed.as_bytes())).await.unwrap();
        let mut buf = [0u8; 256];
        let n = sock.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let refused = post(addr, "/v1/completions", &greedy, body.clone()).await;
        assert_eq!(refused.status, 429, "{}", refused.text());
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=61).contains(&retry));
        assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
        assert!(refused.json()["error"]["message"].as_str().unwrap().contains("reserved"));
        drop(sock);
        // Quotas are per tenant.
        assert_eq!(post(addr, "/v1/completions", &modest, body).await.status, 200);
        // A tenant's key shows its own usage only; the operator's listener
        // shows everyone's, without a key.
        let m = get(addr, "/metrics", &modest).await.text();
        assert!(m.contains("arbor_tenant_requests_total{tenant=\"modest\"} 1"), "{m}");
        assert!(!m.contains("greedy"), "another tenant's usage leaked:\n{m}");
        assert!(m.contains("arbor_kv_pool_slots"), "server-wide figures stay visible");
        let ops = h.metrics_addr.expect("metrics listener");
        let all = call(ops, "GET", "/metrics", None, None).await;
        assert_eq!(all.status, 200);
        assert!(all.text().contains("arbor_tenant_refused_total{tenant=\"greedy\"} 1"), "{}", all.text());
        assert_eq!(call(ops, "GET", "/v1/models", None, None).await.status, 404, "only metrics there");
    });
    h.stop();
}

#[test]
fn logprobs_in_both_shapes_streamed_or_not() {
    let data = tempfile::tempdir().unwrap();
    let key = tenant(data.path(), "dora");
    let h = Harness::start(config(data.path()));
    let addr = h.addr;
    rt().block_on(async {
        let chat = json!({
            "model": MODEL, "max_tokens": 8, "temperature": 0, "logprobs": true, "top_logprobs": 3,
            "messages": [{"role": "user", "content": "Name a colour."}]
        });
        let r = post(addr, "/v1/chat/completions", &key, chat.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = r.json();
        let content = r["choices"][0]["logprobs"]["content"].as_array().unwrap().clone();
        assert_eq!(content.len() as u64, r["usage"]["completion_tokens"].as_u64().unwrap());
        let mut bytes = Vec::new();
        for e in &content {
            let top = e["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3);
            let lps: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
            assert!(lps.windows(2).all(|w| w[0] >= w[1]) && lps[0] <= 0.0, "{lps:?}");
            // Greedy: the chosen token is the most likely one.
            assert_eq!(e["logprob"], top[0]["logprob"], "{e}");
            assert_eq!(e["token"], top[0]["token"]);
            bytes.extend(e["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8));
        }
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r["choices"][0]["message"]["content"].as_str().unwrap(),
            "the tokens' bytes spell the message"
        );

        // Streamed: the same entries, spread over the chunks.
        let mut s = chat.clone();
        s["stream"] = json!(true);
        let events = post(addr, "/v1/chat/completions", &key, s).await.sse_data();
        let streamed: Vec<Value> = events
            .iter()
            .filter(|d| *d != "[DONE]")
            .flat_map(|d| {
                let v: Value = serde_json::from_str(d).unwrap();
                v["choices"][0]["logprobs"]["content"].as_array().cloned().unwrap_or_default()
            })
            .collect();
        // The same tokens; log-probabilities equal up to float noise (the
        // second request's prompt comes from the cache, not a prefill).
        assert_eq!(streamed.len(), content.len());
        for (a, b) in streamed.iter().zip(&content) {
            assert_eq!((&a["token"], &a["bytes"]), (&b["token"], &b["bytes"]));
            let (x, y) = (a["logprob"].as_f64().unwrap(), b["logprob"].as_f64().unwrap());
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            assert_eq!(a["top_logprobs"].as_array().unwrap().len(), 3);
        }

        // Legacy completions: parallel arrays with offsets into the text.
        let r = post(addr, "/v1/completions", &key, json!({"model": MODEL, "prompt": "a b c", "max_tokens": 6, "temperature": 0, "logprobs": 2})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = r.json();
        let lp = &r["choices"][0]["logprobs"];
        let n = r["usage"]["completion_tokens"].as_u64().unwrap() as usize;
        assert_eq!(lp["tokens"].as_array().unwrap().len(), n);
        assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n);
        assert_eq!(lp["text_offset"][0], 0);
        for top in lp["top_logprobs"].as_array().unwrap() {
            let m = top.as_object().unwrap();
            assert!((1..=2).contains(&m.len()), "{top}");
        }
        // Without asking, none.
        let r = post(addr, "/v1/completions", &key, json!({"model": MODEL, "prompt": "a", "max_tokens": 2})).await.json();
        assert!(r["choices"][0]["logprobs"].is_null());

        for (body, needle) in [
            (json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}), "top_logprobs"),
            (json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}), "requires logprobs"),
        ] {
            let r = post(addr, "/v1/chat/completions", &key, body).await;
            assert_eq!(r.status, 400, "{}", r.text());
            assert!(r.json()["error"]["message"].as_str().unwrap().contains(needle));
        }
        let r = post(addr, "/v1/completions", &key, json!({"model": MODEL, "prompt": "x", "logprobs": 50})).await;
        assert_eq!(r.status, 400, "{}", r.text());
    });
    h.stop();
}
