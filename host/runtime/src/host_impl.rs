//! The `arbor:lm/lm` interface as the guest sees it: argument checks happen
//! here, synchronously, so that a mistake is reported at the call that made
//! it; the work itself is queued on the state (see `state.rs`).

use wasmtime::component::Resource;

use crate::backend::{Constraint, GenerateOptions, Role};
use crate::bindings::lm;
use crate::error::LmError;
use crate::run::RunCtx;
use crate::state::{Command, Read, StateHandle, Value};

type HostResult<T> = wasmtime::Result<Result<T, lm::Error>>;

/// Longest variable name accepted; names are map keys and event labels.
const MAX_NAME_BYTES: usize = 256;
/// Most stop strings of one `generate`.
const MAX_STOP_STRINGS: usize = 16;
/// Bytes of text per token, at least, below which tokenizing a string
/// cannot produce more tokens than a state may hold; longer strings are
/// refused before tokenizing them.
const MAX_BYTES_PER_STATE_TOKEN: usize = 64;

impl From<LmError> for lm::Error {
    fn from(e: LmError) -> Self {
        match e {
            LmError::BadConstraint(m) => lm::Error::BadConstraint(m),
            LmError::LimitExceeded(m) => lm::Error::LimitExceeded(m),
            LmError::InvalidArgument(m) => lm::Error::InvalidArgument(m),
            LmError::UnknownVariable(m) => lm::Error::UnknownVariable(m),
            LmError::Cancelled => lm::Error::Cancelled,
            LmError::Engine(m) => lm::Error::Engine(m),
        }
    }
}

impl From<lm::Role> for Role {
    fn from(r: lm::Role) -> Self {
        match r {
            lm::Role::System => Role::System,
            lm::Role::User => Role::User,
            lm::Role::Assistant => Role::Assistant,
        }
    }
}

fn wit<T>(r: Result<T, LmError>) -> HostResult<T> {
    Ok(r.map_err(lm::Error::from))
}

fn check_name(name: &str) -> Result<(), LmError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(LmError::InvalidArgument(format!(
            "variable names must have 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_options(o: lm::GenerateOptions) -> Result<GenerateOptions, LmError> {
    let bad = |m: String| Err(LmError::InvalidArgument(m));
    if o.max_tokens == 0 {
        return bad("max-tokens must be at least 1".into());
    }
    if !o.temperature.is_finite() || o.temperature < 0.0 {
        return bad(format!(
            "temperature must be finite and >= 0, got {}",
            o.temperature
        ));
    }
    if !(o.top_p > 0.0 && o.top_p <= 1.0) {
        return bad(format!("top-p must be in (0, 1], got {}", o.top_p));
    }
    if o.stop.len() > MAX_STOP_STRINGS
        || o.stop
            .iter()
            .any(|s| s.is_empty() || s.len() > MAX_NAME_BYTES)
    {
        return bad(format!(
            "at most {MAX_STOP_STRINGS} stop strings of 1 to {MAX_NAME_BYTES} bytes each"
        ));
    }
    let constraint = match o.constraint {
        None => None,
        Some(lm::Constraint::Regex(r)) => {
            if r.is_empty() {
                return Err(LmError::BadConstraint("empty regex".into()));
            }
            Some(Constraint::Regex(r))
        }
        Some(lm::Constraint::JsonSchema(s)) => {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&s) {
                return Err(LmError::BadConstraint(format!(
                    "the JSON Schema is not JSON: {e}"
                )));
            }
            Some(Constraint::JsonSchema(s))
        }
    };
    Ok(GenerateOptions {
        max_tokens: o.max_tokens,
        temperature: o.temperature,
        top_p: o.top_p,
        top_k: o.top_k,
        stop: o.stop,
        seed: o.seed,
        constraint,
    })
}

impl RunCtx {
    fn state(&mut self, r: &Resource<StateHandle>) -> wasmtime::Result<&mut StateHandle> {
        self.run.host_call();
        Ok(self.table.get_mut(r)?)
    }

    /// Tokenizes `text` for appending, refusing text that could not fit in
    /// a state before spending time on it.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, LmError> {
        let max = self.run.limits.max_state_tokens as usize;
        if text.len() > max.saturating_mul(MAX_BYTES_PER_STATE_TOKEN) {
            return Err(LmError::LimitExceeded(format!(
                "{} bytes of text cannot fit in a state of at most {max} tokens",
                text.len()
            )));
        }
        Ok(self.run.backend().tokenize(text)?)
    }

    async fn append_text(
        &mut self,
        r: &Resource<StateHandle>,
        tokens: Vec<u32>,
        text: String,
    ) -> HostResult<()> {
        let state = self.state(r)?;
        wit(state.submit(Command::Append { tokens, text }).await)
    }

    async fn read(
        &mut self,
        r: &Resource<StateHandle>,
        what: Read,
    ) -> wasmtime::Result<Result<Value, LmError>> {
        Ok(self.state(r)?.read(what).await)
    }
}

impl lm::HostState for RunCtx {
    async fn create(&mut self) -> HostResult<Resource<StateHandle>> {
        self.run.host_call();
        let id = match self.run.claim_states(1) {
            Ok(id) => id,
            Err(e) => return wit(Err(e)),
        };
        let handle = StateHandle::spawn(&self.run, id, None, None, 0);
        Ok(Ok(self.table.push(handle)?))
    }

    async fn append(&mut self, r: Resource<StateHandle>, text: String) -> HostResult<()> {
        if text.is_empty() {
            // Nothing to queue; still a host call for the statistics.
            self.state(&r)?;
            return Ok(Ok(()));
        }
        match self.tokenize(&text) {
            Ok(tokens) => self.append_text(&r, tokens, text).await,
            Err(e) => {
                self.state(&r)?;
                wit(Err(e))
            }
        }
    }

    async fn append_message(
        &mut self,
        r: Resource<StateHandle>,
        role: lm::Role,
        content: String,
    ) -> HostResult<()> {
        if self.state(&r)?.open_message.is_some() {
            return wit(Err(LmError::InvalidArgument(
                "a message is open (begin-message without end-message)".into(),
            )));
        }
        let rendered = self
            .run
            .backend()
            .render_chat_message(role.into(), &content)
            .map_err(LmError::from);
        match rendered.and_then(|text| Ok((self.tokenize(&text)?, text))) {
            Ok((tokens, text)) => self.append_text(&r, tokens, text).await,
            Err(e) => wit(Err(e)),
        }
    }

    async fn begin_message(&mut self, r: Resource<StateHandle>, role: lm::Role) -> HostResult<()> {
        if let Some(open) = self.state(&r)?.open_message {
            return wit(Err(LmError::InvalidArgument(format!(
                "a {open:?} message is already open"
            ))));
        }
        let affixes = match self.run.lm.affixes(role.into()) {
            Ok(a) => a,
            Err(e) => return wit(Err(e)),
        };
        let state = self.table.get_mut(&r)?;
        state.open_message = Some(role.into());
        wit(state
            .submit(Command::Append {
                tokens: affixes.prefix_tokens.clone(),
                text: affixes.prefix_text.clone(),
            })
            .await)
    }

    async fn end_message(&mut self, r: Resource<StateHandle>) -> HostResult<()> {
        let Some(role) = self.state(&r)?.open_message else {
            return wit(Err(LmError::InvalidArgument(
                "end-message without begin-message".into(),
            )));
        };
        let affixes = match self.run.lm.affixes(role) {
            Ok(a) => a,
            Err(e) => return wit(Err(e)),
        };
        let state = self.table.get_mut(&r)?;
        state.open_message = None;
        wit(state
            .submit(Command::Append {
                tokens: affixes.suffix_tokens.clone(),
                text: affixes.suffix_text.clone(),
            })
            .await)
    }

    async fn generate(
        &mut self,
        r: Resource<StateHandle>,
        name: String,
        options: lm::GenerateOptions,
    ) -> HostResult<()> {
        let state = self.state(&r)?;
        let checked = check_name(&name).and_then(|()| check_options(options));
        match checked {
            Ok(options) => wit(state.submit(Command::Generate { name, options }).await),
            Err(e) => wit(Err(e)),
        }
    }

    async fn select(
        &mut self,
        r: Resource<StateHandle>,
        name: String,
        choices: Vec<String>,
    ) -> HostResult<()> {
        self.state(&r)?;
        let max = self.run.limits.max_choices as usize;
        let checked = check_name(&name).and_then(|()| {
            if choices.is_empty() || choices.len() > max {
                return Err(LmError::InvalidArgument(format!(
                    "select needs 1 to {max} choices"
                )));
            }
            choices
                .into_iter()
                .map(|c| {
                    let tokens = self.tokenize(&c)?;
                    if tokens.is_empty() {
                        return Err(LmError::InvalidArgument("a choice is empty".into()));
                    }
                    Ok((c, tokens))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match checked {
            Ok(choices) => wit(self
                .table
                .get_mut(&r)?
                .submit(Command::Select { name, choices })
                .await),
            Err(e) => wit(Err(e)),
        }
    }

    async fn fork(
        &mut self,
        r: Resource<StateHandle>,
        n: u32,
    ) -> HostResult<Vec<Resource<StateHandle>>> {
        let state = self.state(&r)?;
        if n == 0 {
            return wit(Err(LmError::InvalidArgument("fork needs n >= 1".into())));
        }
        let children = match state.fork(n).await {
            Ok(c) => c,
            Err(e) => return wit(Err(e)),
        };
        let mut handles = Vec::with_capacity(children.len());
        for child in children {
            handles.push(self.table.push(child)?);
        }
        Ok(Ok(handles))
    }

    async fn text(&mut self, r: Resource<StateHandle>) -> HostResult<String> {
        wit(self.read(&r, Read::Text).await?.map(Value::into_text))
    }

    async fn variable(&mut self, r: Resource<StateHandle>, name: String) -> HostResult<String> {
        wit(self
            .read(&r, Read::Variable(name))
            .await?
            .map(Value::into_text))
    }

    async fn choice(&mut self, r: Resource<StateHandle>, name: String) -> HostResult<u32> {
        wit(self
            .read(&r, Read::Choice(name))
            .await?
            .map(Value::into_index))
    }

    async fn token_count(&mut self, r: Resource<StateHandle>) -> HostResult<u32> {
        wit(self
            .read(&r, Read::TokenCount)
            .await?
            .map(Value::into_index))
    }

    async fn drop(&mut self, r: Resource<StateHandle>) -> wasmtime::Result<()> {
        // Dropping the handle tells its worker (see `StateHandle`).
        self.table.delete(r)?;
        Ok(())
    }
}

impl lm::Host for RunCtx {
    async fn join(&mut self, states: Vec<Resource<StateHandle>>) -> HostResult<()> {
        self.run.host_call();
        // Queue every barrier first so that the states finish in parallel.
        let mut replies = Vec::with_capacity(states.len());
        for r in &states {
            replies.push(self.table.get_mut(r)?.read_later(Read::Done));
        }
        let mut first_error = None;
        for reply in replies {
            if let Err(e) = reply.await
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        }
        wit(first_error.map_or(Ok(()), Err))
    }
}
