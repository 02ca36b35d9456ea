//! What [`super::NodeCore`] and its driver exchange: what room messages say, what the core
//! orders and reports, and its errors and counters.

use chroom_overlay::Message;
use chroom_proto::{FileOffer, Presence, RoomKey, RoomMessageBody, Sealed, SignalError};
use chroom_types::{Account, Action, Cue, LinkId, Moderation, Role, RoomId};

use super::rules::{OwnAccess, OwnRefusal};
use crate::gossip::{GossipId, GossipVerdict};
use crate::session::{InboundId, Output};

/// What a room message says, with members named as the core names peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say<P> {
    /// A line of chat.
    Chat {
        /// The text.
        text: String,
    },
    /// The author shares a file with the room.
    FileOffer(FileOffer),
    /// A question to the room's hosts.
    Question {
        /// The text.
        text: String,
    },
    /// A cue for the room's orchestrator, decided at `at_unix_ms`.
    Cue {
        /// What is asked or decided.
        cue: Cue<P>,
        /// When its author decided it, unix milliseconds.
        at_unix_ms: u64,
    },
    /// A host's decision about a member.
    Moderate {
        /// The member.
        target: P,
        /// What is decided.
        action: Moderation,
    },
    /// Where the author's selection is in the room's shared document `name` (Yjs relative
    /// positions; both empty: it left the document).
    DocCursor {
        /// The document.
        name: String,
        /// One end of the selection.
        anchor: Vec<u8>,
        /// The other end (the caret).
        head: Vec<u8>,
    },
    /// An edit of the room's shared document `name` (a Yjs update).
    DocUpdate {
        /// The document.
        name: String,
        /// The update.
        update: Vec<u8>,
    },
    /// The author is in the room (`leaving`: is leaving it now). A headless publisher
    /// (`publish_only`) is subscribed to by meeting members even where their id is lower.
    Presence(Presence),
    /// Content sealed with its author's key ([`crate::sealing`]); opened before anything
    /// else is judged.
    Sealed(Sealed),
}

impl<P> Say<P> {
    /// Whether this is content for members only, which travels sealed
    /// ([`RoomMessageBody::is_content`]).
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            Self::Chat { .. }
                | Self::Question { .. }
                | Self::FileOffer(_)
                | Self::DocUpdate { .. }
                | Self::DocCursor { .. }
        )
    }

    /// Content as it travels; `Err(self)` for what is not content.
    pub fn into_content(self) -> Result<RoomMessageBody, Self> {
        Ok(match self {
            Self::Chat { text } => RoomMessageBody::Chat { text },
            Self::Question { text } => RoomMessageBody::Question { text },
            Self::FileOffer(offer) => RoomMessageBody::FileOffer(offer),
            Self::DocUpdate { name, update } => RoomMessageBody::DocUpdate {
                name,
                update: update.into(),
            },
            Self::DocCursor { name, anchor, head } => RoomMessageBody::DocCursor {
                name,
                anchor: anchor.into(),
                head: head.into(),
            },
            other => return Err(other),
        })
    }

    /// What content that arrived says; `Err` gives back what is not content.
    pub fn from_content(body: RoomMessageBody) -> Result<Self, RoomMessageBody> {
        Ok(match body {
            RoomMessageBody::Chat { text } => Self::Chat { text },
            RoomMessageBody::Question { text } => Self::Question { text },
            RoomMessageBody::FileOffer(offer) => Self::FileOffer(offer),
            RoomMessageBody::DocUpdate { name, update } => Self::DocUpdate {
                name,
                update: update.into(),
            },
            RoomMessageBody::DocCursor { name, anchor, head } => Self::DocCursor {
                name,
                anchor: anchor.into(),
                head: head.into(),
            },
            other => return Err(other),
        })
    }

    /// The right its author needs in the room.
    pub fn action(&self) -> Action {
        match self {
            // Sharing a file is saying something in the room.
            // Asking is saying something in the room too.
            Self::Chat { .. } | Self::FileOffer(_) | Self::Question { .. } => Action::Chat,
            Self::Moderate { .. } => Action::Moderate,
            // Only those who may edit have a caret worth showing.
            Self::DocUpdate { .. } | Self::DocCursor { .. } => Action::Edit,
            // Any member may ask; who may decide is the orchestrator's to judge.
            Self::Presence(_) | Self::Cue { .. } => Action::Listen,
            // Never judged sealed (opened first); reading is the least a sealer may do.
            Self::Sealed(_) => Action::Listen,
        }
    }
}

/// A room message as received, decoded and with its author's binding verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard<P> {
    /// The room it names (checked against the topic it came on).
    pub room: RoomId,
    /// When its author says it was sent, unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// What it says.
    pub say: Say<P>,
}

/// A chat line delivered in a room (its author may chat there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine<P> {
    /// The room.
    pub room: RoomId,
    /// The author's node.
    pub author: P,
    /// The account the author proved, if any (always, where the registry is enforced).
    pub account: Option<Account>,
    /// When the author sent it, unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// The text.
    pub text: String,
    /// A question to the room's hosts (webinar Q&A), not a line of chat: hosts' pages list
    /// it, and it is not kept with the chat.
    pub question: bool,
}

/// A member's edit that changed one of a room's documents on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocEdit {
    /// The room.
    pub room: RoomId,
    /// The document.
    pub name: String,
    /// The Yjs update (v1), as the member sent it.
    pub update: Vec<u8>,
}

/// Where a member's selection is in one of a room's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocCaret<P> {
    /// The room.
    pub room: RoomId,
    /// The member.
    pub author: P,
    /// The account it proved.
    pub account: Option<Account>,
    /// The document.
    pub name: String,
    /// One end of the selection (a Yjs relative position).
    pub anchor: Vec<u8>,
    /// The other end (the caret); both empty: the member left the document.
    pub head: Vec<u8>,
}

/// A host's decision, carried out on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationNotice<P> {
    /// The room.
    pub room: RoomId,
    /// The member it is about.
    pub target: P,
    /// The account the member proved, where this node knew it.
    pub target_account: Option<Account>,
    /// What was decided.
    pub action: Moderation,
    /// The host's node.
    pub by: P,
    /// The host's account.
    pub by_account: Option<Account>,
}

/// A member present in a room, as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant<P> {
    /// Its node.
    pub peer: P,
    /// The account it proved, if any.
    pub account: Option<Account>,
    /// Its role in the registry, where this node knows it.
    pub role: Option<Role>,
    /// This node itself.
    pub is_self: bool,
    /// It shares a screen.
    pub sharing_screen: bool,
    /// A host muted it.
    pub muted_by_host: bool,
    /// It hosts the room now (by its on-chain role, or as the policy's acting host).
    pub hosting: bool,
    /// It hosts by the room's policy, not by an on-chain role.
    pub acting_host: bool,
    /// It presents.
    pub presenting: bool,
    /// Its place among the raised hands (0 first), if its hand is up.
    pub hand: Option<usize>,
    /// A host invited it onto the stage (it may speak beyond its role).
    pub on_stage: bool,
    /// It asked to present and waits for its turn.
    pub asking_to_present: bool,
    /// The name its user goes by, if it set one.
    pub display_name: Option<String>,
}

/// What a page shows about a room beside its members: what its user should know is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStatus<P> {
    /// Whether the registry answers.
    pub registry: RegistryStatus,
    /// This node broadcasts in the room, and another broadcaster's claim wins (viewers watch
    /// that one): its node and account.
    pub outranked_by: Option<(P, Option<Account>)>,
    /// The broadcaster this node watches in the room (proven, not this node): its node and
    /// account.
    pub watching: Option<(P, Option<Account>)>,
}

/// Whether rights can be checked against the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryStatus {
    /// It answers.
    Reachable,
    /// It has not answered for `for_secs`; what this node cached still serves.
    CacheServing {
        /// Seconds since it last answered.
        for_secs: u64,
    },
    /// It has not answered for longer than the cache is trusted: rights are unknown, links
    /// that need them are closed.
    Unreachable {
        /// Seconds since it last answered.
        for_secs: u64,
    },
}

/// Correlates a check of this node's own access with its [`NodeOutput::OwnAccess`] answer.
/// Chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnCheckId(pub u64);

/// How a tree message sent to a peer fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeDelivery {
    /// The peer took it.
    Acknowledged,
    /// The peer answered with something else than an acknowledgement or a refusal.
    Misanswered,
    /// The peer refused it.
    Refused(SignalError),
    /// It did not reach the peer.
    Unreachable,
}

/// A command or report for the node's runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeOutput<P> {
    /// Carry out a room session's output. Never a [`Output::GossipVerdict`] or an
    /// [`Output::SendTree`]: this core takes those.
    Session(Output<P>),
    /// Deliver a chat line to the user's pages and keep it.
    Chat(ChatLine<P>),
    /// Fetch a file a member offered in a room this node is in.
    FetchFile {
        /// The room.
        room: RoomId,
        /// The member offering it.
        from: P,
        /// The account it proved.
        account: Option<Account>,
        /// When it was offered, unix milliseconds.
        offered_at_unix_ms: u64,
        /// The offer.
        offer: FileOffer,
    },
    /// Report a room message's verdict to the gossip layer (deliver and forward, drop, or
    /// drop and blame the forwarder).
    Gossip {
        /// The message.
        id: GossipId,
        /// What to do with it.
        verdict: GossipVerdict,
    },
    /// Tell the user's pages of a host's decision carried out here.
    Moderated(ModerationNotice<P>),
    /// Offer again, in `room`, the files this node shared there (a member arrived).
    OfferFilesAgain {
        /// The room.
        room: RoomId,
    },
    /// Answers a [`NodeCore::check_own_access`].
    OwnAccess {
        /// The check.
        id: OwnCheckId,
        /// The answer.
        result: Result<OwnAccess, OwnRefusal>,
    },
    /// Stop fetching the files of `room` (this node left it); what is held is kept.
    PauseFiles {
        /// The room.
        room: RoomId,
    },
    /// Publish a room message from this node.
    Publish {
        /// The room.
        room: RoomId,
        /// What it says.
        say: Say<P>,
    },
    /// Go on fetching the files of `room` (this node joined it).
    ResumeFiles {
        /// The room.
        room: RoomId,
    },
    /// Send a tree message to `peer`; report how it fared with
    /// [`NodeCore::handle_tree_delivery`]. One is out per peer at a time.
    SendTree {
        /// The recipient.
        peer: P,
        /// The room whose tree it is.
        room: RoomId,
        /// The message.
        message: Message<P>,
    },
    /// Serve the file chunk asked for by an accepted [`NodeCore::handle_file_request`].
    ServeFile {
        /// The request.
        request: InboundId,
    },
    /// Open a relay allocation of `kbps` for `peer` and answer an accepted
    /// [`NodeCore::handle_relay_request`] with it; report its end with
    /// [`NodeCore::handle_relay_ended`] (also if it could not be opened).
    GrantRelay {
        /// The request.
        request: InboundId,
        /// Who asked.
        peer: P,
        /// What the allocation may relay, both ways together, kbit/s.
        kbps: u32,
    },
    /// Find a relayer that grants this node a relayed media path, naming `room` (one this node
    /// is in); report how it went with [`NodeCore::handle_relay_found`].
    SeekRelay {
        /// The room to name.
        room: RoomId,
    },
    /// A member's edit changed one of a room's documents: pass it to the pages showing it.
    DocUpdated(DocEdit),
    /// Ask `peer` for what this node lacks of a document of `room` (`pull`); report the
    /// answer with [`super::NodeCore::handle_doc_part`].
    PullDoc {
        /// The room.
        room: RoomId,
        /// The member asked.
        peer: P,
        /// What is asked.
        pull: chroom_proto::DocPull,
    },
    /// Answer an accepted [`super::NodeCore::handle_doc_pull`] with
    /// [`super::NodeCore::doc_part`].
    ServeDocPart {
        /// The request.
        request: InboundId,
    },
    /// A member's selection in one of a room's documents moved: tell the pages showing it.
    DocCursor(DocCaret<P>),
    /// Ask `peer` for the key it seals its content in `room` with; report the answer with
    /// [`super::NodeCore::handle_room_key`].
    AskRoomKey {
        /// The room.
        room: RoomId,
        /// The member asked.
        peer: P,
    },
    /// Answer an accepted [`super::NodeCore::handle_room_key_request`] with this node's key.
    ServeRoomKey {
        /// The request.
        request: InboundId,
        /// The key.
        key: RoomKey,
    },
    /// Store this copy of `room`'s document `name` in place of the last one.
    StoreDoc {
        /// The room.
        room: RoomId,
        /// The document.
        name: String,
        /// The whole document as one update.
        compacted: Vec<u8>,
    },
    /// These links (and no others) go to the members on the stage of a broadcast this node
    /// is live in: they get this node's own tracks, never its page's program.
    Studio {
        /// The links.
        links: Vec<LinkId>,
    },
    /// Drop (`silenced`) or pass again the microphone arriving on `link`.
    Silence {
        /// The link.
        link: LinkId,
        /// Drop it.
        silenced: bool,
    },
}

/// A command of this node's user that cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The node is not present in the room.
    #[error("join the room before {doing} it")]
    NotInRoom {
        /// What was asked, as "moderating", "sharing a file in".
        doing: &'static str,
    },
    /// A node in a room keeps the account its members know it by.
    #[error(
        "leave the room before signing in as another account: members know this node by one \
         account"
    )]
    AccountInUse,
    /// Neither an on-chain role nor the room's policy makes this node's user a host over the
    /// member.
    #[error("your role in this room does not let you mute or remove that member")]
    NotHost,
    /// A question is empty or longer than [`chroom_types::MAX_QUESTION_BYTES`].
    #[error("a question is 1 to 500 bytes")]
    BadQuestion,
    /// This node's user asks more often than the room's members take questions from one
    /// author.
    #[error("you ask too often: wait a little before the next question")]
    AskingTooOften,
    /// The display name is refused ([`chroom_types::check_display_name`]).
    #[error("{0}")]
    DisplayName(&'static str),
    /// This node's user may only read the room's shared documents.
    #[error("your role in this room lets you read its documents, not edit them")]
    ReadOnly,
    /// The room's documents refuse the edit (the reason names the limit).
    #[error("{0}")]
    Doc(String),
    /// The orchestrator does not take this cue from this node's user.
    #[error(transparent)]
    Cue(#[from] crate::orchestrator::CueRefused),
}

/// What the node counts, for its stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Signaling requests refused so far.
    pub requests_refused: u64,
    /// Signaling requests that did not decode.
    pub malformed_requests: u64,
    /// The registry is unreachable and the node serves cached memberships.
    pub registry_stale: bool,
    /// The latest refusal a peer sent this node, in words.
    pub last_refusal: Option<String>,
    /// Room gossip messages delivered.
    pub gossip_delivered: u64,
    /// Room gossip messages rejected.
    pub gossip_rejected: u64,
    /// Times this node attached to a parent in a relay tree.
    pub tree_attachments: u64,
    /// Tree messages refused because their sender's place in the tree is not proven.
    pub tree_messages_refused: u64,
    /// Peers providing a broadcast room that may not broadcast there (never joined).
    pub roots_refused: u64,
    /// Links closed because their peer's right stayed unknown past the deadline.
    pub links_unverified: u64,
    /// Members' document edits refused after their right was proven (malformed, too fast,
    /// or past a document's cap).
    pub doc_updates_refused: u64,
    /// Sealed room messages this node could not read: no author handed it a key in time
    /// (what a node without a right to the room sees of its content).
    pub sealed_unread: u64,
}
