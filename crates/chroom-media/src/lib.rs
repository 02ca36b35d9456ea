//! Chroom's media driver: WebRTC links (str0m) on one UDP socket, an SFU router, and media
//! containers.
//!
//! A node owns one [`MediaActor`] bound to one UDP port. Every link of the node, to other nodes
//! and to its own browser, is a str0m `Rtc` on that socket, demultiplexed with `Rtc::accepts`.
//! The actor makes no room decisions: the node tells it which offers to accept, which links to
//! open or close, what to forward and show where, and what to send; the actor reports what
//! arrives.
//!
//! Modules, by what they own:
//! - `api`: the public types (config, errors, events, relay figures, playback offers).
//! - `handle`: [`MediaHandle`], the cheap cloneable handle, and the commands it sends.
//! - `actor`: [`MediaActor`], the task that owns the socket and the links and moves bytes and
//!   timers: it reads datagrams in batches and hands each to its link, drains links, runs their
//!   timers, sends in batches, and carries out the router's answers.
//! - `router`: the sans-IO `Router`, which decides routes: relay forwarding (upstream link to
//!   children), this node's browser sources to every subscriber, playback slots and screens,
//!   silencing, and where keyframe requests go and how often. Time is an input; it touches no
//!   socket and no str0m `Rtc`.
//! - [`layers`]: the sans-IO simulcast policy: which layer of a page's camera each receiving
//!   link gets (its bandwidth estimate, the size it renders), switches on keyframes with RTP
//!   time kept continuous, temporal thinning and pausing when nothing fits.
//! - `codec`: what the node reads of VP8 bytes (a keyframe's size, a packet's descriptor).
//! - `sdp`: building links' `Rtc`s and their ICE host candidates, SDP offers and answers, and
//!   which track each m-line carries.
//! - `link`: one str0m `Rtc` with a str0m panic contained to it.
//! - `socket`: the UDP socket with batched (`recvmmsg`, GSO) reads and writes.
//! - [`container`]: IVF and Ogg files for headless publishing and recording.
//! - [`stun`]: plain STUN Binding, answered on the media socket for any asker (ICE checks
//!   are the links'), so nodes behind NATs can learn their server-reflexive address.
//! - [`reflexive`]: the sans-IO probe that asks STUN servers for that address and tells a
//!   stable mapping from a symmetric NAT's one-per-destination.
//! - [`relay`]: relayed paths for links no direct path carries — a TURN-style allocation on a
//!   relayer, the relay frames between client and relayer, and the allocation's rules
//!   (permissions, rate, expiry); the actor serves allocations and wraps a client's datagrams.
//!
//! It does not own: who may link (the room core decides), transport of signaling (libp2p
//! does), or file formats beyond [`container`].
//!
//! Run loop, in short: wait for the earliest of a command, a datagram, room for a waiting link
//! event or a link timeout; feed it to the link(s) it concerns; drain every touched link's
//! output until `Output::Timeout`, sending transmits and routing packets, frames and keyframe
//! requests as the router says; re-arm one timer at the earliest link timeout. Link events and
//! received frames reach the node on separate channels, and the actor waits for neither.

mod actor;
mod api;
mod codec;
pub mod container;
mod estimation;
mod handle;
pub mod layers;
mod link;
pub mod reflexive;
pub mod relay;
pub mod remote_sdp;
mod router;
mod sdp;
mod socket;
pub mod speaker;
mod splice;
pub mod stun;
#[cfg(test)]
mod testing;

pub use actor::MediaActor;
pub use api::{
    BWE_DESIRED_BPS, LatencyHistogram, LinkClosed, MediaConfig, MediaError, MediaEvent,
    PlaybackOffer, PlaybackSlot, ReceivedFrame, RelayStats,
};
pub use chroom_types::LinkMode;
pub use codec::{Vp8Packet, vp8_keyframe_size, vp8_packet};
pub use handle::MediaHandle;

/// RTP clock rate of VP8 video (RFC 7741).
pub const VIDEO_CLOCK_HZ: u32 = 90_000;
/// RTP clock rate of Opus audio (RFC 7587).
pub const AUDIO_CLOCK_HZ: u32 = 48_000;

/// How far a media clock ticking at `clock_hz` moves in `elapsed`, at least one tick: what a
/// stream's time runs on by when another source takes it over.
pub(crate) fn clock_ticks(elapsed: std::time::Duration, clock_hz: u32) -> u64 {
    (elapsed.as_micros() as u64 * u64::from(clock_hz) / 1_000_000).max(1)
}
