//! The runtime's port to the model, implemented over the scheduler so that
//! programs share its batching, its radix cache and its namespaces.
//!
//! A crate of its own so that the runtime depends only on its
//! [`LmBackend`] trait, never on the scheduler or the engine; `arbor run`
//! and the server both use this one adapter.

use arbor_runtime::{
    BackendError, ChoiceScore, Constraint, Finish, GenerateOptions, Generated, LmBackend,
    Namespace, Role, TokenSink,
};
use arbor_scheduler::{
    ChatMessage, Event, FinishReason, GenerateRequest, SamplingParams, Scheduler, SchedulerError,
    ScoreRequest, Stop,
};
use futures::FutureExt;
use futures::future::BoxFuture;

/// [`LmBackend`] over a [`Scheduler`]: what `arbor run` and the server use.
pub struct SchedulerBackend {
    scheduler: Scheduler,
}

impl SchedulerBackend {
    /// A backend that submits every program's work to `scheduler`.
    pub fn new(scheduler: Scheduler) -> Self {
        SchedulerBackend { scheduler }
    }

    /// The scheduler behind this backend.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
}

/// The cache namespace of a run. The server names runs by tenant id, so
/// numeric names map to that tenant's namespace (and share its cache with
/// its OpenAI-endpoint requests). Any other name is hashed into the upper
/// half of the id space, which no tenant id reaches, so a name can never
/// alias a tenant.
fn namespace(ns: &Namespace) -> Result<arbor_scheduler::Namespace, BackendError> {
    let name = ns.as_str();
    if let Ok(id) = name.parse::<u64>() {
        if id >= 1 << 63 {
            return Err(BackendError::InvalidRequest(format!(
                "namespace {name} is out of range for a tenant id"
            )));
        }
        return Ok(arbor_scheduler::Namespace::tenant(id));
    }
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(arbor_scheduler::Namespace::tenant(h | 1 << 63))
}

fn backend_error(e: SchedulerError) -> BackendError {
    match e {
        SchedulerError::Invalid(m) => BackendError::InvalidRequest(m),
        SchedulerError::Constraint(m) => BackendError::BadConstraint(m),
        SchedulerError::TooLarge { .. } => BackendError::InvalidRequest(e.to_string()),
        SchedulerError::Shutdown => BackendError::Cancelled,
        SchedulerError::Engine(m) => BackendError::Engine(m),
    }
}

impl LmBackend for SchedulerBackend {
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, BackendError> {
        self.scheduler
            .tokenizer()
            .encode(text)
            .map_err(|e| BackendError::InvalidRequest(format!("{e:#}")))
    }

    fn detokenize(&self, ids: &[u32]) -> String {
        self.scheduler.tokenizer().decode(ids)
    }

    fn render_chat_message(&self, role: Role, content: &str) -> Result<String, BackendError> {
        let role = match role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let tok = self.scheduler.tokenizer();
        let msg = ChatMessage {
            role: role.into(),
            content: content.into(),
        };
        let text = tok
            .apply_chat_template(&[msg], false)
            .map_err(|e| BackendError::InvalidRequest(format!("{e:#}")))?;
        // Templates open the whole conversation with BOS; rendered one
        // message at a time, each message would repeat it mid-prompt.
        let bos = tok
            .bos_id()
            .and_then(|b| tok.inner().id_to_token(b))
            .unwrap_or_default();
        Ok(match text.strip_prefix(bos.as_str()) {
            Some(rest) if !bos.is_empty() => rest.to_string(),
            _ => text,
        })
    }

    fn generate(
        &self,
        namespace_id: Namespace,
        prompt: Vec<u32>,
        options: GenerateOptions,
        sink: Option<TokenSink>,
    ) -> BoxFuture<'static, Result<Generated, BackendError>> {
        let scheduler = self.scheduler.clone();
        async move {
            let constraint = options.constraint.clone().map(|c| match c {
                Constraint::Regex(r) => arbor_scheduler::Constraint::Regex(r),
                Constraint::JsonSchema(s) => arbor_scheduler::Constraint::JsonSchema(s),
            });
            let req = GenerateRequest {
                sampling: SamplingParams {
                    temperature: options.temperature,
                    top_p: options.top_p,
                    top_k: options.top_k as usize,
                    seed: options.seed.unwrap_or(0),
                    ..Default::default()
                },
                stop_strings: options.stop.clone(),
                constraint,
                ..GenerateRequest::new(
                    namespace(&namespace_id)?,
                    prompt,
                    options.max_tokens as usize,
                )
            };
            let mut stream = scheduler.generate(req).map_err(backend_error)?;
            while let Some(ev) = stream.next().await {
                match ev {
                    Event::Token { id, text, .. } => {
                        if let Some(s) = &sink {
                            s(&[id], &text);
                        }
                    }
                    Event::Done {
                        tail,
                        tokens,
                        finish,
                        stop,
                        ..
                    } => {
                        if let Some(s) = &sink
                            && !tail.is_empty()
                        {
                            s(&[], &tail);
                        }
                        let full = scheduler.tokenizer().decode(&tokens);
                        let finish = match (finish, stop) {
                            (FinishReason::Length, _) => Finish::Length,
                            (_, Some(Stop::StopString { offset, .. })) => Finish::Stop { offset },
                            (_, Some(Stop::ConstraintComplete)) => Finish::ConstraintComplete,
                            (FinishReason::Stop, _) => Finish::EndOfSequence,
                        };
                        return Ok(Generated {
                            tokens,
                            text: full,
                            finish,
                        });
                    }
                    Event::Error(e) => return Err(backend_error(e)),
                }
            }
            Err(BackendError::Cancelled)
        }
        .boxed()
    }

    fn score_choices(
        &self,
        namespace_id: Namespace,
        prompt: Vec<u32>,
        choices: Vec<Vec<u32>>,
    ) -> BoxFuture<'static, Result<Vec<ChoiceScore>, BackendError>> {
        let scheduler = self.scheduler.clone();
        async move {
            let req = ScoreRequest {
                namespace: namespace(&namespace_id)?,
                prompt,
                choices,
            };
            let scores = scheduler.score(req).await.map_err(backend_error)?;
            Ok(scores
                .into_iter()
                .map(|s| ChoiceScore {
                    logprob: s.logprob,
                    tokens: s.tokens as u32,
                })
                .collect())
        }
        .boxed()
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(self.scheduler.stats()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_failures_reach_guests_as_bad_constraint() {
        // Guests tell a bad pattern (their bug) from a bad argument by kind.
        assert_eq!(
            backend_error(SchedulerError::Constraint("x".into())),
            BackendError::BadConstraint("x".into())
        );
        assert_eq!(
            backend_error(SchedulerError::Invalid("y".into())),
            BackendError::InvalidRequest("y".into())
        );
    }

    #[test]
    fn tenant_ids_map_directly_and_names_never_alias_them() {
        let t = |s: &str| namespace(&Namespace::new(s));
        assert_eq!(t("7").unwrap(), arbor_scheduler::Namespace::tenant(7));
        assert!(t(&(1u64 << 63).to_string()).is_err());
        let named = t("default").unwrap();
        assert_eq!(named, t("default").unwrap(), "stable");
        assert_ne!(named, t("other").unwrap());
        for id in [0u64, 1, 7, (1 << 63) - 1] {
            assert_ne!(named, arbor_scheduler::Namespace::tenant(id));
        }
    }
}
