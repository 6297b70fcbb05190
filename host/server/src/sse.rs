//! Server-Sent Events: OpenAI's framing (`data: <json>` then `data: [DONE]`).
//! The text they carry is the scheduler's: its deltas are final (stop
//! strings already held back), so nothing here looks at text.

use axum::response::sse::{Event, Sse};
use futures::Stream;
use std::convert::Infallible;
use tokio::sync::mpsc;

/// An SSE response whose events are the strings received on `rx`, each
/// sent as one `data:` line. The stream ends when every sender is gone;
/// the body being dropped (client gone) closes `rx`, which the producers
/// notice on their next send and stop, cancelling their generations.
pub fn response(rx: mpsc::Receiver<String>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|data| (Ok(Event::default().data(data)), rx))
    });
    Sse::new(stream)
}
