//! Rules a node applies on its own user's behalf: whether its account may enter a room (and the
//! words that say why not), and how a page takes part in a room of each kind with each role.

use std::fmt;

use chroom_types::{Account, Action, MediaKind, Membership, Role, RoomKind, RoomName};

use crate::access::AccessFacts;
use crate::session::Participation;

/// Members a page's broadcast feeds directly (about 12 Mbit/s of uplink at 1.5 Mbit/s each);
/// the room's relay tree carries it to everyone else.
pub const PAGE_BROADCAST_CAPACITY: u32 = 8;

/// This node's own standing in a room, as the registry tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAccess {
    /// The room's kind; `None` where no registry is configured (development: anything goes).
    pub kind: Option<RoomKind>,
    /// This node's role; `None` without a registry.
    pub role: Option<Role>,
}

/// Why this node's own account may not do something in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnRefusal {
    /// The node acts for no account.
    NoAccount,
    /// The registry has no such room.
    NoSuchRoom {
        /// The room's name.
        room: RoomName,
    },
    /// The account is banned from the room.
    Banned {
        /// The account.
        account: Account,
        /// The room's name.
        room: RoomName,
    },
    /// The account's role does not allow the action.
    RoleTooLow {
        /// The account.
        account: Account,
        /// Its role.
        role: Role,
        /// The room's name.
        room: RoomName,
    },
    /// The account is not a member.
    NotMember {
        /// The account.
        account: Account,
        /// The room's name.
        room: RoomName,
    },
    /// Neither the registry nor this node's cache of it answered in time.
    Unavailable,
}

impl fmt::Display for OwnRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAccount => f.write_str(
                "this node acts for no account: sign in with a wallet, or give it one in its \
                 [identity] config",
            ),
            Self::NoSuchRoom { room } => {
                write!(f, "there is no room {:?} in the registry", room.as_str())
            }
            Self::Banned { account, room } => {
                write!(f, "{account} is banned from room {:?}", room.as_str())
            }
            Self::RoleTooLow {
                account,
                role,
                room,
            } => write!(
                f,
                "{account} is a {role:?} in room {:?}, which may not do that",
                room.as_str()
            ),
            Self::NotMember { account, room } => {
                write!(f, "{account} is not a member of room {:?}", room.as_str())
            }
            Self::Unavailable => {
                f.write_str("the registry cannot be reached and this node holds no answer from it")
            }
        }
    }
}

/// Decides whether `account`, whose registry facts in `room` are `facts`, may do `action`.
pub fn own_access(
    room: &RoomName,
    account: Account,
    facts: AccessFacts,
    action: Action,
) -> Result<OwnAccess, OwnRefusal> {
    let room = room.clone();
    let AccessFacts::Known {
        kind, membership, ..
    } = facts
    else {
        return Err(OwnRefusal::NoSuchRoom { room });
    };
    match membership {
        Membership::Member(role) if membership.allows(kind, action) => Ok(OwnAccess {
            kind: Some(kind),
            role: Some(role),
        }),
        Membership::Member(role) => Err(OwnRefusal::RoleTooLow {
            account,
            role,
            room,
        }),
        Membership::Banned => Err(OwnRefusal::Banned { account, room }),
        Membership::NotMember => Err(OwnRefusal::NotMember { account, room }),
    }
}

/// How a page takes part in a room, given its node's standing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePart {
    /// What the node joins as.
    pub participation: Participation,
    /// The page may send its camera, microphone or screen.
    pub may_publish: bool,
    /// The page may go live (a broadcast room's presenters and hosts).
    pub may_go_live: bool,
}

/// A page asked to go live where it may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only a broadcast room's presenters and hosts can go live")]
pub struct CannotGoLive;

/// How a page with `access` takes part in its room, going `live` (broadcasting) or not, its
/// user put `on_stage` by a host or not.
pub fn page_part(access: OwnAccess, live: bool, on_stage: bool) -> Result<PagePart, CannotGoLive> {
    let role_publishes = match (access.kind, access.role) {
        (Some(kind), Some(role)) => Membership::Member(role).allows(kind, Action::Publish),
        // No registry: development, everyone may.
        _ => true,
    };
    let broadcast = access.kind == Some(RoomKind::Broadcast);
    if live && !(broadcast && role_publishes) {
        return Err(CannotGoLive);
    }
    // A host put the user on stage: it speaks for the session. In a broadcast it joins the
    // broadcaster's studio; the broadcast keeps its one root.
    let guest = broadcast && on_stage && !live;
    let may_publish = if broadcast {
        live || guest
    } else {
        role_publishes || on_stage
    };
    let av = vec![MediaKind::Audio, MediaKind::Video];
    let participation = match access.kind {
        // The broadcaster is the root of the room's relay tree; it feeds a few members
        // directly, and the tree (relayers, then viewers) carries it on.
        Some(RoomKind::Broadcast) if live => Participation::Broadcast {
            kinds: av,
            capacity: PAGE_BROADCAST_CAPACITY,
        },
        Some(RoomKind::Broadcast) if guest => Participation::Guest(av),
        Some(RoomKind::Broadcast) => Participation::View(av),
        // Audio spaces negotiate no video anywhere; listeners send nothing.
        Some(RoomKind::AudioSpace) if may_publish => Participation::Meet {
            publish: vec![MediaKind::Audio],
            receive: vec![MediaKind::Audio],
        },
        Some(RoomKind::AudioSpace) => Participation::Receive(vec![MediaKind::Audio]),
        Some(RoomKind::Conference) | None => Participation::Meet {
            publish: av.clone(),
            receive: av,
        },
    };
    Ok(PagePart {
        participation,
        may_publish,
        may_go_live: broadcast && role_publishes,
    })
}
