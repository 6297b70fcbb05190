//! Fault isolation between tenants: one tenant's long `select`s run beside
//! another tenant's completions and runs, and nobody's request fails.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_tenants_wide_selects_never_fail_another_tenants_requests() {
    let data = tempfile::tempdir().unwrap();
    let alice = tenant(data.path(), "alice");
    let bob = tenant(data.path(), "bob");
    let h = Harness::start(config(data.path()));
    let addr = h.addr;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let few_shot = upload(addr, &bob, &guest("few_shot")).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let shapes = upload(addr, &alice, &guest("shapes")).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();

        // Alice: five selects among 20 choices of ~200 tokens at once, each
        // step of which would exceed the graph's rotary table if its rows
        // were not budgeted and chunked.
        let selects: Vec<_> = (0..5)
            .map(|_| {
                let path = format!("/v1/programs/{shapes}/runs");
                let key = alice.clone();
                tokio::spawn(async move {
                    post(addr, &path, &key, json!({"input": "select 20 70"})).await
                })
            })
            .collect();
        // Bob, meanwhile: completions and runs of his own.
        let mut bobs = Vec::new();
        for i in 0..12 {
            let key = bob.clone();
            let path = format!("/v1/programs/{few_shot}/runs");
            bobs.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    let body = json!({"model": MODEL, "prompt": format!("Request {i}:"), "max_tokens": 12, "temperature": 0});
                    post(addr, "/v1/completions", &key, body).await
                } else {
                    post(addr, &path, &key, json!({"input": format!("Question {i}?")})).await
                }
            }));
        }
        for b in bobs {
            let r = b.await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            if v["object"] == "text_completion" {
                assert!(v["choices"][0]["finish_reason"].is_string(), "{v}");
            } else {
                assert_eq!(v["status"], "succeeded", "{v}");
            }
        }
        for s in selects {
            let r = s.await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(v["status"], "succeeded", "{v}");
            let pick: u32 = v["output"].as_str().unwrap().parse().unwrap();
            assert!(pick < 20);
        }
    });
    h.stop();
}
