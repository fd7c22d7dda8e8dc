//! Request bodies as `Send` streams. actix payloads live on their worker
//! thread; a small bounded channel carries chunks to the services (and gives
//! backpressure). A client that goes away mid-body, or sends nothing for
//! `client_body_timeout`, is an error, never a silently shorter body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::storage::ByteStream;

/// Chunks buffered between the connection and the storage writer.
const IN_FLIGHT_CHUNKS: usize = 16;

/// The payload as a `Send` stream; it fails once the client has sent nothing for `idle`.
pub fn byte_stream<S, E>(payload: S, idle: Duration) -> ByteStream
where
    S: Stream<Item = Result<Bytes, E>> + 'static,
    E: std::fmt::Display,
{
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(IN_FLIGHT_CHUNKS);
    let complete = Arc::new(AtomicBool::new(false));
    let finished = complete.clone();
    actix_web::rt::spawn(async move {
        let mut payload = std::pin::pin!(payload);
        loop {
            let chunk = match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    let stalled = format!("the client sent no body bytes for {} s", idle.as_secs_f64());
                    let _ = sender.send(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, stalled))).await;
                    return;
                }
            };
            let failed = chunk.is_err();
            let item = chunk.map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e.to_string()));
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
        finished.store(true, Ordering::SeqCst);
    });
    // Fused: consumers may poll again after the end (storage writers do) and must just see the end again.
    Box::pin(
        futures::stream::unfold(Some((receiver, complete)), |state| async move {
            let (mut receiver, complete) = state?;
            match receiver.recv().await {
                Some(item) => Some((item, Some((receiver, complete)))),
                None if complete.load(Ordering::SeqCst) => None,
                None => Some((
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the client went away mid-body")),
                    None,
                )),
            }
        })
        .fuse(),
    )
}
