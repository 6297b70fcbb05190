//! The async face of the scheduler: submit requests, receive streams.

use crate::config::SchedulerConfig;
use crate::core::{Command, Core, PoolAudit};
use crate::engine::StepEngine;
use crate::request::{Event, GenerateRequest, MAX_TOP_LOGPROBS, ScoreRequest, TokenLogprob, Usage};
use crate::stats::SchedulerStats;
use arbor_constraint::{ConstraintCache, Limits, SchemaOptions, TokenFsm, Vocab};
use arbor_engine::{Engine, Tokenizer};
use arbor_types::{ChoiceScore, Constraint, ConstraintError, Finish, RequestError};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// A handle on the scheduler thread; cheap to clone and share.
#[derive(Clone)]
pub struct Scheduler {
    // Declared first, so dropped first: the last handle's sender closes the
    // channel before `_thread` waits for the loop to see it and end.
    tx: mpsc::Sender<Command>,
    stats: Arc<Mutex<SchedulerStats>>,
    tokenizer: Arc<Tokenizer>,
    max_context: usize,
    vocab: usize,
    constraints: Arc<Constraints>,
    _thread: Arc<Joined>,
}

/// The scheduler thread, joined when the last handle goes: the engine (and
/// with it ONNX Runtime's CUDA session) is then dropped before the process
/// can exit. A process that returned from `main` with the thread still
/// stepping tore CUDA down under it ("driver shutting down", then a
/// segmentation fault).
struct Joined(Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Joined {
    fn drop(&mut self) {
        let handle = self.0.lock().map(|mut h| h.take()).unwrap_or(None);
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

/// Compiled constraints, shared by every handle.
struct Constraints {
    cache: ConstraintCache,
    /// The model's vocabulary as bytes, or why it could not be read.
    vocab: Result<Arc<Vocab>, ConstraintError>,
}

/// The tokens of one generation as they come. Dropping it cancels the
/// request and frees everything it holds.
pub struct GenerationStream {
    rx: tmpsc::UnboundedReceiver<Event>,
}

/// A finished generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish: Finish,
    pub usage: Usage,
    /// One per streamed token, when the request asked for log-probabilities.
    pub logprobs: Vec<TokenLogprob>,
}

impl GenerationStream {
    /// The next event; `None` after `Done` or `Error`.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Waits for the end, keeping only the tokens' log-probabilities.
    pub async fn collect(mut self) -> Result<Generated, RequestError> {
        let mut logprobs = Vec::new();
        while let Some(ev) = self.rx.recv().await {
            if let Some(end) = ending(ev, &mut logprobs) {
                return end;
            }
        }
        Err(RequestError::Cancelled)
    }

    /// [`Self::collect`] for synchronous callers (not inside a tokio runtime).
    pub fn blocking_collect(mut self) -> Result<Generated, RequestError> {
        let mut logprobs = Vec::new();
        while let Some(ev) = self.rx.blocking_recv() {
            if let Some(end) = ending(ev, &mut logprobs) {
                return end;
            }
        }
        Err(RequestError::Cancelled)
    }
}

/// The outcome an event ends a generation with, if it ends it; token
/// log-probabilities accumulate in `logprobs` until then.
fn ending(ev: Event, logprobs: &mut Vec<TokenLogprob>) -> Option<Result<Generated, RequestError>> {
    match ev {
        Event::Token { logprob, .. } => {
            logprobs.extend(logprob);
            None
        }
        Event::Done {
            text,
            tokens,
            finish,
            usage,
            ..
        } => Some(Ok(Generated {
            text,
            tokens,
            finish,
            usage,
            logprobs: std::mem::take(logprobs),
        })),
        Event::Error(e) => Some(Err(e)),
    }
}

impl Scheduler {
    /// Starts the scheduler thread, which owns `engine` from now on. The
    /// thread ends when every handle is dropped and its work is done.
    ///
    /// Panics if the engine's pool cannot be divided into its pages (an
    /// engine guarantees that when it is opened).
    pub fn start<E: StepEngine>(engine: E, config: SchedulerConfig) -> Self {
        Self::try_start(engine, config).expect("the engine's KV pool is made of whole pages")
    }

    /// [`Self::start`], with an error for an engine whose pool is not a
    /// whole number of pages.
    pub fn try_start<E: StepEngine>(
        engine: E,
        config: SchedulerConfig,
    ) -> Result<Self, RequestError> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Mutex::new(SchedulerStats::default()));
        let tokenizer = engine.tokenizer();
        let max_context = engine.max_context();
        let vocab = engine.vocab_size();
        let constraints = Arc::new(Constraints {
            cache: ConstraintCache::new(Limits::default(), 256),
            vocab: constraint_vocab(&tokenizer),
        });
        let core = Core::new(
            Box::new(engine),
            config,
            stats.clone(),
            constraints.vocab.clone().ok(),
        )?;
        let thread = std::thread::Builder::new()
            .name("arbor-scheduler".into())
            .spawn(move || core.run(rx))
            .map_err(|e| RequestError::Engine(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Scheduler {
            tx,
            stats,
            tokenizer,
            max_context,
            vocab,
            constraints,
            _thread: Arc::new(Joined(Mutex::new(Some(thread)))),
        })
    }

    /// Submits a generation; tokens arrive on the returned stream.
    pub fn generate(&self, req: GenerateRequest) -> Result<GenerationStream, RequestError> {
        self.validate_tokens(&req.prompt)?;
        if req.prompt.is_empty() {
            return Err(RequestError::Invalid("empty prompt".into()));
        }
        if req.prompt.len() >= self.max_context {
            return Err(RequestError::Invalid(format!(
                "prompt of {} tokens does not fit the model's context of {}",
                req.prompt.len(),
                self.max_context
            )));
        }
        req.sampling.validate().map_err(RequestError::Invalid)?;
        if req.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return Err(RequestError::Invalid(format!(
                "at most {MAX_TOP_LOGPROBS} alternatives per token"
            )));
        }
        let (etx, erx) = tmpsc::unbounded_channel();
        let Some(constraint) = req.constraint.clone() else {
            self.tx
                .send(Command::Generate(req, etx, None))
                .map_err(|_| RequestError::Cancelled)?;
            return Ok(GenerationStream { rx: erx });
        };
        // An automaton compiled before is answered here, without a thread.
        if let Some(compiled) = self.constraints.if_cached(&constraint) {
            let fsm = compiled.map_err(RequestError::Constraint)?;
            self.tx
                .send(Command::Generate(req, etx, Some(fsm)))
                .map_err(|_| RequestError::Cancelled)?;
            return Ok(GenerationStream { rx: erx });
        }
        // Compiling can take up to the compile limits (hostile patterns):
        // never on the scheduler's thread, nor on the caller's async task.
        let constraints = self.constraints.clone();
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name("arbor-constraint".into())
            .spawn(move || match constraints.compile(&constraint) {
                Ok(fsm) => {
                    if let Err(mpsc::SendError(Command::Generate(_, etx, _))) =
                        tx.send(Command::Generate(req, etx, Some(fsm)))
                    {
                        let _ = etx.send(Event::Error(RequestError::Cancelled));
                    }
                }
                Err(e) => {
                    let _ = etx.send(Event::Error(RequestError::Constraint(e)));
                }
            })
            .map_err(|e| RequestError::Engine(format!("cannot start a compile thread: {e}")))?;
        Ok(GenerationStream { rx: erx })
    }

    /// Scores each choice as a continuation of the prompt: the prompt is
    /// prefilled once (or found in the cache) and all choices run in one pass.
    pub async fn score(&self, req: ScoreRequest) -> Result<Vec<ChoiceScore>, RequestError> {
        self.submit_score(req)?
            .await
            .map_err(|_| RequestError::Cancelled)?
    }

    /// [`Self::score`] for synchronous callers.
    pub fn blocking_score(&self, req: ScoreRequest) -> Result<Vec<ChoiceScore>, RequestError> {
        self.submit_score(req)?
            .blocking_recv()
            .map_err(|_| RequestError::Cancelled)?
    }

    fn submit_score(
        &self,
        req: ScoreRequest,
    ) -> Result<oneshot::Receiver<Result<Vec<ChoiceScore>, RequestError>>, RequestError> {
        self.validate_tokens(&req.prompt)?;
        if req.prompt.is_empty() {
            return Err(RequestError::Invalid("empty prompt".into()));
        }
        if req.choices.is_empty() || req.choices.iter().any(|c| c.is_empty()) {
            return Err(RequestError::Invalid(
                "select needs at least one choice, and no empty choice".into(),
            ));
        }
        for c in &req.choices {
            self.validate_tokens(c)?;
            if req.prompt.len() + c.len() > self.max_context {
                return Err(RequestError::Invalid(
                    "prompt plus choice exceeds the model's context".into(),
                ));
            }
        }
        let (otx, orx) = oneshot::channel();
        self.tx
            .send(Command::Score(req, otx))
            .map_err(|_| RequestError::Cancelled)?;
        Ok(orx)
    }

    fn validate_tokens(&self, ids: &[u32]) -> Result<(), RequestError> {
        match ids.iter().find(|&&t| t as usize >= self.vocab) {
            Some(t) => Err(RequestError::Invalid(format!(
                "token id {t} is outside the vocabulary ({})",
                self.vocab
            ))),
            None => Ok(()),
        }
    }

    /// Accounts for every pool slot (free, cached, private) and checks the
    /// radix cache's invariants, between two steps.
    pub async fn audit(&self) -> Result<PoolAudit, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Audit(tx))
            .map_err(|_| RequestError::Cancelled)?;
        rx.await.map_err(|_| RequestError::Cancelled)
    }

    /// Stops the scheduler, failing queued and running requests with
    /// [`RequestError::Cancelled`], and returns the engine (to reuse its
    /// loaded session, e.g. between benchmark runs).
    pub fn shutdown(self) -> Result<Engine, RequestError> {
        self.shutdown_as::<Engine>()
    }

    /// [`Self::shutdown`] for a scheduler started on an engine of type `E`.
    pub fn shutdown_as<E: StepEngine>(self) -> Result<E, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Shutdown(tx))
            .map_err(|_| RequestError::Cancelled)?;
        let engine = rx.blocking_recv().map_err(|_| RequestError::Cancelled)?;
        engine
            .downcast::<E>()
            .map(|e| *e)
            .map_err(|_| RequestError::Invalid("the scheduler runs another kind of engine".into()))
    }

    /// The latest statistics.
    pub fn stats(&self) -> SchedulerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// The bytes token `id` stands for (what APIs report as a token's
    /// `bytes`); from the constraint vocabulary, else from decoding it alone.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        match &self.constraints.vocab {
            Ok(v) if (id as usize) < v.len() => v.token_bytes(id).to_vec(),
            _ => self.tokenizer.decode(&[id]).into_bytes(),
        }
    }

    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// Configuration-independent settings of the model, for clients.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }
}

impl Constraints {
    /// The compiled automaton of a regex or choices constraint compiled
    /// before; `None` when compiling is still needed (schemas are
    /// translated first, which is left to the compile thread).
    fn if_cached(&self, c: &Constraint) -> Option<Result<Arc<TokenFsm>, ConstraintError>> {
        let vocab = self.vocab.as_ref().ok()?;
        let pattern = match c {
            Constraint::Regex(r) => r.clone(),
            Constraint::Choices(cs) if !cs.is_empty() => arbor_constraint::choices_to_regex(cs),
            _ => return None,
        };
        self.cache.regex_if_cached(&pattern, vocab)
    }

    fn compile(&self, c: &Constraint) -> Result<Arc<TokenFsm>, ConstraintError> {
        let vocab = self.vocab.as_ref().map_err(Clone::clone)?;
        match c {
            Constraint::Regex(r) => self.cache.regex(r, vocab),
            Constraint::JsonSchema(s) => self.cache.schema_str(s, &SchemaOptions::default(), vocab),
            Constraint::Choices(cs) => {
                if cs.is_empty() {
                    return Err(ConstraintError::NoChoices);
                }
                self.cache
                    .regex(&arbor_constraint::choices_to_regex(cs), vocab)
            }
        }
    }
}

/// The model's vocabulary as byte strings, for token automata.
fn constraint_vocab(tok: &Tokenizer) -> Result<Arc<Vocab>, ConstraintError> {
    let json = tok
        .inner()
        .to_string(false)
        .map_err(|e| ConstraintError::InvalidTokenizer(e.to_string()))?;
    let eos: Vec<String> = tok
        .eos_ids()
        .iter()
        .filter_map(|&i| tok.inner().id_to_token(i))
        .collect();
    let names: Vec<&str> = eos.iter().map(|s| s.as_str()).collect();
    Vocab::from_tokenizer_json(&json, &names).map(Arc::new)
}
