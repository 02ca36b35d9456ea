//! The node runtime: a [`NodeHandle`] that the page, the CLI and tests ask, and the node actor
//! that feeds events to [`chroom_room::node::NodeCore`] (where every decision about rooms is
//! made) and carries out its outputs on the network, the media socket, the store and the
//! registry. `docs/runtime.md` draws how a chat line and an RTP packet travel.
//!
//! - [`api`]: what a node reports (frames, chat, participants, counters);
//! - `handle`: the handle and the commands it sends;
//! - `actor`: the select loop, translating events in and outputs out;
//! - `signaling`: multi-step signaling and wire conversions;
//! - `outbox`: ordered publications and media orders, off the loop;
//! - `frames`: frames to the recorder, off the loop;
//! - `relay`: relayed media paths over the network (announcing, seeking);
//! - `docs`: the rooms' shared documents between the node and its pages.

pub(crate) mod actor;
pub mod api;
mod docs;
pub(crate) mod frames;
mod handle;
mod outbox;
pub(crate) mod relay;
pub(crate) mod signaling;

pub use api::{
    ChatMessage, ModerationNotice, NodeFrame, NodeStats, OwnAccess, OwnRefusal, Participant,
    RoomReport, RoomStatus, TreePosition,
};
pub(crate) use docs::DocCommand;
pub use docs::{DocCursor, DocEdit, DocEvent, OpenedDoc};
pub(crate) use handle::Acting;
pub use handle::NodeHandle;
