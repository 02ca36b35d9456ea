//! The room session: a sans-IO state machine that decides who this node links with in each room.
//!
//! It owns the decisions of the signaling layer: which providers of a room to subscribe to, when
//! to retry after a failure, whether to accept a peer's request to subscribe (is this node in the
//! room, does it publish there, may the peer's account listen, has it room for another
//! subscriber), whether a room gossip message may be delivered and forwarded, and which links to
//! close when rights change. In broadcast rooms it owns the node's relay tree
//! ([`chroom_overlay::Overlay`]): tree requests are checked against the registry, and tree
//! changes become links (from the parent, to the children) and forwarding orders. [`follower`]
//! owns how registry facts are kept in step with the chain (polling, cursor, backoff,
//! staleness); [`roster`] owns who is present in a room, from members' presence beats;
//! [`moderation`] what hosts decided about members; [`node`] everything else a node decides
//! above its links (what a room message means, presence, moderation carried out, silencing,
//! who may fetch files, its own access for its page); [`files`] how a shared file is cut, proved
//! and fetched chunk by chunk; [`sealing`] the keys members seal room content with. None owns sockets, timers, the DHT, WebRTC or RPC: drivers feed
//! inputs and carry out outputs.
//! `docs/session.md` describes the state machine.
//!
//! Peers are a type parameter `P` so the core never depends on libp2p.
//!
//! # Run loop
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use chroom_room::{Output, RoomSession, SessionConfig, Participation};
//! use chroom_types::{MediaKind, RoomName};
//!
//! let mut session: RoomSession<u32> = RoomSession::new(SessionConfig::default(), 1);
//! let room: RoomName = "lobby".parse().unwrap();
//! session.join(Instant::now(), room.id(), Participation::Receive(vec![MediaKind::Video]));
//! loop {
//!     // 1. Drain every output and carry it out (query the DHT, send signaling, open links).
//!     while let Some(output) = session.poll_output() {
//!         match output {
//!             Output::FindPublishers { room } => { /* ask the DHT, later call handle_publishers */ }
//!             _ => { /* ... */ }
//!         }
//!     }
//!     // 2. Sleep until poll_timeout() or until an input arrives, then feed it in.
//!     let deadline = session.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
//!     session.handle_timeout(deadline);
//!     # break;
//! }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod access;
pub mod files;
pub mod follower;
pub mod gossip;
pub mod moderation;
pub mod node;
pub mod orchestrator;
pub mod rate;
pub mod relaying;
pub mod roster;
pub mod sealing;
mod session;

pub use access::{AccessFacts, AccessPolicy, LookupLimits};
pub use gossip::{GossipId, GossipVerdict};
pub use session::{
    InboundId, Output, Participation, RoomEvent, RoomSession, SessionConfig, SubscribeFailure,
    SubscribeId,
};
