//! `/v1/completions` and `/v1/chat/completions`.
//!
//! Both turn into one scheduler generation per choice (`n` per prompt), in
//! the tenant's own cache namespace, after the tenant's token quota and a
//! place at the fair gate. Streaming sends OpenAI's chunks as tokens come.

use crate::auth::{Tenant, hex};
use crate::body::Json;
use crate::db::now;
use crate::error::ApiError;
use crate::logprobs;
use crate::openai::{ChatRequest, Common, CompletionRequest, Content, Prompt, UsageOut};
use crate::quota::{Permit, Reservation};
use crate::sse;
use crate::state::AppState;
use arbor_scheduler::{ChatMessage, SamplingParams};
use arbor_scheduler::{
    Constraint, Event, GenerateRequest, GenerationStream, MAX_TOP_LOGPROBS, Namespace,
};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

mod stream;
use stream::stream;

/// Which endpoint's shapes to produce.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Chat,
}

/// Everything a validated request needs to run.
struct Plan {
    kind: Kind,
    id: String,
    model: String,
    /// One per choice, in choice order.
    requests: Vec<GenerateRequest>,
    stream: bool,
    include_usage: bool,
    /// Report token log-probabilities with this many alternatives.
    logprobs: Option<usize>,
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Json(req): Json<CompletionRequest>,
) -> Result<Response, ApiError> {
    check_model(&state, &req.model)?;
    let logprobs = match req.logprobs {
        Some(k) if k as usize > MAX_TOP_LOGPROBS => {
            return Err(ApiError::bad_request(format!(
                "logprobs must be between 0 and {MAX_TOP_LOGPROBS}"
            )));
        }
        k => k.map(|k| k as usize),
    };
    if req.echo == Some(true) {
        return Err(ApiError::bad_request("echo is not supported"));
    }
    let tok = state.scheduler.tokenizer().clone();
    let prompts: Vec<Vec<u32>> = match req.prompt.clone() {
        Prompt::Text(t) => vec![encode(&tok, &t)?],
        Prompt::Texts(ts) => ts
            .iter()
            .map(|t| encode(&tok, t))
            .collect::<Result<_, _>>()?,
        Prompt::Tokens(ids) => vec![ids],
        Prompt::TokenLists(l) => l,
    };
    // OpenAI's default for the legacy endpoint.
    let mut plan = plan(
        &state,
        &tenant,
        Kind::Text,
        &req.model,
        prompts,
        &req.common(),
        16,
    )?;
    plan.set_logprobs(logprobs);
    execute(state, tenant, plan).await
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Json(req): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    check_model(&state, &req.model)?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (_, Some(k)) if k as usize > MAX_TOP_LOGPROBS => {
            return Err(ApiError::bad_request(format!(
                "top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}"
            )));
        }
        (Some(true), k) => Some(k.unwrap_or(0) as usize),
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "top_logprobs requires logprobs to be true",
            ));
        }
        (_, None) => None,
    };
    let constraint = match &req.response_format {
        None => None,
        Some(f) => match (f.kind.as_str(), &f.json_schema) {
            ("text", _) => None,
            ("json_object", _) => Some(Constraint::JsonSchema(r#"{"type":"object"}"#.into())),
            ("json_schema", Some(js)) => match &js.schema {
                Some(schema) => Some(Constraint::JsonSchema(schema.to_string())),
                None => {
                    return Err(ApiError::bad_request(
                        "response_format.json_schema.schema is required",
                    ));
                }
            },
            ("json_schema", None) => {
                return Err(ApiError::bad_request(
                    "response_format.json_schema is required",
                ));
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported response_format type {other:?}"
                )));
            }
        },
    };
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty"));
    }
    let mut msgs = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported message role {other:?}"
                )));
            }
        };
        let content = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut s = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => s.push_str(t),
                        (k, _) => {
                            return Err(ApiError::bad_request(format!(
                                "unsupported content part {k:?}"
                            )));
                        }
                    }
                }
                s
            }
        };
        msgs.push(ChatMessage {
            role: role.into(),
            content,
        });
    }
    let tok = state.scheduler.tokenizer().clone();
    let text = tok
        .apply_chat_template(&msgs, true)
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let prompt = encode(&tok, &text)?;
    let default_max = state.quotas.max_tokens_per_request;
    let mut plan = plan(
        &state,
        &tenant,
        Kind::Chat,
        &req.model,
        vec![prompt],
        &req.common(),
        default_max,
    )?;
    for r in &mut plan.requests {
        r.constraint = constraint.clone();
    }
    plan.set_logprobs(logprobs);
    execute(state, tenant, plan).await
}

impl Plan {
    /// The most tokens this request could cost: each distinct prompt once
    /// (choices share it in the cache) plus every choice's `max_tokens`.
    fn most_tokens(&self) -> u64 {
        let mut total = 0u64;
        for (i, r) in self.requests.iter().enumerate() {
            if self.requests[..i].iter().all(|p| p.prompt != r.prompt) {
                total += r.prompt.len() as u64;
            }
            total += r.max_tokens as u64;
        }
        total
    }

    fn set_logprobs(&mut self, k: Option<usize>) {
        self.logprobs = k;
        for r in &mut self.requests {
            r.logprobs = k;
        }
    }

    /// A choice's `logprobs` value: `null` unless the request asked.
    fn logprobs_json(&self, entries: Option<&[logprobs::Entry]>) -> Value {
        match (self.logprobs, entries) {
            (Some(_), Some(e)) if self.kind == Kind::Chat => logprobs::chat(e),
            (Some(_), Some(e)) => logprobs::legacy(e),
            _ => Value::Null,
        }
    }
}

fn check_model(state: &AppState, model: &str) -> Result<(), ApiError> {
    if model != state.model_name {
        return Err(ApiError::not_found(&format!(
            "model {model:?} (this server serves {:?})",
            state.model_name
        )));
    }
    Ok(())
}

/// Text to ids, with the model's BOS in front as in training.
fn encode(tok: &arbor_scheduler::Tokenizer, text: &str) -> Result<Vec<u32>, ApiError> {
    let ids = tok
        .encode(text)
        .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e:#}")))?;
    let mut out: Vec<u32> = tok
        .bos_id()
        .filter(|b| ids.first() != Some(b))
        .into_iter()
        .collect();
    out.extend(ids);
    Ok(out)
}

fn plan(
    state: &AppState,
    tenant: &Tenant,
    kind: Kind,
    model: &str,
    prompts: Vec<Vec<u32>>,
    c: &Common,
    default_max: usize,
) -> Result<Plan, ApiError> {
    let q = &state.quotas;
    let n = c.n.unwrap_or(1) as usize;
    if n == 0 || prompts.is_empty() || n * prompts.len() > q.max_n {
        return Err(ApiError::bad_request(format!(
            "n × prompts must be between 1 and {} (got {n} × {})",
            q.max_n,
            prompts.len()
        )));
    }
    let max_context = state.scheduler.max_context();
    let max_tokens = match c.max_tokens {
        Some(0) => return Err(ApiError::bad_request("max_tokens must be at least 1")),
        Some(m) if m as usize > q.max_tokens_per_request => {
            return Err(ApiError::bad_request(format!(
                "max_tokens {m} exceeds this server's limit of {}",
                q.max_tokens_per_request
            )));
        }
        Some(m) => m as usize,
        None => default_max,
    };
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request("temperature must be between 0 and 2"));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request("top_p must be in (0, 1]"));
    }
    let stops = c.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stops.len() > 4 || stops.iter().any(|s| s.is_empty() || s.len() > 256) {
        return Err(ApiError::bad_request(
            "stop takes up to 4 non-empty strings of at most 256 bytes",
        ));
    }
    let seed = c.seed.unwrap_or_else(|| rand::rng().next_u64());
    let mut requests = Vec::with_capacity(n * prompts.len());
    for prompt in &prompts {
        if prompt.is_empty() {
            return Err(ApiError::bad_request("the prompt is empty"));
        }
        if prompt.len() >= max_context {
            return Err(ApiError::bad_request(format!(
                "the prompt has {} tokens; this model's context is {max_context}",
                prompt.len()
            )));
        }
        for _ in 0..n {
            let i = requests.len() as u64;
            requests.push(GenerateRequest {
                namespace: Namespace::tenant(tenant.id as u64),
                prompt: prompt.clone(),
                max_tokens: max_tokens.min(max_context - prompt.len()),
                sampling: SamplingParams {
                    temperature,
                    top_p,
                    presence_penalty: c.presence_penalty.unwrap_or(0.0),
                    frequency_penalty: c.frequency_penalty.unwrap_or(0.0),
                    // Distinct but reproducible choices for one seed.
                    seed: seed.wrapping_add(i),
                    ..SamplingParams::default()
                },
                stop_strings: stops.clone(),
                ..GenerateRequest::new(Namespace::tenant(tenant.id as u64), Vec::new(), 0)
            });
        }
    }
    for r in &requests {
        r.sampling.validate().map_err(ApiError::bad_request)?;
    }
    let mut idb = [0u8; 12];
    rand::rng().fill_bytes(&mut idb);
    let prefix = if kind == Kind::Chat {
        "chatcmpl-"
    } else {
        "cmpl-"
    };
    Ok(Plan {
        kind,
        id: format!("{prefix}{}", hex(&idb)),
        model: model.to_string(),
        requests,
        stream: c.stream.unwrap_or(false),
        include_usage: c.stream_options.as_ref().is_some_and(|o| o.include_usage),
        logprobs: None,
    })
}

/// Takes the quotas, starts every choice and answers in one piece or as SSE.
async fn execute(state: Arc<AppState>, tenant: Tenant, plan: Plan) -> Result<Response, ApiError> {
    let (permit, reservation) = state.admit(&tenant, plan.most_tokens()).await?;
    state.metrics.tenant(&tenant.name, |u| u.requests += 1);
    let mut streams = Vec::with_capacity(plan.requests.len());
    for r in &plan.requests {
        match state.scheduler.generate(r.clone()) {
            Ok(s) => streams.push(s),
            Err(e) => {
                state.token_quota.settle(reservation, 0);
                return Err(e.into());
            }
        }
    }
    if !plan.stream {
        return whole(state, tenant, plan, streams, (permit, reservation)).await;
    }
    // Whatever fails before the first token (a schema the constraint
    // compiler rejects, a request the pool can never hold) must answer its
    // 4xx as it does unstreamed, not a 200 with the error inside the
    // stream: the headers wait for every choice's first event.
    let firsts = futures::future::join_all(streams.iter_mut().map(|s| s.next())).await;
    let mut started = Vec::with_capacity(streams.len());
    for (s, first) in streams.into_iter().zip(firsts) {
        match first {
            Some(Event::Error(e)) => {
                state.token_quota.settle(reservation, 0);
                return Err(e.into());
            }
            Some(ev) => started.push((ev, s)),
            None => {
                state.token_quota.settle(reservation, 0);
                return Err(arbor_scheduler::RequestError::Cancelled.into());
            }
        }
    }
    Ok(stream(state, tenant, plan, started, (permit, reservation)).into_response())
}

fn charge(state: &AppState, tenant: &Tenant, usage: &UsageOut, reservation: Reservation) {
    state
        .token_quota
        .settle(reservation, usage.total_tokens as u64);
    state.metrics.tenant(&tenant.name, |u| {
        u.prompt_tokens += usage.prompt_tokens as u64;
        u.completion_tokens += usage.completion_tokens as u64;
    });
}

async fn whole(
    state: Arc<AppState>,
    tenant: Tenant,
    plan: Plan,
    streams: Vec<GenerationStream>,
    (permit, reservation): (Permit, Reservation),
) -> Result<Response, ApiError> {
    let results = futures::future::join_all(streams.into_iter().map(|s| s.collect())).await;
    drop(permit);
    let mut usage = UsageOut::default();
    let mut choices = Vec::with_capacity(results.len());
    let mut failure = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(g) => {
                // Prompts shared by several choices are counted once per prompt.
                if plan.requests[..i]
                    .iter()
                    .all(|p| p.prompt != plan.requests[i].prompt)
                {
                    usage.prompt_tokens += g.usage.prompt_tokens;
                }
                usage.completion_tokens += g.usage.completion_tokens;
                let entries = plan.logprobs.map(|_| {
                    let all = logprobs::entries(&state.scheduler, &g.tokens, &g.logprobs, 0);
                    logprobs::within(all, g.text.len())
                });
                let lp = plan.logprobs_json(entries.as_deref());
                choices.push(match plan.kind {
                    Kind::Text => json!({"index": i, "text": g.text, "logprobs": lp, "finish_reason": g.finish.openai_reason()}),
                    Kind::Chat => json!({
                        "index": i,
                        "message": {"role": "assistant", "content": g.text},
                        "logprobs": lp,
                        "finish_reason": g.finish.openai_reason(),
                    }),
                });
            }
            Err(e) => failure = Some(e),
        }
    }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    charge(&state, &tenant, &usage, reservation);
    if let Some(e) = failure {
        return Err(e.into());
    }
    let object = if plan.kind == Kind::Chat {
        "chat.completion"
    } else {
        "text_completion"
    };
    Ok(axum::Json(json!({
        "id": plan.id,
        "object": object,
        "created": now(),
        "model": plan.model,
        "system_fingerprint": null,
        "choices": choices,
        "usage": usage,
    }))
    .into_response())
}
