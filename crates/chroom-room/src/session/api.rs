//! The room session's public types: its tuning, how a node takes part, the ids that
//! correlate commands and results, and what it outputs.

use std::time::Duration;

use chroom_overlay::{Message, OverlayConfig};
use chroom_proto::SignalError;
use chroom_types::{Account, LinkId, LinkMode, MediaKind, RoomId};

use crate::access::{AccessPolicy, LookupLimits};
use crate::gossip::{GossipId, GossipVerdict};

/// Tuning of a [`RoomSession`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How often to look for publishers while a receiving room has no link. Default 1 s.
    pub discovery_interval: Duration,
    /// How often to look for new publishers once linked. Default 10 s.
    pub rediscovery_interval: Duration,
    /// First retry delay after a failed subscribe; doubles per failure. Default 500 ms.
    pub retry_backoff: Duration,
    /// Longest retry delay. Default 10 s.
    pub max_retry_backoff: Duration,
    /// How long before asking a peer again that said it publishes nothing. Default 10 s.
    pub not_publishing_backoff: Duration,
    /// Most subscribers this node feeds per room. Default 32.
    pub max_subscribers_per_room: usize,
    /// Whether requests are checked against the registry. Default [`AccessPolicy::Open`]
    /// (local development without a chain).
    pub access: AccessPolicy,
    /// How long a request may wait for registry facts before it is refused as unavailable.
    /// Default 5 s.
    pub access_lookup_timeout: Duration,
    /// Most requests and gossip messages waiting for registry facts; more are refused as
    /// overloaded (requests) or ignored (messages). Default 256.
    pub max_pending_requests: usize,
    /// How long cached registry facts are trusted while the registry cannot be reached
    /// ([`RoomSession::handle_registry_stale`]); after that every right is unknown and every
    /// link needing one closes (fail closed: whoever can block the chain RPC cannot keep a
    /// banned account in). Default 10 min.
    pub max_staleness: Duration,
    /// How long a link may stay held while its peer's right is unknown (the registry is slow
    /// or unreachable) before it is closed. Default 10 s.
    pub unverified_link_timeout: Duration,
    /// How often the registry may be asked about accounts it was not asked about before.
    pub lookup_limits: LookupLimits,
    /// A publisher's link reported silent ([`RoomSession::handle_link_media`]) is given up
    /// (and subscribed again) if it stays silent this much longer. Default 700 ms: with the
    /// media layer's 300 ms, a second without media. A tree parent's silence is the overlay's
    /// (`OverlayConfig::probe_timeout`): it asks the parent rather than wait.
    pub receive_silence_grace: Duration,
    /// Tuning of broadcast relay trees.
    pub tree: OverlayConfig,
    /// Seeds the tree's random choices. Default 0; nodes derive it from their key.
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            discovery_interval: Duration::from_secs(1),
            rediscovery_interval: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(500),
            max_retry_backoff: Duration::from_secs(10),
            not_publishing_backoff: Duration::from_secs(10),
            max_subscribers_per_room: 32,
            access: AccessPolicy::Open,
            access_lookup_timeout: Duration::from_secs(5),
            max_pending_requests: 256,
            max_staleness: Duration::from_secs(10 * 60),
            unverified_link_timeout: Duration::from_secs(10),
            lookup_limits: LookupLimits::default(),
            receive_silence_grace: Duration::from_millis(700),
            tree: OverlayConfig::default(),
            seed: 0,
        }
    }
}

/// How this node takes part in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Participation {
    /// Broadcast tracks of these kinds as the root of the room's relay tree, feeding at most
    /// `capacity` children directly.
    Broadcast {
        /// What is broadcast.
        kinds: Vec<MediaKind>,
        /// Children fed directly.
        capacity: u32,
    },
    /// Publish tracks of these kinds; accept subscribers (every member links to every other).
    Publish(Vec<MediaKind>),
    /// Receive tracks of these kinds from every publisher found.
    Receive(Vec<MediaKind>),
    /// A conference member: publish `publish` to every member that subscribes, and receive
    /// `receive` from every publisher found (every member links to every other, both ways).
    Meet {
        /// Kinds this node sends.
        publish: Vec<MediaKind>,
        /// Kinds this node receives.
        receive: Vec<MediaKind>,
    },
    /// Carry the room's broadcast: join its relay tree and feed up to `capacity` children.
    Relay {
        /// Children fed.
        capacity: u32,
    },
    /// Watch the room's broadcast: join its relay tree as a viewer receiving these kinds.
    View(Vec<MediaKind>),
    /// On a broadcast's stage (a viewer a host invited): meet the broadcaster and the others
    /// on stage, sending and receiving these kinds over links of their own (the studio),
    /// outside the relay tree. The broadcaster takes part in the studio as its root.
    Guest(Vec<MediaKind>),
}

impl Participation {
    /// A short lowercase name of how this node takes part (`meet`, `publish`, `receive`,
    /// `broadcast`, `relay`, `view`, `guest`), for status lines and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Broadcast { .. } => "broadcast",
            Self::Publish(_) => "publish",
            Self::Receive(_) => "receive",
            Self::Meet { .. } => "meet",
            Self::Relay { .. } => "relay",
            Self::View(_) => "view",
            Self::Guest(_) => "guest",
        }
    }

    /// Whether this takes part in the room's relay tree rather than its mesh.
    pub fn uses_tree(&self) -> bool {
        matches!(
            self,
            Self::Broadcast { .. } | Self::Relay { .. } | Self::View(_)
        )
    }

    /// Whether this looks for the room's publishers in the DHT (to subscribe, to find the
    /// root of the tree, or, for a root, to learn of a rival broadcaster).
    pub(super) fn discovers(&self) -> bool {
        matches!(
            self,
            Self::Receive(_)
                | Self::Meet { .. }
                | Self::Relay { .. }
                | Self::View(_)
                | Self::Broadcast { .. }
                | Self::Guest(_)
        )
    }

    /// What this receives over mesh links, if it subscribes to anyone (a broadcaster only to
    /// the members on its stage).
    pub(super) fn mesh_receives(&self) -> Option<&[MediaKind]> {
        match self {
            Self::Receive(kinds)
            | Self::Meet { receive: kinds, .. }
            | Self::Guest(kinds)
            | Self::Broadcast { kinds, .. } => Some(kinds),
            _ => None,
        }
    }

    /// What this sends over the mesh links it opens: a meeting member's kinds, a guest's, and
    /// a broadcaster's to its stage.
    pub(super) fn mesh_sends(&self) -> &[MediaKind] {
        match self {
            Self::Meet { publish: kinds, .. }
            | Self::Guest(kinds)
            | Self::Broadcast { kinds, .. } => kinds,
            _ => &[],
        }
    }

    /// Whether this links with a member as a pair, one link carrying both ways (the lower id
    /// opens it): meeting members, and a broadcast's studio.
    pub(super) fn meets(&self) -> bool {
        matches!(
            self,
            Self::Meet { .. } | Self::Guest(_) | Self::Broadcast { .. }
        )
    }

    /// Whether this feeds subscribers in a mesh room.
    pub(super) fn mesh_publishes(&self) -> bool {
        matches!(self, Self::Publish(_) | Self::Meet { .. } | Self::Guest(_))
    }
}

/// Correlates a peer's subscribe request with the [`Output::AcceptSubscriber`] or
/// [`Output::Refuse`] that answers it. Chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundId(pub u64);

/// Correlates an [`Output::Subscribe`] with [`RoomSession::handle_subscribe_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscribeId(pub(super) u64);

/// Why a subscribe attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeFailure {
    /// The peer refused.
    Refused(SignalError),
    /// The request or the link setup failed (unreachable, timeout, bad answer).
    Failed(String),
}

/// A command for the driver, or an event to report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output<P> {
    /// Look up the providers of `room`; answer with [`RoomSession::handle_publishers`].
    FindPublishers {
        /// The room.
        room: RoomId,
    },
    /// Open a receive link to `peer`: create an offer for `kinds`, send it as a subscribe
    /// request, apply the answer. Report with [`RoomSession::handle_subscribe_result`].
    Subscribe {
        /// Pass back with the result.
        id: SubscribeId,
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// What to receive.
        kinds: Vec<MediaKind>,
        /// What to send on the same link: two conference members share one link, both ways
        /// (two links between the same two sockets could not be told apart).
        send: Vec<MediaKind>,
        /// Frames (to record) or packets (to relay).
        mode: LinkMode,
    },
    /// Accept `peer`'s subscribe offer with a sending link, and answer it. Report the new link
    /// with [`RoomSession::handle_subscriber_linked`].
    AcceptSubscriber {
        /// The request being answered.
        request: InboundId,
        /// The room.
        room: RoomId,
        /// The subscriber.
        peer: P,
        /// Frames (local media) or packets (relayed).
        mode: LinkMode,
    },
    /// Send a broadcast-tree message; report the outcome with
    /// [`RoomSession::handle_tree_refused`] or [`RoomSession::handle_tree_unreachable`].
    /// Messages to one peer must arrive in the order given (send the next once the previous
    /// is acknowledged).
    SendTree {
        /// The recipient.
        peer: P,
        /// The room whose tree it is.
        room: RoomId,
        /// The message.
        message: Message<P>,
    },
    /// Acknowledge a tree request: it was taken.
    AckTree {
        /// The request.
        request: InboundId,
        /// The sender.
        peer: P,
    },
    /// Forward every packet arriving on `upstream` to `downstream` (replacing the previous
    /// set; empty stops forwarding).
    Forward {
        /// The link from the parent.
        upstream: LinkId,
        /// The links to the children.
        downstream: Vec<LinkId>,
        /// Grows with every forwarding change: if the driver carries them out concurrently, an
        /// older set must never replace a newer one.
        version: u64,
    },
    /// Refuse a signaling request with `error`.
    Refuse {
        /// The request being answered.
        request: InboundId,
        /// The requester.
        peer: P,
        /// Why.
        error: SignalError,
    },
    /// Learn what the registry says about `account` in `room`; answer with
    /// [`RoomSession::handle_access`].
    LookupAccess {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
    },
    /// Deliver, reject or ignore a room gossip message (answers
    /// [`RoomSession::handle_room_message`]).
    GossipVerdict {
        /// The message.
        id: GossipId,
        /// Its room.
        room: RoomId,
        /// What to do with it.
        verdict: GossipVerdict,
    },
    /// Stop media on a link both ways (`held`), or let it flow. Every link this session asks
    /// for (subscribing or accepting a subscriber) must be opened held: it is released once its
    /// peer's right is known, so nothing reaches or comes from a peer before then.
    Hold {
        /// The link.
        link: LinkId,
        /// Stop (true) or let flow (false).
        held: bool,
    },
    /// Ask `peer` which account it acts for (exchange identity bindings), and report it with
    /// [`RoomSession::handle_peer_account`]: it claims to broadcast in a room this node
    /// watches, and only its account can prove that.
    LearnAccount {
        /// The peer.
        peer: P,
    },
    /// Close a link.
    CloseLink {
        /// The link.
        link: LinkId,
    },
    /// Something worth reporting happened.
    Event(RoomEvent<P>),
}

/// Reportable changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomEvent<P> {
    /// Receiving from `peer` over `link`.
    Subscribed {
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// A receive link closed; a new attempt follows after backoff.
    SubscriptionLost {
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// Feeding `peer` over `link`.
    SubscriberAdded {
        /// The room.
        room: RoomId,
        /// The subscriber.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// A send link closed.
    SubscriberRemoved {
        /// The room.
        room: RoomId,
        /// The subscriber.
        peer: P,
        /// The link.
        link: LinkId,
    },
    /// A subscribe attempt failed.
    SubscribeFailed {
        /// The room.
        room: RoomId,
        /// The publisher.
        peer: P,
        /// Why.
        failure: SubscribeFailure,
    },
    /// A link was closed because its peer lost the right it needed (revoked, banned, binding
    /// expired).
    AccessRevoked {
        /// The room.
        room: RoomId,
        /// The peer.
        peer: P,
        /// The link closed.
        link: LinkId,
    },
    /// A link was closed because its peer's right stayed unknown for
    /// [`SessionConfig::unverified_link_timeout`] (no media flowed on it meanwhile).
    LinkUnverified {
        /// The room.
        room: RoomId,
        /// The peer.
        peer: P,
        /// The link closed.
        link: LinkId,
    },
    /// The media from this node's tree parent stopped: the parent is taken as gone (killed, or
    /// cut off) and another is sought.
    ParentSilent {
        /// The room.
        room: RoomId,
        /// The parent.
        parent: P,
    },
    /// A tree message was refused: its sender's place in the tree is not proven (a stranger
    /// offering to feed this node, say).
    TreeMessageRefused {
        /// The room.
        room: RoomId,
        /// The sender.
        peer: P,
        /// Why.
        error: SignalError,
    },
    /// A peer that provides the room (claims to broadcast in it) may not broadcast there: it is
    /// never joined.
    RootRefused {
        /// The room.
        room: RoomId,
        /// The claimant.
        peer: P,
        /// Why.
        error: SignalError,
    },
    /// This node broadcasts in `room`, and `winner` does too with a claim that wins (the lowest
    /// id of the proven broadcasters): viewers and relayers join `winner`'s tree.
    RootContested {
        /// The room.
        room: RoomId,
        /// The broadcaster viewers choose.
        winner: P,
    },
    /// A peer's request was refused.
    RequestRefused {
        /// The requester.
        peer: P,
        /// Why.
        error: SignalError,
    },
    /// Now fed by `parent` in the room's relay tree.
    TreeAttached {
        /// The room.
        room: RoomId,
        /// The parent.
        parent: P,
        /// This node's level in the tree.
        level: u32,
    },
    /// A tree member refused this node's request.
    TreeRefused {
        /// The room.
        room: RoomId,
        /// Who refused.
        peer: P,
        /// Why.
        error: SignalError,
    },
}
