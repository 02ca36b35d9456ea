//! Chroom's media driver: WebRTC links (str0m) on one UDP socket, and media containers.
//!
//! A node owns one [`MediaActor`] bound to one UDP port. Every link of the node, to other nodes
//! now and to its own browser later, is a str0m `Rtc` on that socket, demultiplexed with
//! `Rtc::accepts`. The actor makes no room decisions: the node tells it which offers to accept,
//! which links to open or close and what to send; the actor reports what arrives.
//!
//! It owns: SDP offer/answer for a link, ICE host candidates, the UDP socket, writing local frames
//! to every link subscribed to them, handing received frames up, and containing a str0m panic to
//! the one link that caused it. It does not own: who may link (the room core decides), transport
//! of signaling (libp2p does), or file formats beyond [`container`].
//!
//! Run loop, in short: wait for the earliest of a command, a datagram or a link timeout; feed it
//! to the link(s) it concerns; drain every touched link's output until `Output::Timeout`,
//! sending transmits and forwarding events; re-arm one timer at the earliest link timeout.

pub mod container;
mod driver;
mod link;
mod socket;

pub use chroom_types::LinkMode;
pub use driver::{
    LatencyHistogram, LinkClosed, MediaActor, MediaConfig, MediaError, MediaEvent, MediaHandle,
    PlaybackOffer, PlaybackSlot, ReceivedFrame, RelayStats,
};

/// RTP clock rate of VP8 video (RFC 7741).
pub const VIDEO_CLOCK_HZ: u32 = 90_000;
/// RTP clock rate of Opus audio (RFC 7587).
pub const AUDIO_CLOCK_HZ: u32 = 48_000;
