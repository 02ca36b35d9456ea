//! The media actor's UDP socket, read and written in batches.
//!
//! Reading takes up to [`RECV_SLOTS`] messages per `recvmmsg`, each possibly several datagrams
//! the kernel coalesced (GRO). Writing queues the datagrams a pass produced in an [`Outbox`] and
//! sends each destination's run of equal-sized datagrams as one GSO send: a relayer forwarding a
//! frame's dozen packets to a child makes one system call, not twelve.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Messages read per system call.
pub(crate) const RECV_SLOTS: usize = 8;

/// Largest GSO or GRO batch in bytes: the kernel's limit for one UDP send.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// A non-blocking UDP socket with batched, offloaded reads and writes where the OS has them
/// (Linux); elsewhere one datagram per call.
#[derive(Debug)]
pub(crate) struct MediaSocket {
    io: UdpSocket,
    state: UdpSocketState,
}

impl MediaSocket {
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let io = UdpSocket::bind(addr).await?;
        let state = UdpSocketState::new(UdpSockRef::from(&io))?;
        Ok(Self { io, state })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Waits until a read may succeed. Cancel-safe.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Reads what is waiting without blocking: `Ok(0)` when nothing is.
    pub(crate) fn try_recv(&self, buffers: &mut RecvBuffers) -> io::Result<usize> {
        let RecvBuffers { storage, meta, .. } = buffers;
        let result = self.io.try_io(Interest::READABLE, || {
            let mut slots = storage.chunks_mut(MAX_BATCH_BYTES);
            let mut slices: [IoSliceMut<'_>; RECV_SLOTS] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            self.state
                .recv(UdpSockRef::from(&self.io), &mut slices, meta)
        });
        match result {
            Ok(count) => {
                buffers.filled = count;
                Ok(count)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                buffers.filled = 0;
                Ok(0)
            }
            Err(e) => {
                buffers.filled = 0;
                Err(e)
            }
        }
    }

    /// Sends and empties `outbox`. UDP is lossy anyway: a full socket buffer drops datagrams,
    /// it does not stall every other link; drops are logged and counted in `outbox`.
    pub(crate) fn send(&self, outbox: &mut Outbox) {
        outbox.queued.sort_by_key(|(destination, _)| *destination);
        let max_segments = self.state.max_gso_segments().max(1);
        let mut rest = &outbox.queued[..];
        while let Some(((destination, first), _)) = rest.split_first() {
            let run = gso_run(rest, max_segments);
            let transmit = if run == 1 {
                Transmit {
                    destination: *destination,
                    ecn: None,
                    contents: first,
                    segment_size: None,
                    src_ip: None,
                }
            } else {
                outbox.batch.clear();
                for (_, contents) in &rest[..run] {
                    outbox.batch.extend_from_slice(contents);
                }
                Transmit {
                    destination: *destination,
                    ecn: None,
                    contents: &outbox.batch,
                    segment_size: Some(first.len()),
                    src_ip: None,
                }
            };
            let sent = self.io.try_io(Interest::WRITABLE, || {
                self.state.send(UdpSockRef::from(&self.io), &transmit)
            });
            if let Err(e) = sent {
                tracing::debug!(%destination, datagrams = run, error = %e, "udp send dropped");
                outbox.dropped += run as u64;
            }
            rest = &rest[run..];
        }
        outbox.queued.clear();
    }
}

/// How many datagrams from the start of `queued` (sorted by destination) one GSO send can
/// carry: same destination, all as long as the first except a shorter last one.
fn gso_run(queued: &[(SocketAddr, Vec<u8>)], max_segments: usize) -> usize {
    let Some(((destination, first), rest)) = queued.split_first() else {
        return 0;
    };
    let size = first.len();
    let mut run = 1;
    let mut bytes = size;
    for (next_destination, contents) in rest {
        if run == max_segments
            || next_destination != destination
            || contents.len() > size
            || bytes + contents.len() > MAX_BATCH_BYTES
        {
            break;
        }
        run += 1;
        bytes += contents.len();
        if contents.len() < size {
            break;
        }
    }
    run
}

/// Receive storage for one batched read.
#[derive(Debug)]
pub(crate) struct RecvBuffers {
    storage: Vec<u8>,
    meta: [RecvMeta; RECV_SLOTS],
    filled: usize,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        Self {
            storage: vec![0; RECV_SLOTS * MAX_BATCH_BYTES],
            meta: [RecvMeta::default(); RECV_SLOTS],
            filled: 0,
        }
    }
}

impl RecvBuffers {
    /// The datagrams of the last read, in arrival order, split at GRO boundaries.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta[..self.filled]
            .iter()
            .zip(self.storage.chunks(MAX_BATCH_BYTES))
            .flat_map(|(meta, slot)| {
                let stride = if meta.stride == 0 {
                    meta.len
                } else {
                    meta.stride
                };
                slot[..meta.len]
                    .chunks(stride.max(1))
                    .map(move |datagram| (meta.addr, datagram))
            })
    }
}

/// Datagrams waiting to be sent, and how many sends failed so far.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queued: Vec<(SocketAddr, Vec<u8>)>,
    /// Reused buffer of one GSO send.
    batch: Vec<u8>,
    pub(crate) dropped: u64,
}

impl Outbox {
    pub(crate) fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.queued.push((destination, contents));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(entries: &[(u16, usize)]) -> Vec<(SocketAddr, Vec<u8>)> {
        entries
            .iter()
            .map(|&(port, len)| (SocketAddr::from(([127, 0, 0, 1], port)), vec![0; len]))
            .collect()
    }

    #[test]
    fn a_run_takes_equal_sizes_to_one_destination_and_a_shorter_last() {
        assert_eq!(
            gso_run(&queued(&[(1, 100), (1, 100), (1, 60), (1, 100)]), 64),
            3
        );
        assert_eq!(gso_run(&queued(&[(1, 100), (1, 120)]), 64), 1);
        assert_eq!(gso_run(&queued(&[(1, 100), (2, 100)]), 64), 1);
        assert_eq!(gso_run(&queued(&[(1, 100); 5]), 3), 3);
        assert_eq!(gso_run(&queued(&[]), 64), 0);
    }

    #[test]
    fn a_run_stays_under_the_kernel_limit() {
        let run = gso_run(&queued(&[(1, 1200); 64]), 64);
        assert_eq!(run, MAX_BATCH_BYTES / 1200);
    }

    #[tokio::test]
    async fn batched_sends_arrive_as_the_same_datagrams_in_order() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let sender = MediaSocket::bind(loopback).await.unwrap();
        let receiver = MediaSocket::bind(loopback).await.unwrap();
        let to = receiver.local_addr().unwrap();
        let mut outbox = Outbox::default();
        let sent: Vec<Vec<u8>> = (0..20u8)
            .map(|i| vec![i; if i == 19 { 500 } else { 1100 }])
            .collect();
        for datagram in &sent {
            outbox.push(to, datagram.clone());
        }
        // tokio only lets a socket write once its reactor has seen it writable.
        sender.io.writable().await.unwrap();
        sender.send(&mut outbox);
        assert!(outbox.is_empty());
        assert_eq!(outbox.dropped, 0);

        let mut buffers = RecvBuffers::default();
        let mut received = Vec::new();
        while received.len() < sent.len() {
            receiver.readable().await.unwrap();
            receiver.try_recv(&mut buffers).unwrap();
            for (from, datagram) in buffers.datagrams() {
                assert_eq!(from, sender.local_addr().unwrap());
                received.push(datagram.to_vec());
            }
        }
        assert_eq!(received, sent);
    }
}
