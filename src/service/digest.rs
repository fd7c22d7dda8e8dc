//! Hashing as bytes stream past: SHA-256 (always), MD5 (when the client sent
//! Content-MD5), the byte count, the first bytes (for magic-number sniffing),
//! and a hard byte limit (quota, maximum object size).

use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures::Stream;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::storage::ByteStream;

/// Bytes kept from the start of the body for content sniffing.
pub const HEAD_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
#[error("the body is larger than the {0} bytes allowed")]
pub struct LimitExceeded(pub u64);

struct State {
    sha256: Sha256,
    md5: Option<Md5>,
    len: u64,
    head: Vec<u8>,
    limit: u64,
    exceeded: bool,
}

/// What was learned from a fully read body.
#[derive(Debug, Clone)]
pub struct Digests {
    pub sha256: [u8; 32],
    pub md5: Option<[u8; 16]>,
    pub len: u64,
    pub head: Vec<u8>,
    pub exceeded: bool,
}

impl Digests {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Reads the results once the wrapped stream has been consumed.
#[derive(Clone)]
pub struct Digester(Arc<Mutex<State>>);

impl Digester {
    pub fn finish(&self) -> Digests {
        let Ok(state) = self.0.lock() else {
            return Digests { sha256: [0; 32], md5: None, len: 0, head: Vec::new(), exceeded: true };
        };
        Digests {
            sha256: state.sha256.clone().finalize().into(),
            md5: state.md5.clone().map(|m| m.finalize().into()),
            len: state.len,
            head: state.head.clone(),
            exceeded: state.exceeded,
        }
    }
}

/// Wraps `body`; the stream fails with `LimitExceeded` once more than `limit` bytes pass.
pub fn digesting(body: ByteStream, with_md5: bool, limit: u64) -> (ByteStream, Digester) {
    let state = Arc::new(Mutex::new(State {
        sha256: Sha256::new(),
        md5: with_md5.then(Md5::new),
        len: 0,
        head: Vec::with_capacity(HEAD_BYTES),
        limit,
        exceeded: false,
    }));
    let digester = Digester(state.clone());
    let mut body = body;
    let stream = futures::stream::poll_fn(move |cx| {
        let polled = std::pin::Pin::new(&mut body).poll_next(cx);
        let Poll::Ready(Some(Ok(chunk))) = &polled else {
            return polled;
        };
        let Ok(mut state) = state.lock() else {
            return Poll::Ready(Some(Err(std::io::Error::other("digest state poisoned"))));
        };
        state.len += chunk.len() as u64;
        if state.len > state.limit {
            state.exceeded = true;
            let limit = state.limit;
            return Poll::Ready(Some(Err(std::io::Error::other(LimitExceeded(limit)))));
        }
        state.sha256.update(chunk);
        if let Some(md5) = state.md5.as_mut() {
            md5.update(chunk);
        }
        if state.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - state.head.len()).min(chunk.len());
            state.head.extend_from_slice(&chunk[..take]);
        }
        polled
    });
    (Box::pin(stream), digester)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;

    use super::*;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn hashes_counts_and_keeps_the_head() {
        let (mut stream, digester) = digesting(body(&[b"hello ", b"world"]), true, 100);
        while stream.next().await.is_some() {}
        let digests = digester.finish();
        assert_eq!(digests.len, 11);
        assert_eq!(digests.head, b"hello world");
        assert_eq!(digests.sha256_hex(), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(hex::encode(digests.md5.expect("md5")), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert!(!digests.exceeded);
    }

    #[tokio::test]
    async fn the_limit_stops_the_stream() {
        let (mut stream, digester) = digesting(body(&[b"12345", b"67890", b"x"]), false, 8);
        assert!(stream.next().await.expect("first").is_ok());
        assert!(stream.next().await.expect("second").is_err());
        assert!(digester.finish().exceeded);
    }
}
