//! The program runtime's port to the model, implemented over the scheduler
//! so that programs share its batching, its radix cache and its namespaces.

use arbor_runtime::{
    BackendError, ChoiceScore, Finish, GenerateOptions, Generated, LmBackend, Namespace, Role,
    TokenSink,
};
use arbor_scheduler::{
    Event, FinishReason, GenerateRequest, Scheduler, SchedulerError, ScoreRequest,
};
use futures::FutureExt;
use futures::future::BoxFuture;

/// [`LmBackend`] over a [`Scheduler`].
pub struct SchedulerBackend {
    scheduler: Scheduler,
}

impl SchedulerBackend {
    pub fn new(scheduler: Scheduler) -> Self {
        SchedulerBackend { scheduler }
    }
}

/// The runtime names namespaces by tenant id (the server runs programs with
/// the tenant's id as its namespace); anything else would share nothing.
fn namespace(ns: &Namespace) -> Result<arbor_scheduler::Namespace, BackendError> {
    ns.as_str()
        .parse::<u64>()
        .map(arbor_scheduler::Namespace::tenant)
        .map_err(|_| BackendError::InvalidRequest(format!("namespace {ns} is not a tenant id")))
}

fn backend_error(e: SchedulerError) -> BackendError {
    match e {
        SchedulerError::Invalid(m) => BackendError::InvalidRequest(m),
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
        let msg = arbor_engine::tokenizer::ChatMessage {
            role: role.into(),
            content: content.into(),
        };
        self.scheduler
            .tokenizer()
            .apply_chat_template(&[msg], false)
            .map_err(|e| BackendError::InvalidRequest(format!("{e:#}")))
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
                arbor_runtime::Constraint::Regex(r) => arbor_scheduler::Constraint::Regex(r),
                arbor_runtime::Constraint::JsonSchema(s) => {
                    arbor_scheduler::Constraint::JsonSchema(s)
                }
            });
            let req = GenerateRequest {
                sampling: arbor_engine::SamplingParams {
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
                    Event::Token { id, .. } => {
                        if let Some(s) = &sink {
                            s(&[id]);
                        }
                    }
                    Event::Done {
                        text,
                        tokens,
                        finish,
                        ..
                    } => {
                        let full = scheduler.tokenizer().decode(&tokens);
                        let finish = match finish {
                            FinishReason::Length => Finish::Length,
                            // The scheduler cuts the stop string from `text`;
                            // a shorter text than the tokens' means one matched.
                            FinishReason::Stop
                                if text.len() < full.len() && full.starts_with(&text) =>
                            {
                                Finish::Stop { offset: text.len() }
                            }
                            FinishReason::Stop => Finish::EndOfSequence,
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
