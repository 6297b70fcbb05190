//! Streaming a variable's text as it is generated.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::backend::TokenSink;
use crate::run::RunEvent;

/// A sink that streams the text of variable `variable` of state `state`.
/// The backend's text is final already, so it is forwarded as it comes.
pub(crate) fn text_sink(
    events: UnboundedSender<RunEvent>,
    state: u64,
    variable: String,
) -> TokenSink {
    Arc::new(move |_ids: &[u32], delta: &str| {
        if !delta.is_empty() {
            // The receiver going away only means nobody listens any more.
            let _ = events.send(RunEvent::Text {
                state,
                variable: variable.clone(),
                delta: delta.to_string(),
            });
        }
    })
}
