//! The `chroom` node: configuration, the node runtime that wires the drivers to the room core,
//! and the headless publisher and recorder used by bots, demos, tests and benchmarks (the
//! benchmarks themselves belong to the `chroom` binary, not to this library).
//!
//! This crate decides nothing about rooms (that is `chroom-room`'s `NodeCore`, which the
//! [`node`] runtime feeds and obeys) and speaks no protocol itself (that is `chroom-net` and
//! `chroom-media`); it owns process concerns: config files, the node key on disk, logging, the
//! CLI and its exit codes, the page and API it serves its user ([`web`]), and its operators'
//! `/metrics` and `chroom status` ([`metrics`]). How its tasks
//! fit together: `docs/runtime.md`.

pub mod admin;
mod clock;
pub mod config;
pub mod files;
pub mod identity;
pub mod metrics;
pub mod node;
pub mod publish;
pub mod record;
mod running;
pub mod web;

pub use config::{ConfigError, NodeConfig, Overrides};
pub use node::{
    ChatMessage, NodeFrame, NodeHandle, NodeStats, OwnAccess, OwnRefusal, Participant, RoomReport,
    RoomStatus, TreePosition,
};
pub use running::RunningNode;
