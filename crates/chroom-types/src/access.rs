//! Accounts, roles and what each role may do in each kind of room.
//!
//! The registry contract is the source of truth for roles; this module is the one place that
//! turns a role into permissions, so every check in every crate agrees.

use std::fmt;
use std::str::FromStr;

/// An Ethereum account (20-byte address) a node acts for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account([u8; 20]);

impl Account {
    /// Wraps raw address bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw 20 bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Account({self})")
    }
}

/// Text that is not a `0x`-prefixed 20-byte hex address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an account address (0x followed by 40 hex digits)")]
pub struct InvalidAccount(pub String);

impl FromStr for Account {
    type Err = InvalidAccount;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidAccount(s.to_owned());
        let digits = s.strip_prefix("0x").ok_or_else(invalid)?;
        let bytes = hex::decode(digits).map_err(|_| invalid())?;
        Ok(Self(bytes.try_into().map_err(|_| invalid())?))
    }
}

/// A signed statement "account A lets node P act for it until T" (P is implied: the verifier
/// checks the signature against the PeerId it is talking to). Signing and verification live in
/// `chroom-registry`; this is the value that travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityBinding {
    /// The account that signed.
    pub account: Account,
    /// Unix seconds after which the binding is void.
    pub expires_at_unix: u64,
    /// EIP-191 signature (r, s, v) over the binding text.
    pub signature: [u8; 65],
}

/// A member's role in a room, lowest first. The order is the contract's: nobody may grant a
/// role above their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Member of a conference, listener of an audio space or viewer of a broadcast.
    Listener,
    /// Presenter or speaker: may publish in every kind of room.
    Speaker,
    /// Runs the session: may mute or remove participants.
    Host,
    /// Manages roles below their own.
    Admin,
    /// Created the room.
    Owner,
}

impl Role {
    /// Its name in messages and on the page.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Listener => "listener",
            Self::Speaker => "speaker",
            Self::Host => "host",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// Who hosts when no member with an on-chain host role is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum HostFallback {
    /// Nobody: the room has no host until one returns.
    #[default]
    None,
    /// The member who joined first.
    FirstJoiner,
    /// The member with the highest on-chain role (then the first to join).
    HighestRole,
}

/// How members come to present (share a screen, take the stage in a conference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Presenting {
    /// A member who asks presents once nobody else does (first asked, first served).
    #[default]
    Free,
    /// A member presents when a host passes it the presentation (hosts present at once).
    Approval,
}

impl HostFallback {
    /// Its number: its place in [`Self::ALL`] (the contract's value).
    pub fn value(self) -> u8 {
        Self::ALL.iter().position(|v| *v == self).unwrap_or(0) as u8
    }

    /// The value numbered `value`, if there is one.
    pub fn from_value(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// Every value, in the contract's order.
    pub const ALL: [Self; 3] = [Self::None, Self::FirstJoiner, Self::HighestRole];

    /// Its name in messages, on the page and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::FirstJoiner => "first-joiner",
            Self::HighestRole => "highest-role",
        }
    }
}

impl Presenting {
    /// Its number: its place in [`Self::ALL`] (the contract's value).
    pub fn value(self) -> u8 {
        Self::ALL.iter().position(|v| *v == self).unwrap_or(0) as u8
    }

    /// The value numbered `value`, if there is one.
    pub fn from_value(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// Every value, in the contract's order.
    pub const ALL: [Self; 2] = [Self::Free, Self::Approval];

    /// Its name in messages, on the page and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Approval => "approval",
        }
    }
}

/// How a room's roles are assigned among the members present (the orchestrator's policy),
/// stored with the room in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RoomPolicy {
    /// Who hosts when no on-chain host is present.
    pub host_fallback: HostFallback,
    /// How members come to present.
    pub presenting: Presenting,
    /// Listeners may step on the stage without an invitation.
    pub open_stage: bool,
}

/// What a member asks or a host decides about the room's roles; stamped with its author and
/// the time its author sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cue<P> {
    /// The author asks to present.
    Present,
    /// The author stops presenting, or withdraws its ask.
    StopPresenting,
    /// A host gives the presentation to a member (itself, to take it).
    PassPresentation {
        /// Who presents.
        to: P,
    },
    /// The author raises its hand.
    RaiseHand,
    /// A member lowers its own hand; a host lowers anyone's.
    LowerHand {
        /// Whose hand.
        of: P,
    },
    /// A host invites a member onto the stage (a session grant), or the member steps on an
    /// open stage itself.
    InviteToStage {
        /// Who may speak.
        who: P,
    },
    /// A host takes a member off the stage, or a member steps down itself.
    RemoveFromStage {
        /// Who.
        who: P,
    },
}

impl<P> Cue<P> {
    /// The same cue naming members another way (as nodes on the wire, as peers in a node).
    pub fn map<Q>(self, mut name: impl FnMut(P) -> Option<Q>) -> Option<Cue<Q>> {
        Some(match self {
            Self::Present => Cue::Present,
            Self::StopPresenting => Cue::StopPresenting,
            Self::PassPresentation { to } => Cue::PassPresentation { to: name(to)? },
            Self::RaiseHand => Cue::RaiseHand,
            Self::LowerHand { of } => Cue::LowerHand { of: name(of)? },
            Self::InviteToStage { who } => Cue::InviteToStage { who: name(who)? },
            Self::RemoveFromStage { who } => Cue::RemoveFromStage { who: name(who)? },
        })
    }

    /// The member it names, if it names one.
    pub fn subject(&self) -> Option<&P> {
        match self {
            Self::Present | Self::StopPresenting | Self::RaiseHand => None,
            Self::PassPresentation { to: subject }
            | Self::LowerHand { of: subject }
            | Self::InviteToStage { who: subject }
            | Self::RemoveFromStage { who: subject } => Some(subject),
        }
    }
}

/// What the registry says about an account in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    /// Banned: beats every join policy and every role.
    Banned,
    /// Neither granted a role nor admitted by the room's join policy.
    NotMember,
    /// Admitted with this role.
    Member(Role),
}

/// The kind of a room, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// Everyone admitted may send audio and video.
    Conference,
    /// Audio only; speakers talk, listeners listen.
    AudioSpace,
    /// One or a few presenters, any number of viewers, carried by relayers.
    Broadcast,
}

impl RoomKind {
    /// Its name in messages and on the page.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Conference => "conference",
            Self::AudioSpace => "audio_space",
            Self::Broadcast => "broadcast",
        }
    }
}

/// Something a node asks to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Receive the room's media and chat.
    Listen,
    /// Send media into the room.
    Publish,
    /// Write in the room's chat.
    Chat,
    /// Edit the room's shared documents (everyone else reads them).
    Edit,
    /// Mute or remove others.
    Moderate,
}

/// What a host (anyone allowed [`Action::Moderate`]) decides about another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Moderation {
    /// Nobody plays the member's microphone, and its node stops sending it.
    Mute,
    /// Lifts a [`Moderation::Mute`].
    Unmute,
    /// The member's node leaves the room; the others ignore it there.
    Remove,
}

impl Membership {
    /// Whether this membership permits `action` in a room of `kind`.
    pub fn allows(self, kind: RoomKind, action: Action) -> bool {
        let Self::Member(role) = self else {
            return false;
        };
        let needed = match (kind, action) {
            // Viewers and listeners chat too, as in a live stream's chat.
            (_, Action::Listen | Action::Chat) => Role::Listener,
            // In a conference every admitted member shows their camera.
            (RoomKind::Conference, Action::Publish) => Role::Listener,
            (RoomKind::AudioSpace | RoomKind::Broadcast, Action::Publish) => Role::Speaker,
            // Who may speak may write: every member of a conference, the speakers of an
            // audio space or a broadcast (listeners and viewers read along).
            (RoomKind::Conference, Action::Edit) => Role::Listener,
            (RoomKind::AudioSpace | RoomKind::Broadcast, Action::Edit) => Role::Speaker,
            (_, Action::Moderate) => Role::Host,
        };
        role >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_parse_and_print() {
        let text = "0x00112233445566778899aabbccddeeff00112233";
        let account: Account = text.parse().unwrap();
        assert_eq!(account.to_string(), text);
        for bad in ["00112233445566778899aabbccddeeff00112233", "0x1234", "0xzz"] {
            assert!(bad.parse::<Account>().is_err(), "{bad}");
        }
    }

    #[test]
    fn permissions_follow_kind_and_role() {
        use Action::*;
        use RoomKind::*;
        let listener = Membership::Member(Role::Listener);
        let speaker = Membership::Member(Role::Speaker);
        assert!(listener.allows(Conference, Publish));
        assert!(!listener.allows(AudioSpace, Publish));
        assert!(!listener.allows(Broadcast, Publish));
        assert!(speaker.allows(Broadcast, Publish));
        assert!(listener.allows(Conference, Edit));
        assert!(!listener.allows(AudioSpace, Edit));
        assert!(!listener.allows(Broadcast, Edit));
        assert!(speaker.allows(AudioSpace, Edit));
        assert!(!speaker.allows(Conference, Moderate));
        assert!(Membership::Member(Role::Host).allows(AudioSpace, Moderate));
        for kind in [Conference, AudioSpace, Broadcast] {
            assert!(listener.allows(kind, Chat));
            for action in [Listen, Publish, Chat, Edit, Moderate] {
                assert!(!Membership::Banned.allows(kind, action));
                assert!(!Membership::NotMember.allows(kind, action));
                assert!(Membership::Member(Role::Owner).allows(kind, action));
            }
        }
    }
}
