//! The broadcast tree: a sans-IO state machine for one member of one broadcast's relay tree.
//!
//! The broadcaster is the root; relayers feed up to their advertised number of children;
//! viewers are leaves. This crate decides who feeds whom: where a joiner attaches (a free slot
//! as near the root as known, with relayers pushing viewers down), how a member whose parent
//! vanished re-attaches through backup parents without asking the root, how a leaving relayer
//! hands its children over, and how members move up when slots free near the root. It keeps
//! three invariants whatever the timing of messages: no member feeds more children than its
//! capacity, the tree has no cycle, and a member feeding children never moves deeper.
//! `docs/tree.md` describes the algorithm and where it comes from.
//!
//! It owns no sockets, timers or media: the driver (a node, or `chroom-sim`) carries messages,
//! reports lost peers, and opens or closes media links when [`OverlayEvent`]s say so. Time and
//! the random seed are inputs, so the same code runs in a unit test, in a 100 000-member
//! simulation and in the node.
//!
//! # Run loop
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use chroom_overlay::{Overlay, OverlayConfig, Role};
//!
//! # let (now, root) = (Instant::now(), 0u32);
//! let mut member = Overlay::new(OverlayConfig::default(), 7u32, Role::Viewer, 42, now);
//! member.join(now, root).expect("a fresh viewer joins");
//! loop {
//!     // 1. Send every queued message to its peer.
//!     while let Some(transmit) = member.poll_transmit() {
//!         let _ = (transmit.to, transmit.message);
//!     }
//!     // 2. Act on events: open the link to a new parent, accept a child's link, ...
//!     while let Some(event) = member.poll_event() {
//!         let _ = event;
//!     }
//!     // 3. Wait for a message (handle_message), a lost peer (handle_peer_disconnected) or
//!     //    the timer, then feed it in and go back to 1.
//!     let deadline = member.poll_timeout().unwrap_or(now + Duration::from_secs(1));
//!     member.handle_timeout(deadline);
//!     # break;
//! }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod message;
mod overlay;

pub use message::{Candidate, MAX_CANDIDATES, Message, Transmit};
pub use overlay::{JoinError, Overlay, OverlayConfig, OverlayEvent, Role, SeekReason};
