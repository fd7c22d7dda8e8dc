//! Part-sized buffers for streamed multipart uploads, reused from one part to
//! the next so that a long upload allocates nothing after its first parts.
//!
//! Why reuse rather than keep the chunks as they arrived: each chunk is a
//! small allocation whose life ends when its part is acknowledged, and glibc
//! scatters them over its arenas; resident memory then crept upwards with the
//! length of the upload (B3: +24 MiB from a 100 MiB to a 3 GiB upload, with
//! only ~25 MiB live). Copying into fixed buffers costs one memcpy per byte
//! and keeps the footprint at `(parts in flight + 1) × part size`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// A bounded stack of free buffers of one capacity.
pub struct PartBuffers {
    free: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
    keep: usize,
}

impl PartBuffers {
    /// Buffers of `capacity` bytes; at most `keep` free ones are kept.
    pub fn new(capacity: usize, keep: usize) -> Arc<Self> {
        Arc::new(Self { free: Mutex::new(Vec::new()), capacity, keep })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// An empty buffer (`capacity` bytes reserved), reused when one is free.
    pub fn take(self: &Arc<Self>) -> PartBuffer {
        let reused = self.free.lock().ok().and_then(|mut free| free.pop());
        let data = reused.unwrap_or_else(|| Vec::with_capacity(self.capacity));
        PartBuffer { data, home: Some(self.clone()) }
    }

    /// How many free buffers are kept now.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.free.lock().map_or(0, |free| free.len())
    }

    fn give_back(&self, mut data: Vec<u8>) {
        data.clear();
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.keep
            && data.capacity() == self.capacity
        {
            free.push(data);
        }
    }
}

/// A buffer that returns to its pool when dropped (also as the owner of `Bytes`).
pub struct PartBuffer {
    data: Vec<u8>,
    home: Option<Arc<PartBuffers>>,
}

impl PartBuffer {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Room left before the buffer is full.
    pub fn room(&self) -> usize {
        self.data.capacity() - self.data.len()
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// The contents as `Bytes`; the buffer goes back to the pool when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PartBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PartBuffer {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            home.give_back(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_the_bound() {
        let pool = PartBuffers::new(16, 2);
        let mut first = pool.take();
        first.extend(b"hello");
        let bytes = first.freeze();
        assert_eq!(&bytes[..], b"hello");
        let slice = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(pool.idle(), 0, "a slice still holds the buffer");
        drop(slice);
        assert_eq!(pool.idle(), 1);
        let again = pool.take();
        assert!(again.is_empty() && again.room() == 16, "returned empty, capacity kept");
        let held: Vec<PartBuffer> = (0..4).map(|_| pool.take()).collect();
        drop(again);
        drop(held);
        assert_eq!(pool.idle(), 2, "no more than `keep` are kept");
    }
}
