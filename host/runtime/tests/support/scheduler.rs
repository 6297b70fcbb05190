//! The real stack behind `LmBackend`: the scheduler over a tiny model with
//! random weights (the engine exports it; ONNX Runtime must be installed,
//! as for the scheduler's own tests).
//!
//! This adapter is test-only and deliberately small; the scheduler's own
//! adapter replaces it when it lands.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbor_engine::export::{WeightDtype, export_random};
use arbor_engine::tokenizer::ChatMessage;
use arbor_engine::{Engine, EngineOptions, Preset, SamplingParams};
use arbor_runtime::{
    BackendError, ChoiceScore, Constraint, Finish, GenerateOptions, Generated, LmBackend,
    Namespace, Role, TokenSink,
};
use arbor_scheduler::{
    Event, FinishReason, GenerateRequest, Scheduler, SchedulerConfig, ScoreRequest,
};
use futures::future::BoxFuture;

fn tiny_model() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        export_random(Preset::Tiny, 7, d.path(), WeightDtype::F32).expect("export tiny model");
        d
    })
    .path()
    .to_path_buf()
}

/// `LmBackend` over a scheduler.
pub struct SchedulerBackend {
    scheduler: Scheduler,
}

impl SchedulerBackend {
    pub fn start() -> Arc<Self> {
        let engine = Engine::open(
            &tiny_model(),
            &EngineOptions {
                kv_slots: 8192,
                threads: 1,
                ..Default::default()
            },
        )
        .expect("open engine");
        Arc::new(SchedulerBackend {
            scheduler: Scheduler::start(engine, SchedulerConfig::default()),
        })
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
}

/// FNV-1a: a stable tenant id for a namespace name.
fn tenant(ns: &Namespace) -> arbor_scheduler::Namespace {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ns.as_str().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    arbor_scheduler::Namespace::tenant(h)
}

fn engine_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Engine(e.to_string())
}

impl LmBackend for SchedulerBackend {
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, BackendError> {
        self.scheduler.tokenizer().encode(text).map_err(engine_err)
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
        let text = tok.apply_chat_template(&[msg], false).map_err(engine_err)?;
        // The template opens the conversation with BOS; one message alone
        // must not repeat it.
        let bos = tok
            .bos_id()
            .map(|b| tok.inner().id_to_token(b).unwrap_or_default());
        Ok(match bos {
            Some(b) if !b.is_empty() => text.strip_prefix(b.as_str()).unwrap_or(&text).to_string(),
            _ => text,
        })
    }

    fn generate(
        &self,
        namespace: Namespace,
        prompt: Vec<u32>,
        options: GenerateOptions,
        sink: Option<TokenSink>,
    ) -> BoxFuture<'static, Result<Generated, BackendError>> {
        let mut req = GenerateRequest::new(tenant(&namespace), prompt, options.max_tokens as usize);
        req.sampling = SamplingParams {
            temperature: options.temperature,
            top_k: options.top_k as usize,
            top_p: options.top_p,
            seed: options.seed.unwrap_or(0),
            ..SamplingParams::default()
        };
        req.stop_strings = options.stop;
        req.constraint = options.constraint.map(|c| match c {
            Constraint::Regex(r) => arbor_scheduler::Constraint::Regex(r),
            Constraint::JsonSchema(s) => arbor_scheduler::Constraint::JsonSchema(s),
        });
        let stream = self.scheduler.generate(req);
        let tok = self.scheduler.tokenizer().clone();
        Box::pin(async move {
            let mut stream = stream.map_err(engine_err)?;
            while let Some(ev) = stream.next().await {
                match ev {
                    Event::Token { id, .. } => {
                        if let Some(s) = &sink {
                            s(&[id]);
                        }
                    }
                    Event::Done {
                        text,
                        mut tokens,
                        finish,
                        ..
                    } => {
                        while tokens.last().is_some_and(|t| tok.eos_ids().contains(t)) {
                            tokens.pop();
                        }
                        let full = tok.decode(&tokens);
                        let finish = match finish {
                            FinishReason::Length => Finish::Length,
                            FinishReason::Stop
                                if full.len() > text.len() && full.starts_with(&text) =>
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
                    Event::Error(e) => return Err(engine_err(e)),
                }
            }
            Err(BackendError::Cancelled)
        })
    }

    fn score_choices(
        &self,
        namespace: Namespace,
        prompt: Vec<u32>,
        choices: Vec<Vec<u32>>,
    ) -> BoxFuture<'static, Result<Vec<ChoiceScore>, BackendError>> {
        let scheduler = self.scheduler.clone();
        Box::pin(async move {
            let scores = scheduler
                .score(ScoreRequest {
                    namespace: tenant(&namespace),
                    prompt,
                    choices,
                })
                .await
                .map_err(engine_err)?;
            Ok(scores
                .into_iter()
                .map(|s| ChoiceScore {
                    logprob: s.logprob,
                    tokens: s.tokens as u32,
                })
                .collect())
        })
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(self.scheduler.stats()).unwrap_or_default()
    }
}
