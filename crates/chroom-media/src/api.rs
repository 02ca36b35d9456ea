//! The media driver's public types: its configuration, errors, what it reports to the node and
//! the relay figures it keeps. Plain data: nothing here touches a socket or a link.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chroom_types::{LinkId, MediaKind, Track};

use crate::reflexive::Mapping;
use crate::relay::RelayToken;

/// Media driver configuration.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// UDP address to bind. Default `0.0.0.0:0` (every IPv4 address, any port): the user's own
    /// browser is offered the machine's interface addresses, since Firefox neither gathers nor
    /// pairs loopback candidates. Links to other nodes are offered `advertise` (loopback by
    /// default) all the same; anything else that reaches the socket must pass ICE's and
    /// DTLS's checks like any datagram.
    pub bind: SocketAddr,
    /// Addresses offered to other nodes as ICE host candidates. Default empty: the bound
    /// address, or 127.0.0.1 when bound to an unspecified address. (Pages are offered the
    /// machine's interface addresses instead, see [`MediaConfig::bind`].)
    pub advertise: Vec<IpAddr>,
    /// Most links at once; further offers are refused with [`MediaError::TooManyLinks`].
    /// Default 64.
    pub max_links: usize,
    /// A link that has not connected by then is closed. Default 15 s.
    pub connect_timeout: Duration,
    /// A link whose media stops for this long, after some arrived, is reported
    /// ([`MediaEvent::LinkSilent`]): its peer may be gone without a word (a killed process, a
    /// cut network), which ICE would notice only much later. Default 300 ms (15 Opus
    /// frames): a report costs little, what silence means is the node's to decide.
    pub silence_timeout: Duration,
    /// Media sockets of public nodes to ask where a NAT in front of this node maps its socket
    /// (STUN Binding; every node answers it). Two or more also tell a NAT that maps per
    /// destination, whose mapping is of no use to others. Default none: no NAT in the way.
    pub stun_servers: Vec<SocketAddr>,
    /// Estimate the bandwidth of each link to another node, in conferences and relay trees
    /// (transport-wide congestion control feedback and str0m's delay-based estimator, probing
    /// as high as the next simulcast layer needs, or [`BWE_DESIRED_BPS`] before layers are
    /// known); the estimates pick each link's layer of a layered camera ([`crate::layers`]:
    /// the page's, or a relayer's parent's for each child) and are reported per link. Default
    /// on; off, every link gets the top layer.
    pub bandwidth_estimation: bool,
    /// Let the kernel coalesce received datagrams (UDP GRO) where it can. Default on; off
    /// only to measure what each datagram costs (loopback coalesces far more than a network
    /// card would).
    pub receive_offload: bool,
}

/// What a link with bandwidth estimation probes for: room for a 720p camera, a screen and
/// audio.
pub const BWE_DESIRED_BPS: u64 = 5_000_000;

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            advertise: Vec::new(),
            max_links: 64,
            connect_timeout: Duration::from_secs(15),
            silence_timeout: Duration::from_millis(300),
            stun_servers: Vec::new(),
            bandwidth_estimation: true,
            receive_offload: true,
        }
    }
}

/// A media operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The UDP socket could not be bound.
    #[error("binding udp {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The SDP could not be parsed or negotiated.
    #[error("bad sdp: {reason}")]
    BadSdp {
        /// What str0m reported.
        reason: String,
    },
    /// The node already has [`MediaConfig::max_links`] links.
    #[error("too many links (limit {limit})")]
    TooManyLinks {
        /// The configured limit.
        limit: usize,
    },
    /// No such link, or it has closed.
    #[error("{link} is not open")]
    UnknownLink {
        /// The link asked for.
        link: LinkId,
    },
    /// The answer came for a link that has no offer outstanding.
    #[error("{link} has no pending offer")]
    NoPendingOffer {
        /// The link asked for.
        link: LinkId,
    },
    /// The media actor has stopped.
    #[error("media actor stopped")]
    Stopped,
    /// A relay allocation could not be opened.
    #[error("relay allocation: {0}")]
    Relay(String),
}

/// A frame received on a link.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// Which of the sender's tracks.
    pub track: Track,
    /// RTP timestamp, extended to 64 bits, in the kind's clock rate.
    pub rtp_time: u64,
    /// False when packets were lost since the previous frame.
    pub contiguous: bool,
    /// The depacketized codec frame.
    pub data: Arc<[u8]>,
    /// When its first packet arrived.
    pub received_at: Instant,
    /// The sender's audio level (RFC 6464: 0 loudest, −127 dBov silence), if its packets
    /// carry one (browsers send it; a file has none).
    pub audio_level: Option<i8>,
}

/// A histogram of durations with quarter-octave buckets (each about 19 % wide), from 1 µs to
/// about an hour: enough to read percentiles of a hop's latency without keeping samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
}

const LATENCY_BUCKETS: usize = 128;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; LATENCY_BUCKETS],
        }
    }
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // log2 in quarter steps: 4 * log2(us), from the bit length and the next two bits.
        let bits = 63 - u64::from(micros.leading_zeros());
        let fraction = if bits >= 2 {
            (micros >> (bits - 2)) & 0b11
        } else {
            0
        };
        let index = usize::try_from(bits * 4 + fraction).unwrap_or(usize::MAX);
        self.buckets[index.min(LATENCY_BUCKETS - 1)] += 1;
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of the bucket holding the `p`-th percentile (0..=100), if any.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (bits, fraction) = ((index / 4) as u32, (index % 4) as u64);
                let low = if bits >= 2 {
                    (4 + fraction) << (bits - 2)
                } else {
                    1 << bits
                };
                let high = if bits >= 2 {
                    low + (1 << (bits - 2))
                } else {
                    low * 2
                };
                return Some(Duration::from_micros(high));
            }
        }
        None
    }

    /// The count of each bucket, shortest first (to carry a histogram elsewhere).
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    /// A histogram with these bucket counts (as [`Self::buckets`] gave them; missing ones
    /// count zero, extra ones are ignored).
    pub fn from_buckets(counts: &[u64]) -> Self {
        let mut histogram = Self::default();
        for (bucket, count) in histogram.buckets.iter_mut().zip(counts) {
            *bucket = *count;
        }
        histogram
    }

    /// Everything counted since `earlier` (a copy taken before).
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        }
    }
}

/// Why a link closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkClosed {
    /// The node asked for it.
    ByRequest,
    /// It did not connect within [`MediaConfig::connect_timeout`].
    ConnectTimeout,
    /// ICE, DTLS or str0m failed; the text says how.
    Failed(String),
    /// It had not connected when a relayed path came: it offered no relay candidate, and a
    /// link opened again will.
    PathChanged,
}

/// What the media actor reports to the node: link changes only. Received frames travel on a
/// channel of their own (see [`crate::MediaActor::bind`]), so a slow frame reader cannot delay
/// these, and these are never dropped.
#[derive(Debug)]
#[non_exhaustive]
pub enum MediaEvent {
    /// ICE and DTLS completed: media can flow.
    LinkConnected {
        /// The link.
        link: LinkId,
    },
    /// Media stopped arriving on the link ([`MediaConfig::silence_timeout`]); reported once per
    /// silence. The link stays open: the node decides what silence means.
    LinkSilent {
        /// The link.
        link: LinkId,
    },
    /// Media arrives on a link for the first time, or again after it was reported silent.
    LinkFlowing {
        /// The link.
        link: LinkId,
    },
    /// The STUN servers told something new about where a NAT maps this node's socket; links
    /// opened from now on offer a stable mapping as a server-reflexive candidate.
    Mapping {
        /// What the last round of requests found.
        mapping: Mapping,
    },
    /// An allocation this relayer served ended: its client stopped using it.
    RelayAllocationEnded {
        /// The allocation's token, as [`crate::MediaHandle::allocate_relay`] granted it.
        token: RelayToken,
    },
    /// The link is gone.
    LinkClosed {
        /// The link.
        link: LinkId,
        /// Why.
        reason: LinkClosed,
    },
}

/// What a relaying node forwarded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// From a packet's arrival to its copies leaving for every child.
    pub hop_latency: LatencyHistogram,
    /// Links fed from another link.
    pub children: usize,
    /// Packets written to children.
    pub packets_forwarded: u64,
    /// Payload bytes written to children.
    pub bytes_forwarded: u64,
    /// Packets that could not be written to a child (not connected yet, or failed).
    pub dropped: u64,
    /// Keyframe requests from children passed upstream (after merging: requests the
    /// per-link rate limit held back are not counted).
    pub keyframe_requests: u64,
    /// Frames received from remote members that were dropped rather than handed to the node:
    /// its frame channel was full (the reader is slow) or closed (nobody reads frames). The
    /// actor never waits for that reader, so a slow recorder costs frames, not the node.
    pub frames_dropped: u64,
    /// Relay allocations served now.
    pub allocations: usize,
    /// Payload bytes relayed for allocations, both ways.
    pub relayed_bytes: u64,
    /// Datagrams of allocations dropped: from peers without permission, for a client that
    /// never spoke, or over the allocation's rate.
    pub relayed_dropped: u64,
    /// Bytes of every datagram the media socket sent (all links, STUN, relaying): the node's
    /// media upload.
    pub socket_bytes_sent: u64,
    /// Bytes of every datagram the media socket received: the node's media download.
    pub socket_bytes_received: u64,
    /// Video frames from remote members handed to the node (received, decrypted, whole).
    pub video_frames_received: u64,
    /// Audio frames from remote members handed to the node.
    pub audio_frames_received: u64,
    /// RTP packets received and decrypted on every link (retransmissions included), as of
    /// each link's last report (once a second): what reached this node, packet by packet.
    pub rtp_packets_received: u64,
}

/// An offer to play remote members' media in this node's user's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackOffer {
    /// The link; complete it with [`crate::MediaHandle::accept_answer`].
    pub link: LinkId,
    /// The SDP offer.
    pub sdp: String,
    /// Each slot's m-lines, as the browser will see them (`transceiver.mid`).
    pub slots: Vec<PlaybackSlot>,
    /// The video m-line showing a shared screen; `None` in an audio-only playback link.
    pub screen_mid: Option<String>,
}

/// One member's place in a playback link: an audio and a video m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackSlot {
    /// The audio m-line's mid.
    pub audio_mid: String,
    /// The video m-line's mid; `None` in an audio-only playback link.
    pub video_mid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_land_in_the_right_bucket() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(50.0), None);
        for _ in 0..90 {
            histogram.record(Duration::from_micros(100));
        }
        for _ in 0..10 {
            histogram.record(Duration::from_millis(5));
        }
        let p50 = histogram.percentile(50.0).unwrap();
        assert!(
            p50 >= Duration::from_micros(100) && p50 <= Duration::from_micros(120),
            "{p50:?}"
        );
        let p99 = histogram.percentile(99.0).unwrap();
        assert!(
            p99 >= Duration::from_millis(5) && p99 <= Duration::from_micros(6000),
            "{p99:?}"
        );
        let earlier = histogram.clone();
        histogram.record(Duration::from_secs(1));
        assert_eq!(histogram.since(&earlier).count(), 1);
        // Zero and enormous durations are counted, not lost.
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_secs(1 << 40));
        assert_eq!(histogram.count(), 103);
    }
}
