//! Moving a file's parts between nodes: asking a sender for one, and pacing what this node
//! serves.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chroom_net::{NetHandle, PeerId};
use chroom_proto::{FilePart, SignalRequest, SignalResponse};
use chroom_room::files::Want;
use chroom_store::StoredFile;

/// Asks `sender` for `want` of `file`.
pub(super) async fn fetch(
    net: NetHandle,
    sender: PeerId,
    file: &StoredFile,
    want: Want,
) -> (Want, Result<Bytes, String>) {
    let part = match want {
        Want::Manifest => FilePart::Manifest,
        Want::Chunk(index) => FilePart::Chunk(index),
    };
    let request = SignalRequest::File {
        room: file.room,
        file: file.hash,
        part,
    };
    let answer = match net.request(sender, request).await {
        Ok(SignalResponse::FileData(data)) => Ok(data),
        Ok(SignalResponse::Error(e)) => Err(format!("the sender refused: {e}")),
        Ok(other) => Err(format!("the sender answered {other:?}")),
        Err(e) => Err(format!("the sender is unreachable: {e}")),
    };
    (want, answer)
}

/// Spaces out what this node serves so it stays under a byte rate: each response waits for
/// the time the ones before it take at that rate.
#[derive(Debug)]
pub(super) struct Pacer {
    bytes_per_second: u64,
    next_free: Mutex<Instant>,
}

impl Pacer {
    pub(super) fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    pub(super) async fn wait(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let start = {
            let mut next_free = self
                .next_free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let start = (*next_free).max(Instant::now());
            *next_free = start + cost;
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }
}
