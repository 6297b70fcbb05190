//! The runtime's port to the model, implemented over the scheduler so that
//! programs share its batching, its radix cache and its namespaces.
//!
//! A crate of its own so that the runtime depends only on its
//! [`LmBackend`] trait, never on the scheduler or the engine; `arbor run`
//! and the server both use this one adapter.

use arbor_runtime::{
    ChoiceScore, GenerateOptions, Generated, LmBackend, Namespace, RequestError, Role, TokenSink,
};
use arbor_scheduler::{
    ChatMessage, Event, GenerateRequest, SamplingParams, Scheduler, ScoreRequest,
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

impl LmBackend for SchedulerBackend {
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, RequestError> {
        self.scheduler
            .tokenizer()
            .encode(text)
            .map_err(|e| RequestError::Invalid(format!("{e:#}")))
    }

    fn detokenize(&self, ids: &[u32]) -> String {
        self.scheduler.tokenizer().decode(ids)
    }

    fn render_chat_message(&self, role: Role, content: &str) -> Result<String, RequestError> {
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
            .map_err(|e| RequestError::Invalid(format!("{e:#}")))?;
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
        namespace: Namespace,
        prompt: Vec<u32>,
        options: GenerateOptions,
        sink: Option<TokenSink>,
    ) -> BoxFuture<'static, Result<Generated, RequestError>> {
        let scheduler = self.scheduler.clone();
        async move {
            let req = GenerateRequest {
                sampling: SamplingParams {
                    temperature: options.temperature,
                    top_p: options.top_p,
                    top_k: options.top_k as usize,
                    seed: options.seed.unwrap_or(0),
                    ..Default::default()
                },
                stop_strings: options.stop.clone(),
                constraint: options.constraint.clone(),
                ..GenerateRequest::new(namespace, prompt, options.max_tokens as usize)
            };
            let mut stream = scheduler.generate(req)?;
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
                        ..
                    } => {
                        if let Some(s) = &sink
                            && !tail.is_empty()
                        {
                            s(&[], &tail);
                        }
                        let full = scheduler.tokenizer().decode(&tokens);
                        return Ok(Generated {
                            tokens,
                            text: full,
                            finish,
                        });
                    }
                    Event::Error(e) => return Err(e),
                }
            }
            Err(RequestError::Cancelled)
        }
        .boxed()
    }

    fn score_choices(
        &self,
        namespace: Namespace,
        prompt: Vec<u32>,
        choices: Vec<Vec<u32>>,
    ) -> BoxFuture<'static, Result<Vec<ChoiceScore>, RequestError>> {
        let scheduler = self.scheduler.clone();
        async move {
            let req = ScoreRequest {
                namespace,
                prompt,
                choices,
            };
            scheduler.score(req).await
        }
        .boxed()
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(self.scheduler.stats()).unwrap_or_default()
    }
}
