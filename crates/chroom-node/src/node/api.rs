//! What a running node tells the rest of the process: frames, chat lines, hosts' decisions,
//! participants, its place in a relay tree and its counters.

use chroom_media::{ReceivedFrame, RelayStats};
use chroom_net::PeerId;
use chroom_registry::RegistryStats;
use chroom_types::{LinkId, RoomId};

pub use chroom_room::node::{OwnAccess, OwnRefusal};

/// A frame received from a publisher, as handed to the application (the recorder).
#[derive(Debug, Clone)]
pub struct NodeFrame {
    /// The publisher.
    pub peer: PeerId,
    /// The link it came on.
    pub link: LinkId,
    /// The frame.
    pub frame: ReceivedFrame,
}

/// A chat line from the room's gossip, delivered once the registry let its author chat.
pub type ChatMessage = chroom_room::node::ChatLine<PeerId>;

/// A host's decision, carried out on this node.
pub type ModerationNotice = chroom_room::node::ModerationNotice<PeerId>;

/// A member present in a room, as its page lists it.
pub type Participant = chroom_room::node::Participant<PeerId>;

/// What pages should say is wrong in a room.
pub type RoomStatus = chroom_room::node::RoomStatus<PeerId>;

/// This node's place in a broadcast room's relay tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreePosition {
    /// The member feeding this node, if attached.
    pub parent: Option<PeerId>,
    /// The members this node feeds.
    pub children: Vec<PeerId>,
}

/// One room this node is in, as `chroom status` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomReport {
    /// The room.
    pub room: RoomId,
    /// How this node takes part: `meet`, `publish`, `receive`, `broadcast`, `relay` or `view`.
    pub part: &'static str,
    /// Other members heard in the room (this node not counted).
    pub members: usize,
    /// Links carrying members' media to this node in the room.
    pub media_links: usize,
    /// Members this node feeds in the room (subscribers, or children in its relay tree).
    pub feeding: usize,
    /// The member feeding this node in the room's relay tree, if it uses one and is attached.
    pub tree_parent: Option<PeerId>,
}

/// Counters of a node, for tests and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Links receiving media.
    pub receiving_links: usize,
    /// Links sending media.
    pub sending_links: usize,
    /// Signaling requests refused so far.
    pub requests_refused: u64,
    /// Signaling requests that did not decode.
    pub malformed_requests: u64,
    /// The registry is unreachable and the node serves cached memberships.
    pub registry_stale: bool,
    /// How long the registry has been unreachable, in whole seconds (`None`: reachable).
    pub registry_unreachable_secs: Option<u64>,
    /// The registry has been unreachable past `max_staleness`: its cached verdicts are no
    /// longer used, and peers whose right must be checked are refused (fail closed).
    pub registry_cache_expired: bool,
    /// What the registry actor has done (`None`: no registry, open access).
    pub registry: Option<RegistryStats>,
    /// The latest refusal a publisher sent this node, in words.
    pub last_refusal: Option<String>,
    /// Peers whose identity binding this node has verified (on connect, or with a request).
    pub peers_with_accounts: usize,
    /// Room gossip messages delivered (their authors may write in the room).
    pub gossip_delivered: u64,
    /// Room gossip messages rejected: undecodable, badly bound, or from an author the registry
    /// does not allow. Rejected messages are not forwarded.
    pub gossip_rejected: u64,
    /// Sealed room messages this node could not read: no author handed it a key in time
    /// (all a node without a right to a room gets of its chat and documents).
    pub sealed_unread: u64,
    /// Times this node attached to a parent in a relay tree (joins and repairs).
    pub tree_attachments: u64,
    /// Tree messages refused: their sender's place in the tree was not proven (a stranger
    /// offering to feed this node, a relayer claiming to be the root).
    pub tree_messages_refused: u64,
    /// Peers providing a broadcast room that the registry does not let broadcast: never joined.
    pub roots_refused: u64,
    /// Links closed because their peer's right stayed unknown past `link_check_timeout`.
    pub links_unverified: u64,
    /// Registry lookups of new accounts not made: peers named new accounts faster than the
    /// node asks the registry (their requests were refused as overloaded).
    pub lookups_throttled: u64,
    /// Frames received but not handed to the recorder, which fell behind (it gets the next).
    pub frames_dropped: u64,
    /// What this node relayed.
    pub relay: RelayStats,
    /// Each link to a member whose bandwidth is estimated: the member, and the estimate of
    /// what the link can carry to it, bits per second (`[media] bandwidth_estimation`).
    pub bandwidth_estimates: Vec<(PeerId, u64)>,
    /// Each member receiving this node's page's camera, and the simulcast layer it gets (0 the
    /// smallest; `None`: none now, its video paused or waiting for a keyframe).
    pub camera_layers: Vec<(PeerId, Option<u8>)>,
}
