//! The streamed answer: one SSE chunk per piece of final text, then usage
//! and `[DONE]`. It starts only once every choice has its first event, so
//! that an error inside the stream is one that came after a token.

use super::*;

/// One chunk of either endpoint's stream.
fn chunk(plan_kind: Kind, id: &str, model: &str, created: i64, choice: Value) -> String {
    let object = if plan_kind == Kind::Chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    json!({"id": id, "object": object, "created": created, "model": model, "system_fingerprint": null, "choices": [choice]})
        .to_string()
}

/// The pending entries whose tokens start before byte `sent` of the text.
fn take_ready(pending: &mut Vec<logprobs::Entry>, sent: usize) -> Vec<logprobs::Entry> {
    let n = pending.iter().take_while(|e| e.offset < sent).count();
    pending.drain(..n).collect()
}

pub(super) fn stream(
    state: Arc<AppState>,
    tenant: Tenant,
    plan: Plan,
    streams: Vec<(Event, GenerationStream)>,
    (permit, reservation): (Permit, Reservation),
) -> impl IntoResponse {
    // Small buffer: a client that does not read stalls only its own tasks.
    let (tx, rx) = mpsc::channel::<String>(32);
    let created = now();
    let plan = Arc::new(plan);
    let mut tasks = Vec::with_capacity(streams.len());
    for (index, (first, mut s)) in streams.into_iter().enumerate() {
        let (tx, plan, scheduler) = (tx.clone(), plan.clone(), state.scheduler.clone());
        tasks.push(tokio::spawn(async move {
            let emit = |v: Value| chunk(plan.kind, &plan.id, &plan.model, created, v);
            let delta = |text: &str, lp: Option<&[logprobs::Entry]>| {
                let lp = plan.logprobs_json(lp);
                match plan.kind {
                    Kind::Text => json!({"index": index, "text": text, "logprobs": lp, "finish_reason": null}),
                    Kind::Chat => json!({"index": index, "delta": {"content": text}, "logprobs": lp, "finish_reason": null}),
                }
            };
            // Log-probabilities wait with their text behind the scheduler's stop-string
            // holdback, and go out with the chunk that carries it.
            let mut pending: Vec<logprobs::Entry> = Vec::new();
            let (mut sent, mut generated) = (0usize, 0usize);
            if plan.kind == Kind::Chat {
                let first = json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
                if tx.send(emit(first)).await.is_err() {
                    return None;
                }
            }
            // Returning drops `s`, which cancels the generation.
            let mut first = Some(first);
            loop {
                let ev = match first.take() {
                    Some(ev) => ev,
                    None => match s.next().await {
                        Some(ev) => ev,
                        None => return None,
                    },
                };
                match ev {
                    Event::Token { id, text, logprob } => {
                        if let Some(lp) = logprob {
                            let e = logprobs::entries(&scheduler, &[id], &[lp], generated);
                            generated += e.iter().map(|e| e.byte_len()).sum::<usize>();
                            pending.extend(e);
                        }
                        // Final text: the scheduler holds stop strings back.
                        let out = text;
                        if !out.is_empty() {
                            sent += out.len();
                            let ready = take_ready(&mut pending, sent);
                            if tx.send(emit(delta(&out, Some(&ready)))).await.is_err() {
                                return None;
                            }
                        }
                    }
                    Event::Done { text, tail, finish, usage, .. } => {
                        let rest = tail;
                        let ready = take_ready(&mut pending, text.len());
                        if (!rest.is_empty() || !ready.is_empty())
                            && tx.send(emit(delta(&rest, Some(&ready)))).await.is_err()
                        {
                            return Some(usage);
                        }
                        let last = match plan.kind {
                            Kind::Text => json!({"index": index, "text": "", "logprobs": null, "finish_reason": finish.openai_reason()}),
                            Kind::Chat => json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": finish.openai_reason()}),
                        };
                        let _ = tx.send(emit(last)).await;
                        return Some(usage);
                    }
                    // Only failures after the first token get here.
                    Event::Error(e) => {
                        let _ = tx.send(ApiError::from(e).body().to_string()).await;
                        return None;
                    }
                }
            }
        }));
    }
    tokio::spawn(async move {
        let mut usage = UsageOut::default();
        for (i, t) in tasks.into_iter().enumerate() {
            if let Ok(Some(u)) = t.await {
                if plan.requests[..i]
                    .iter()
                    .all(|p| p.prompt != plan.requests[i].prompt)
                {
                    usage.prompt_tokens += u.prompt_tokens;
                }
                usage.completion_tokens += u.completion_tokens;
            }
        }
        drop(permit);
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
        charge(&state, &tenant, &usage, reservation);
        if plan.include_usage {
            let object = if plan.kind == Kind::Chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            };
            let v = json!({"id": plan.id, "object": object, "created": created, "model": plan.model, "system_fingerprint": null, "choices": [], "usage": usage});
            let _ = tx.send(v.to_string()).await;
        }
        let _ = tx.send("[DONE]".to_string()).await;
    });
    sse::response(rx)
}
