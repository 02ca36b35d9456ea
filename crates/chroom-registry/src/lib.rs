//! Chroom's chain driver: who acts for which account, and what the room registry says.
//!
//! It owns: identity bindings (an Ethereum account's EIP-191 signature over a node's PeerId and
//! an expiry), and — as the registry work lands — the alloy bindings to the `RoomRegistry`
//! contract, the event follower and the membership cache. It decides nothing about rooms: it
//! turns chain state into facts for `chroom-room` and commands into transactions.

pub mod binding;

pub use binding::{BindingError, binding_text, sign, verify};
pub mod client;
pub mod contract;

pub use client::{AccessRead, RegistryClient, RegistryError};
