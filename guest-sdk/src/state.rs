use serde::de::DeserializeOwned;

use crate::bindings::lm;
use crate::{Gen, Result, Role};

/// A prompt being built; see the crate docs for the execution model.
///
/// Dropping a state cancels its queued work, except what states forked from
/// it still need.
#[derive(Debug)]
pub struct State {
    inner: lm::State,
}

impl State {
    /// A new, empty state.
    pub fn new() -> Result<Self> {
        Ok(State {
            inner: lm::State::create()?,
        })
    }

    /// The raw WIT resource.
    pub fn raw(&self) -> &lm::State {
        &self.inner
    }

    /// Appends text.
    pub fn append(&self, text: impl AsRef<str>) -> Result<&Self> {
        self.inner.append(text.as_ref())?;
        Ok(self)
    }

    /// Appends a whole chat message.
    pub fn message(&self, role: Role, content: impl AsRef<str>) -> Result<&Self> {
        self.inner.append_message(role, content.as_ref())?;
        Ok(self)
    }

    /// Appends a system message.
    pub fn system(&self, content: impl AsRef<str>) -> Result<&Self> {
        self.message(Role::System, content)
    }

    /// Appends a user message.
    pub fn user(&self, content: impl AsRef<str>) -> Result<&Self> {
        self.message(Role::User, content)
    }

    /// Appends an assistant message with known content.
    pub fn assistant(&self, content: impl AsRef<str>) -> Result<&Self> {
        self.message(Role::Assistant, content)
    }

    /// Opens a chat message whose content is appended or generated next.
    pub fn begin(&self, role: Role) -> Result<&Self> {
        self.inner.begin_message(role)?;
        Ok(self)
    }

    /// Closes the message opened by [`State::begin`].
    pub fn end(&self) -> Result<&Self> {
        self.inner.end_message()?;
        Ok(self)
    }

    /// Generates text into variable `name`.
    pub fn generate(&self, name: &str, options: Gen) -> Result<&Self> {
        self.inner.generate(name, &options.into_options())?;
        Ok(self)
    }

    /// Generates a whole assistant message into variable `name`.
    pub fn assistant_generate(&self, name: &str, options: Gen) -> Result<&Self> {
        self.begin(Role::Assistant)?.generate(name, options)?.end()
    }

    /// Picks the most likely of `choices` into variable `name`; read the
    /// index with [`State::choice`].
    pub fn select<S: AsRef<str>>(&self, name: &str, choices: &[S]) -> Result<&Self> {
        let choices: Vec<String> = choices.iter().map(|c| c.as_ref().to_owned()).collect();
        self.inner.select(name, &choices)?;
        Ok(self)
    }

    /// `n` copies of this state that share its prefix.
    pub fn fork(&self, n: u32) -> Result<Vec<State>> {
        Ok(self
            .inner
            .fork(n)?
            .into_iter()
            .map(|inner| State { inner })
            .collect())
    }

    /// The full text, once queued work is done.
    pub fn text(&self) -> Result<String> {
        Ok(self.inner.text()?)
    }

    /// Captured variable `name`, once queued work is done.
    pub fn variable(&self, name: &str) -> Result<String> {
        Ok(self.inner.variable(name)?)
    }

    /// Captured variable `name` parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        Ok(serde_json::from_str(&self.variable(name)?)?)
    }

    /// The index picked by [`State::select`] for `name`.
    pub fn choice(&self, name: &str) -> Result<u32> {
        Ok(self.inner.choice(name)?)
    }

    /// Number of tokens of the state, once queued work is done.
    pub fn token_count(&self) -> Result<u32> {
        Ok(self.inner.token_count()?)
    }
}

/// Waits for the queued work of every state; the first error wins.
pub fn join<'a>(states: impl IntoIterator<Item = &'a State>) -> Result<()> {
    let raw: Vec<&lm::State> = states.into_iter().map(|s| &s.inner).collect();
    Ok(lm::join(&raw)?)
}
