//! Metering a run's model tokens call by call.
//!
//! An embedder that rate-limits tokens (the server's tokens per tenant per
//! minute) gives a run a [`TokenMeter`]. Before each model call the runtime
//! reserves the most that call can use (its prompt, plus `max_tokens` for a
//! generation) and after it settles what was used, so that a run holds
//! quota only for its calls in flight, never for its whole token limit.
//!
//! Invariant: every reservation is settled exactly once: with the prompt
//! plus the tokens generated when the call returns, or, when it fails or is
//! dropped mid-way (the run was cancelled or hit its deadline), with the
//! prompt plus the tokens streamed so far.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use futures::future::BoxFuture;

use crate::backend::TokenSink;
use crate::context::RunShared;
use crate::error::LmError;
use crate::stats::Counters;

/// Where a run's model calls reserve and settle tokens; see the module doc.
pub trait TokenMeter: Debug + Send + Sync + 'static {
    /// Holds `tokens` for one model call. The future may wait (the owner's
    /// quota is spent for now); the run's deadline and cancellation still
    /// apply, as they drop it. An error fails the call with that message,
    /// which the guest gets as `limit-exceeded`.
    fn reserve(&self, tokens: u64) -> BoxFuture<'static, Result<MeterTicket, String>>;

    /// Replaces the reservation behind `ticket` with the `used` tokens.
    fn settle(&self, ticket: MeterTicket, used: u64);
}

/// One reservation of a [`TokenMeter`]; what the number means is the
/// meter's business.
#[derive(Debug)]
pub struct MeterTicket(pub u64);

/// A reservation held by one model call; settles when dropped unsettled.
pub(crate) struct Hold {
    meter: Arc<dyn TokenMeter>,
    ticket: Option<MeterTicket>,
    prompt: u64,
    /// Tokens seen streaming by so far, for a call that never returns.
    streamed: Arc<AtomicU64>,
}

impl Hold {
    /// Reserves `prompt + most` tokens for a call of `run`, or `None`
    /// without a meter. The run counts as waiting for its quota meanwhile.
    pub(crate) async fn reserve(
        run: &RunShared,
        prompt: u64,
        most: u64,
    ) -> Result<Option<Hold>, LmError> {
        let Some(meter) = run.meter.clone() else {
            return Ok(None);
        };
        let _waiting = run.waiting_for_quota();
        let t0 = Instant::now();
        let ticket = meter
            .reserve(prompt + most)
            .await
            .map_err(LmError::LimitExceeded)?;
        Counters::add(
            &run.counters.quota_wait_micros,
            t0.elapsed().as_micros() as u64,
        );
        Ok(Some(Hold {
            meter,
            ticket: Some(ticket),
            prompt,
            streamed: Arc::default(),
        }))
    }

    /// A sink that counts the tokens streamed, for a call cut short, and
    /// hands them on to `forward`.
    pub(crate) fn counting(&self, forward: Option<TokenSink>) -> TokenSink {
        let streamed = self.streamed.clone();
        Arc::new(move |ids: &[u32], text: &str| {
            streamed.fetch_add(ids.len() as u64, Relaxed);
            if let Some(f) = &forward {
                f(ids, text);
            }
        })
    }

    /// Settles with the prompt plus `generated` tokens.
    pub(crate) fn settle(mut self, generated: u64) {
        if let Some(t) = self.ticket.take() {
            self.meter.settle(t, self.prompt + generated);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.meter
                .settle(t, self.prompt + self.streamed.load(Relaxed));
        }
    }
}
