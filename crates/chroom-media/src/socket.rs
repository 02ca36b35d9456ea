//! The media actor's UDP socket, read and written in batches.
//!
//! Reading takes up to [`RECV_SLOTS`] messages per `recvmmsg`, each possibly several datagrams
//! the kernel coalesced (GRO). Writing queues the datagrams a pass produced in an [`Outbox`] and
//! sends each destination's run of equal-sized datagrams as one GSO send: a relayer forwarding a
//! frame's dozen packets to a child makes one system call, not twelve.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

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
    /// Binds `addr`; with `receive_offload` off, the kernel hands over every datagram on its
    /// own (no GRO), as it would from a network card that coalesces nothing.
    pub(crate) async fn bind(addr: SocketAddr, receive_offload: bool) -> io::Result<Self> {
        let io = UdpSocket::bind(addr).await?;
        let state = UdpSocketState::new(UdpSockRef::from(&io))?;
        #[cfg(target_os = "linux")]
        if !receive_offload {
            use nix::sys::socket::{setsockopt, sockopt::UdpGroSegment};
            setsockopt(&io, UdpGroSegment, &false).map_err(io::Error::from)?;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = receive_offload;
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
        outbox
            .queued
            .sort_by_key(|datagram| (datagram.destination, datagram.source_ip));
        let max_segments = self.state.max_gso_segments().max(1);
        let mut rest = &outbox.queued[..];
        while let Some(first) = rest.first() {
            let run = gso_run(rest, max_segments);
            let transmit = if run == 1 {
                Transmit {
                    destination: first.destination,
                    ecn: None,
                    contents: &first.contents,
                    segment_size: None,
                    src_ip: first.source_ip,
                }
            } else {
                outbox.batch.clear();
                for datagram in &rest[..run] {
                    outbox.batch.extend_from_slice(&datagram.contents);
                }
                Transmit {
                    destination: first.destination,
                    ecn: None,
                    contents: &outbox.batch,
                    segment_size: Some(first.contents.len()),
                    src_ip: first.source_ip,
                }
            };
            let sent = self.io.try_io(Interest::WRITABLE, || {
                self.state.send(UdpSockRef::from(&self.io), &transmit)
            });
            match sent {
                Ok(()) => outbox.sent_bytes += transmit.contents.len() as u64,
                Err(e) => {
                    let destination = first.destination;
                    tracing::debug!(%destination, datagrams = run, error = %e, "udp send dropped");
                    outbox.dropped += run as u64;
                }
            }
            rest = &rest[run..];
        }
        outbox.queued.clear();
    }
}

/// How many datagrams from the start of `queued` (sorted by destination and source) one GSO
/// send can carry: same destination and source, all as long as the first except a shorter
/// last one.
fn gso_run(queued: &[Queued], max_segments: usize) -> usize {
    let Some((first, rest)) = queued.split_first() else {
        return 0;
    };
    let size = first.contents.len();
    let mut run = 1;
    let mut bytes = size;
    for Queued {
        destination,
        source_ip,
        contents,
    } in rest
    {
        if run == max_segments
            || *destination != first.destination
            || *source_ip != first.source_ip
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
    /// The datagrams of the last read, in arrival order, split at GRO boundaries: where each
    /// came from, the local IP it was sent to (when the OS says), and its bytes.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, Option<IpAddr>, &[u8])> {
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
                    .map(move |datagram| (meta.addr, meta.dst_ip, datagram))
            })
    }
}

/// Datagrams waiting to be sent, and how many sends failed so far.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queued: Vec<Queued>,
    /// Reused buffer of one GSO send.
    batch: Vec<u8>,
    pub(crate) dropped: u64,
    /// Bytes handed to the kernel so far.
    pub(crate) sent_bytes: u64,
}

/// A datagram in the [`Outbox`].
#[derive(Debug)]
struct Queued {
    destination: SocketAddr,
    /// The local IP it must leave from (a socket bound to a wildcard address has several),
    /// or `None` for the one the OS picks.
    source_ip: Option<IpAddr>,
    contents: Vec<u8>,
}

impl Outbox {
    /// Queues a datagram leaving from the IP the OS picks for `destination`.
    pub(crate) fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.push_from(None, destination, contents);
    }

    /// Queues a datagram leaving from `source_ip` (one of the socket's addresses), if given.
    pub(crate) fn push_from(
        &mut self,
        source_ip: Option<IpAddr>,
        destination: SocketAddr,
        contents: Vec<u8>,
    ) {
        self.queued.push(Queued {
            destination,
            source_ip,
            contents,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(entries: &[(u16, usize)]) -> Vec<Queued> {
        entries
            .iter()
            .map(|&(port, len)| Queued {
                destination: SocketAddr::from(([127, 0, 0, 1], port)),
                source_ip: None,
                contents: vec![0; len],
            })
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
        let sender = MediaSocket::bind(loopback, true).await.unwrap();
        let receiver = MediaSocket::bind(loopback, true).await.unwrap();
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
            for (from, _, datagram) in buffers.datagrams() {
                assert_eq!(from, sender.local_addr().unwrap());
                received.push(datagram.to_vec());
            }
        }
        assert_eq!(received, sent);
    }

    /// A wildcard-bound socket has many local addresses: it learns which one each datagram
    /// came to, and answers from that one (a peer drops an ICE answer from another address).
    /// 127.0.0.2 is a local address of its own on Linux, and the OS would answer a peer on
    /// 127.0.0.1 from 127.0.0.1.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_wildcard_socket_knows_the_address_a_datagram_came_to_and_answers_from_it() {
        let node = MediaSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)), true)
            .await
            .unwrap();
        let port = node.local_addr().unwrap().port();
        let peer = MediaSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)), true)
            .await
            .unwrap();
        let alias = IpAddr::from([127, 0, 0, 2]);
        let mut outbox = Outbox::default();
        outbox.push(SocketAddr::new(alias, port), b"check".to_vec());
        peer.io.writable().await.unwrap();
        peer.send(&mut outbox);

        let mut buffers = RecvBuffers::default();
        let (from, to) = loop {
            node.readable().await.unwrap();
            if node.try_recv(&mut buffers).unwrap() > 0 {
                let (from, to, datagram) = buffers.datagrams().next().unwrap();
                assert_eq!(datagram, b"check");
                break (from, to);
            }
        };
        assert_eq!(from, peer.local_addr().unwrap());
        assert_eq!(to, Some(alias));

        outbox.push_from(to, from, b"answer".to_vec());
        node.io.writable().await.unwrap();
        node.send(&mut outbox);
        assert_eq!(outbox.dropped, 0);
        loop {
            peer.readable().await.unwrap();
            if peer.try_recv(&mut buffers).unwrap() > 0 {
                let (from, _, datagram) = buffers.datagrams().next().unwrap();
                assert_eq!(datagram, b"answer");
                assert_eq!(from, SocketAddr::new(alias, port));
                return;
            }
        }
    }
}
