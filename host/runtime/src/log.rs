//! The run's log: the guest's stdout and stderr, captured with a cap.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Largest write the guest is offered at once; WASI streams bound host
/// allocations by this permit.
const WRITE_PERMIT: usize = 64 << 10;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    truncated: bool,
    written: u64,
}

/// Shared by stdout and stderr. Writes past the cap are accepted and
/// dropped, so that a chatty guest keeps running (Rust's `println!` panics
/// when a write fails) while the host's memory stays bounded.
#[derive(Clone)]
pub(crate) struct LogSink {
    cap: usize,
    buf: Arc<Mutex<Buffer>>,
}

impl LogSink {
    pub(crate) fn new(cap: usize) -> Self {
        LogSink {
            cap,
            buf: Arc::default(),
        }
    }

    fn push(&self, data: &[u8]) {
        // A poisoned lock only means another writer panicked mid-push; the
        // bytes are still a valid prefix.
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        buf.written += data.len() as u64;
        let room = self.cap.saturating_sub(buf.bytes.len());
        if data.len() > room {
            buf.truncated = true;
        }
        let take = data.len().min(room);
        buf.bytes.extend_from_slice(&data[..take]);
    }

    /// The log so far (lossy UTF-8), whether bytes were dropped, and how
    /// many were written in all.
    pub(crate) fn contents(&self) -> (String, bool, u64) {
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        (
            String::from_utf8_lossy(&buf.bytes).into_owned(),
            buf.truncated,
            buf.written,
        )
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl Pollable for LogSink {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async {})
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_prefix_up_to_the_cap_and_marks_truncation() {
        let mut sink = LogSink::new(8);
        OutputStream::write(&mut sink, Bytes::from_static(b"hello ")).unwrap();
        assert_eq!(sink.contents(), ("hello ".to_string(), false, 6));
        OutputStream::write(&mut sink, Bytes::from_static(b"world")).unwrap();
        assert_eq!(sink.contents(), ("hello wo".to_string(), true, 11));
        OutputStream::write(&mut sink, Bytes::from_static(b"!")).unwrap();
        assert_eq!(sink.contents(), ("hello wo".to_string(), true, 12));
    }
}
