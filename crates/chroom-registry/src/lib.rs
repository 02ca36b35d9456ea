//! Chroom's chain driver: who acts for which account, and what the room registry says.
//!
//! It owns: identity bindings (an Ethereum account's EIP-191 signature over a node's PeerId and
//! an expiry), the alloy bindings to the `RoomRegistry` contract (generated from the committed
//! artifacts), RPC calls with reverts turned into sentences, and the actor that drives
//! `chroom_room::follower` against the chain and the store's cache. It decides nothing about
//! rooms: it turns chain state into facts for `chroom-room` and commands into transactions.

pub mod binding;

pub use binding::{BindingError, binding_text, sign, verify};
pub mod actor;
pub mod client;
pub mod contract;

pub use actor::{RegistryActor, RegistryEvent, RegistryHandle, RegistryStats};
pub use client::{AccessRead, RegistryClient, RegistryError};
