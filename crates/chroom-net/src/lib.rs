//! Chroom's libp2p driver: discovery, room gossip and node-to-node signaling.
//!
//! One [`NetActor`] owns the node's `Swarm`: TCP and QUIC transports, Noise, Yamux, Kademlia on
//! Chroom's own protocol name (never the IPFS DHT), identify, ping, gossipsub and the signaling
//! request-response protocol `/chroom/signal/1.0.0` ([`signal`]), and what it takes to reach nodes
//! behind NATs: AutoNAT, a circuit relay v2 client (and, where configured, server) and DCUtR hole
//! punching (module `nat`).
//!
//! It owns: connections, the DHT (a room is found by the providers of its id), gossip topics
//! (messages wait for the node's verdict before gossipsub forwards them),
//! the signaling codec and its size limit, and replying to frames that do not decode. It does
//! not decide who may join a room, whether to answer an offer or which link to open: it reports
//! requests as [`NetEvent`]s and carries out commands from [`NetHandle`].

mod actor;
mod behaviour;
mod config;
mod nat;
mod node_id;
pub mod signal;

pub use actor::{
    GossipAcceptance, GossipMessageRef, NetActor, NetError, NetEvent, NetHandle, Presence,
    SignalReplyId,
};
pub use config::{KadMode, NetConfig};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
pub use nat::Reachability;
pub use node_id::{fmt_short, node_id_of, peer_id_of};

/// Kademlia protocol name. Chroom runs its own DHT so IPFS nodes never enter its routing tables.
pub const KAD_PROTOCOL: &str = "/chroom/kad/1.0.0";
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/chroom/id/1.0.0";
