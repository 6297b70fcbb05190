//! States: the host side of the `state` resource.
//!
//! Each state is a handle (owned by the guest's resource table) plus a
//! worker task that executes the state's commands in order. Extending calls
//! queue a command and return; reads queue a request and wait for the reply,
//! which orders them after everything queued before. States run in
//! parallel because each has its own worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};

use crate::backend::{Finish, GenerateOptions, Role};
use crate::context::{Reservation, RunShared};
use crate::error::LmError;
use crate::meter::Hold;
use crate::run::RunEvent;
use crate::stats::Counters;
use crate::stream::text_sink;

/// A command on one state.
pub(crate) enum Command {
    Append {
        tokens: Vec<u32>,
        text: String,
    },
    Generate {
        name: String,
        options: GenerateOptions,
    },
    Select {
        name: String,
        choices: Vec<(String, Vec<u32>)>,
    },
    Fork {
        children: Vec<oneshot::Sender<Result<StateData, LmError>>>,
    },
    Read {
        what: Read,
        reply: oneshot::Sender<Result<Value, LmError>>,
    },
}

/// What a read asks for.
pub(crate) enum Read {
    Text,
    Variable(String),
    Choice(String),
    TokenCount,
    /// Nothing: waits for queued work (used by `join`).
    Done,
}

/// What a read returns.
pub(crate) enum Value {
    Text(String),
    Index(u32),
    Done,
}

impl Value {
    pub(crate) fn into_text(self) -> String {
        match self {
            Value::Text(s) => s,
            Value::Index(i) => i.to_string(),
            Value::Done => String::new(),
        }
    }

    pub(crate) fn into_index(self) -> u32 {
        match self {
            Value::Index(i) => i,
            Value::Text(_) | Value::Done => 0,
        }
    }
}

struct Queued {
    seq: u64,
    command: Command,
    // Held until the command is done, bounding the run's queued work.
    _permit: Option<OwnedSemaphorePermit>,
}

/// The contents of a state.
#[derive(Clone, Default)]
pub(crate) struct StateData {
    tokens: Vec<u32>,
    text: String,
    variables: HashMap<String, String>,
    choices: HashMap<String, u32>,
}

/// The host object behind a guest's `state` handle.
pub struct StateHandle {
    tx: mpsc::UnboundedSender<Queued>,
    next_seq: u64,
    /// Sequence number of the newest fork; work after it is unobservable
    /// once the handle is dropped, and is cancelled then.
    last_fork: Arc<AtomicU64>,
    /// Dropped with the handle, which tells the worker.
    _alive: watch::Sender<()>,
    /// The role of the message opened by `begin-message`, if any.
    pub(crate) open_message: Option<Role>,
    /// Tokens the state will have at least once its queue is done (only
    /// generation adds an unknown number). Checking it at the call bounds
    /// what a guest can pile up in the queue behind a slow generation.
    min_tokens: usize,
    run: Arc<RunShared>,
}

impl StateHandle {
    /// Creates a state and its worker. `init` supplies the initial
    /// contents for a fork; `None` starts empty. The live-state claim must
    /// already be made (see `RunShared::claim_states`).
    pub(crate) fn spawn(
        run: &Arc<RunShared>,
        id: u64,
        init: Option<oneshot::Receiver<Result<StateData, LmError>>>,
        open_message: Option<Role>,
        min_tokens: usize,
    ) -> StateHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let (alive_tx, alive_rx) = watch::channel(());
        let last_fork = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            id,
            run: run.clone(),
            rx,
            alive: alive_rx,
            last_fork: last_fork.clone(),
        };
        let task = tokio::spawn(worker.run(init));
        run.adopt_worker(task.abort_handle());
        StateHandle {
            tx,
            next_seq: 1,
            last_fork,
            _alive: alive_tx,
            open_message,
            min_tokens,
            run: run.clone(),
        }
    }

    /// Queues an extending command, waiting if the run's queue is full.
    pub(crate) async fn submit(&mut self, command: Command) -> Result<(), LmError> {
        let adds = match &command {
            Command::Append { tokens, .. } => tokens.len(),
            Command::Select { choices, .. } => {
                choices.iter().map(|(_, t)| t.len()).min().unwrap_or(0)
            }
            Command::Generate { .. } | Command::Fork { .. } | Command::Read { .. } => 0,
        };
        let max = self.run.limits.max_state_tokens as usize;
        if self.min_tokens + adds > max {
            return Err(LmError::LimitExceeded(format!(
                "a state would grow to at least {} tokens, limit {max}",
                self.min_tokens + adds
            )));
        }
        self.min_tokens += adds;
        let permit = self
            .run
            .queue
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| LmError::Cancelled)?;
        self.send(command, Some(permit))
    }

    /// Queues a fork to `n` children whose handles are returned.
    pub(crate) async fn fork(&mut self, n: u32) -> Result<Vec<StateHandle>, LmError> {
        let first_id = self.run.claim_states(n)?;
        let mut senders = Vec::with_capacity(n as usize);
        let mut children = Vec::with_capacity(n as usize);
        for i in 0..u64::from(n) {
            let (tx, rx) = oneshot::channel();
            senders.push(tx);
            children.push(StateHandle::spawn(
                &self.run,
                first_id + i,
                Some(rx),
                self.open_message,
                self.min_tokens,
            ));
        }
        self.last_fork.store(self.next_seq, SeqCst);
        // Children hold their live-state claims from here on, whatever
        // happens to the queueing below: dropping them releases the claims.
        self.submit(Command::Fork { children: senders }).await?;
        Ok(children)
    }

    /// Queues a read and waits for its reply.
    pub(crate) async fn read(&mut self, what: Read) -> Result<Value, LmError> {
        self.read_later(what).await
    }

    /// Queues a read now; the returned future waits for the reply without
    /// borrowing the handle, so that reads on several states overlap.
    pub(crate) fn read_later(
        &mut self,
        what: Read,
    ) -> impl Future<Output = Result<Value, LmError>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Command::Read { what, reply }, None);
        async move {
            sent?;
            rx.await.unwrap_or(Err(LmError::Cancelled))
        }
    }

    fn send(
        &mut self,
        command: Command,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), LmError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.tx
            .send(Queued {
                seq,
                command,
                _permit: permit,
            })
            .map_err(|_| LmError::Cancelled)
    }
}

impl Drop for StateHandle {
    fn drop(&mut self) {
        self.run.release_state();
    }
}

/// Executes one state's commands in order.
struct Worker {
    id: u64,
    run: Arc<RunShared>,
    rx: mpsc::UnboundedReceiver<Queued>,
    alive: watch::Receiver<()>,
    last_fork: Arc<AtomicU64>,
}

/// A change to a state, computed without holding it.
#[derive(Default)]
struct Effect {
    tokens: Vec<u32>,
    text: String,
    variable: Option<(String, String)>,
    choice: Option<(String, u32)>,
}

impl Worker {
    async fn run(mut self, init: Option<oneshot::Receiver<Result<StateData, LmError>>>) {
        let mut failed: Option<LmError> = None;
        let mut data = StateData::default();
        if let Some(init) = init {
            match init.await {
                Ok(Ok(d)) => data = d,
                Ok(Err(e)) => failed = Some(e),
                Err(_) => failed = Some(LmError::Cancelled),
            }
        }
        while let Some(q) = self.rx.recv().await {
            match q.command {
                Command::Read { what, reply } => {
                    let value = match &failed {
                        Some(e) => Err(e.clone()),
                        None => read(&data, what),
                    };
                    let _ = reply.send(value);
                }
                Command::Fork { children } => {
                    for child in children {
                        let _ = child.send(match &failed {
                            Some(e) => Err(e.clone()),
                            None => Ok(data.clone()),
                        });
                    }
                }
                command => {
                    if failed.is_some() || self.unobservable(q.seq) {
                        continue;
                    }
                    let outcome = {
                        let work = self.execute(command, &data.tokens);
                        tokio::pin!(work);
                        tokio::select! {
                            r = &mut work => r,
                            () = dropped(self.alive.clone()) => {
                                if self.unobservable(q.seq) {
                                    // Nothing can read this state any more;
                                    // dropping `work` cancels the request.
                                    return;
                                }
                                // A fork queued after this command needs it.
                                work.await
                            }
                        }
                    };
                    match outcome {
                        Ok(effect) => self.apply(&mut data, effect),
                        Err(e) => failed = Some(e),
                    }
                }
            }
        }
    }

    fn unobservable(&self, seq: u64) -> bool {
        self.alive.has_changed().is_err() && seq > self.last_fork.load(SeqCst)
    }

    fn apply(&self, data: &mut StateData, effect: Effect) {
        data.tokens.extend_from_slice(&effect.tokens);
        data.text.push_str(&effect.text);
        if let Some((name, value)) = effect.variable {
            self.run.emit(RunEvent::Captured {
                state: self.id,
                variable: name.clone(),
                value: value.clone(),
            });
            data.variables.insert(name, value);
        }
        if let Some((name, index)) = effect.choice {
            data.choices.insert(name, index);
        }
    }

    async fn execute(&self, command: Command, tokens: &[u32]) -> Result<Effect, LmError> {
        match command {
            Command::Append { tokens: new, text } => {
                self.check_length(tokens.len(), new.len())?;
                Ok(Effect {
                    tokens: new,
                    text,
                    ..Effect::default()
                })
            }
            Command::Generate { name, options } => self.generate(tokens, name, options).await,
            Command::Select { name, choices } => self.select(tokens, name, choices).await,
            Command::Fork { .. } | Command::Read { .. } => {
                unreachable!("forks and reads are handled by the worker loop")
            }
        }
    }

    fn check_length(&self, have: usize, more: usize) -> Result<(), LmError> {
        let max = self.run.limits.max_state_tokens as usize;
        if have + more > max {
            return Err(LmError::LimitExceeded(format!(
                "a state would grow to {} tokens, limit {max}",
                have + more
            )));
        }
        Ok(())
    }

    async fn generate(
        &self,
        tokens: &[u32],
        name: String,
        mut options: GenerateOptions,
    ) -> Result<Effect, LmError> {
        let room = (self.run.limits.max_state_tokens as usize).saturating_sub(tokens.len());
        if room == 0 {
            return Err(LmError::LimitExceeded(format!(
                "the state already has the maximum of {} tokens",
                self.run.limits.max_state_tokens
            )));
        }
        let wanted = options
            .max_tokens
            .min(u32::try_from(room).unwrap_or(u32::MAX));
        let reservation = Reservation {
            run: &self.run,
            granted: self.run.reserve_tokens(wanted)?,
        };
        options.max_tokens = reservation.granted;
        let metered = Hold::reserve(
            &self.run,
            tokens.len() as u64,
            u64::from(reservation.granted),
        )
        .await?;
        let mut sink = self
            .run
            .events
            .as_ref()
            .map(|events| text_sink(events.clone(), self.id, name.clone()));
        if let Some(hold) = &metered {
            sink = Some(hold.counting(sink));
        }
        Counters::add(&self.run.counters.generate_calls, 1);
        Counters::add(&self.run.counters.prompt_tokens, tokens.len() as u64);
        let generated = self
            .run
            .backend()
            .generate(self.run.namespace, tokens.to_vec(), options, sink)
            .await?;
        let used = generated.tokens.len();
        if used > reservation.granted as usize {
            return Err(LmError::Engine(format!(
                "the backend generated {used} tokens, {} allowed",
                reservation.granted
            )));
        }
        reservation.settle(used as u32);
        if let Some(hold) = metered {
            hold.settle(used as u64);
        }
        Counters::add(&self.run.counters.generated_tokens, used as u64);
        let value = match generated.finish {
            Finish::StopString { offset, .. } if generated.text.is_char_boundary(offset) => {
                generated.text[..offset].to_string()
            }
            _ => generated.text.clone(),
        };
        Ok(Effect {
            tokens: generated.tokens,
            text: generated.text,
            variable: Some((name, value)),
            choice: None,
        })
    }

    async fn select(
        &self,
        tokens: &[u32],
        name: String,
        mut choices: Vec<(String, Vec<u32>)>,
    ) -> Result<Effect, LmError> {
        let longest = choices.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
        self.check_length(tokens.len(), longest)?;
        // Charged like its stats count it: the prompt (settled on drop).
        let _metered = Hold::reserve(&self.run, tokens.len() as u64, 0).await?;
        Counters::add(&self.run.counters.select_calls, 1);
        Counters::add(&self.run.counters.prompt_tokens, tokens.len() as u64);
        let scores = self
            .run
            .backend()
            .score_choices(
                self.run.namespace,
                tokens.to_vec(),
                choices.iter().map(|(_, t)| t.clone()).collect(),
            )
            .await?;
        if scores.len() != choices.len() {
            return Err(LmError::Engine(format!(
                "the backend scored {} of {} choices",
                scores.len(),
                choices.len()
            )));
        }
        let index = best_choice(scores.iter().map(|s| s.normalized()));
        let (text, chosen) = choices.swap_remove(index);
        Ok(Effect {
            tokens: chosen,
            text: text.clone(),
            variable: Some((name.clone(), text)),
            choice: Some((name, index as u32)),
        })
    }
}

/// Index of the highest score; NaN never wins, ties go to the lowest index.
pub(crate) fn best_choice(scores: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, s) in scores.enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best.0
}

/// Resolves when the guest drops the state's handle.
async fn dropped(mut alive: watch::Receiver<()>) {
    while alive.changed().await.is_ok() {}
}

fn read(data: &StateData, what: Read) -> Result<Value, LmError> {
    match what {
        Read::Text => Ok(Value::Text(data.text.clone())),
        Read::TokenCount => Ok(Value::Index(data.tokens.len() as u32)),
        Read::Done => Ok(Value::Done),
        Read::Variable(name) => data
            .variables
            .get(&name)
            .map(|v| Value::Text(v.clone()))
            .ok_or(LmError::UnknownVariable(name)),
        Read::Choice(name) => data
            .choices
            .get(&name)
            .map(|&i| Value::Index(i))
            .ok_or(LmError::UnknownVariable(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::best_choice;

    #[test]
    fn best_choice_prefers_highest_then_lowest_index_and_ignores_nan() {
        assert_eq!(best_choice([-3.0, -1.0, -2.0].into_iter()), 1);
        assert_eq!(best_choice([-1.0, -1.0].into_iter()), 0);
        assert_eq!(best_choice([f64::NAN, -5.0].into_iter()), 1);
        assert_eq!(best_choice([f64::NAN].into_iter()), 0);
    }
}
