//! Identifiers and small value types shared by every Chroom crate.
//!
//! This crate owns the vocabulary: [`RoomId`], [`NodeId`], [`LinkId`], [`MediaKind`], [`Track`],
//! [`FileHash`], the access model ([`Account`], [`Role`], [`Membership`], [`RoomKind`], and which
//! [`Action`] each role permits) and the limits that every layer agrees on. It does no IO and
//! depends on nothing heavier than a hash function, so the sans-IO cores can use it freely.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use sha3::{Digest, Keccak256};

mod access;

pub use access::{
    Account, Action, Cue, HostFallback, IdentityBinding, InvalidAccount, Membership, Moderation,
    Presenting, Role, RoomKind, RoomPolicy,
};

/// Largest signaling message a node accepts from a peer, in bytes.
///
/// An SDP offer with audio, video and a handful of candidates is ~3–6 KiB; 64 KiB leaves room for
/// simulcast and many candidates while keeping a hostile peer from making us buffer megabytes.
pub const MAX_SIGNAL_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest room gossip message (the encoded `RoomMessage`) a node accepts, in bytes.
pub const MAX_ROOM_MESSAGE_BYTES: usize = 16 * 1024;

/// Longest chat line, in bytes of UTF-8.
pub const MAX_CHAT_TEXT_BYTES: usize = 4096;

/// Longest question to a room's hosts, in bytes.
pub const MAX_QUESTION_BYTES: usize = 500;

/// Longest display name a member may set, in bytes.
pub const MAX_DISPLAY_NAME_BYTES: usize = 64;

/// Why a display name is refused, if it is: empty, too long, with control characters, or
/// written as an account address (the page shows a member's address beside its name, and a
/// name must not pass for another one's).
pub fn check_display_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("a display name cannot be empty");
    }
    if name.len() > MAX_DISPLAY_NAME_BYTES {
        return Err("a display name is at most 64 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("a display name cannot hold control characters");
    }
    if name.trim().parse::<Account>().is_ok() {
        return Err("a display name cannot be an account address");
    }
    Ok(())
}

/// Longest name of a room's shared document, in bytes.
pub const MAX_DOC_NAME_BYTES: usize = 64;

/// Largest edit of a shared document a member may send at once (an encoded Yjs update), in
/// bytes: it travels in one room message, whose own limit it leaves room for. A page pasting
/// more sends it in several edits.
pub const MAX_DOC_UPDATE_BYTES: usize = 12 * 1024;

/// Largest encoded Yjs relative position (one end of a member's selection in a shared
/// document), in bytes.
pub const MAX_DOC_POSITION_BYTES: usize = 64;

/// Why a shared document's name is refused, if it is: empty, too long or with control
/// characters.
pub fn check_doc_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("a document name cannot be empty");
    }
    if name.len() > MAX_DOC_NAME_BYTES {
        return Err("a document name is at most 64 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("a document name cannot hold control characters");
    }
    Ok(())
}

/// Longest room name accepted anywhere (CLI, config, wire).
pub const MAX_ROOM_NAME_BYTES: usize = 128;

/// A room, named by the Keccak-256 hash of its name.
///
/// Keccak-256 is what the on-chain registry computes for `keccak256(bytes(name))`, so the same id
/// names the room in the DHT, in gossip topics and in the contract.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId([u8; 32]);

impl RoomId {
    /// The id of the room called `name`.
    pub fn from_name(name: &RoomName) -> Self {
        Self(Keccak256::digest(name.as_str().as_bytes()).into())
    }

    /// Wraps raw id bytes (as read from the wire or the chain).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first five bytes in hex, for logs.
    pub fn fmt_short(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

impl TryFrom<&[u8]> for RoomId {
    type Error = InvalidLength;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        bytes32(bytes).map(Self)
    }
}

/// `bytes` as the 32 bytes an id holds.
fn bytes32(bytes: &[u8]) -> Result<[u8; 32], InvalidLength> {
    bytes.try_into().map_err(|_| InvalidLength {
        expected: 32,
        actual: bytes.len(),
    })
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({})", self.fmt_short())
    }
}

/// A shared file, named by the BLAKE3 hash of its bytes: whoever holds a file with this name
/// holds exactly those bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHash([u8; 32]);

impl FileHash {
    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TryFrom<&[u8]> for FileHash {
    type Error = InvalidLength;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        bytes32(bytes).map(Self)
    }
}

impl fmt::Display for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHash({})", hex::encode(&self.0[..5]))
    }
}

impl FromStr for FileHash {
    type Err = InvalidFileHash;

    /// Parses the 64 hex digits [`fmt::Display`] writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| InvalidFileHash)?;
        Ok(Self(bytes))
    }
}

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a file hash is 64 hex digits")]
pub struct InvalidFileHash;

/// A shared file travels in chunks of this many bytes (the last may be shorter), each small
/// enough for one signaling response.
pub const FILE_CHUNK_BYTES: usize = 32 * 1024;

/// Largest file a room can share: its manifest (a BLAKE3 hash per chunk) fits one signaling
/// response.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Longest shared file name, in bytes of UTF-8.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A byte string had the wrong length for the id it should hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} bytes, got {actual}")]
pub struct InvalidLength {
    /// Length the id needs.
    pub expected: usize,
    /// Length that was given.
    pub actual: usize,
}

/// A validated room name: 1..=[`MAX_ROOM_NAME_BYTES`] bytes of printable characters, no
/// surrounding whitespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The room's id.
    pub fn id(&self) -> RoomId {
        RoomId::from_name(self)
    }
}

/// Why a string is not a usable room name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomNameError {
    /// The name is empty.
    #[error("room name is empty")]
    Empty,
    /// The name is longer than [`MAX_ROOM_NAME_BYTES`].
    #[error("room name is {len} bytes, the limit is {MAX_ROOM_NAME_BYTES}")]
    TooLong {
        /// Length of the rejected name.
        len: usize,
    },
    /// The name contains a control character or leading/trailing whitespace.
    #[error("room name must be printable text without surrounding whitespace")]
    NotPrintable,
}

impl FromStr for RoomName {
    type Err = RoomNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if s.len() > MAX_ROOM_NAME_BYTES {
            return Err(RoomNameError::TooLong { len: s.len() });
        }
        if s.trim() != s || s.chars().any(char::is_control) {
            return Err(RoomNameError::NotPrintable);
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomName({:?})", self.0)
    }
}

/// A node, named by its ed25519 public key (the key behind its libp2p `PeerId`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// Wraps an ed25519 public key.
    pub const fn from_public_key(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The ed25519 public key.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first five bytes in hex, for logs.
    pub fn fmt_short(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.fmt_short())
    }
}

/// Identifies one link (a WebRTC peer connection) inside a node. Local, never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link-{}", self.0)
    }
}

/// Kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// Opus audio.
    Audio,
    /// VP8 video.
    Video,
}

/// One of a member's streams. Each has its own m-line on a link, so a screen share travels
/// beside the camera and can be shown apart from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Track {
    /// The microphone (or a file's audio).
    Microphone,
    /// The camera (or a file's video).
    Camera,
    /// A shared screen or window.
    Screen,
}

impl Track {
    /// Every track, in m-line order.
    pub const ALL: [Self; 3] = [Self::Microphone, Self::Camera, Self::Screen];

    /// What it carries.
    pub const fn kind(self) -> MediaKind {
        match self {
            Self::Microphone => MediaKind::Audio,
            Self::Camera | Self::Screen => MediaKind::Video,
        }
    }

    /// Its name: the track id in an m-line's `a=msid`, which tells the answering node which
    /// video m-line is the screen.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Microphone => "microphone",
            Self::Camera => "camera",
            Self::Screen => "screen",
        }
    }

    /// The track named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|track| track.name() == name)
    }

    /// The main track of `kind`: what an m-line without a known name carries.
    pub const fn main(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => Self::Microphone,
            MediaKind::Video => Self::Camera,
        }
    }

    /// The tracks carrying `kinds`: the main ones, and the screen too if `screen` and video is
    /// among them.
    pub fn carrying(kinds: &[MediaKind], screen: bool) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|track| kinds.contains(&track.kind()))
            .filter(|track| screen || *track != Self::Screen)
            .collect()
    }
}

/// How a link hands media to and from its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinkMode {
    /// Whole frames: for publishing from files and recording (the WebRTC stack packetizes).
    #[default]
    Frames,
    /// RTP packets as they arrive: for relaying without depacketizing.
    Packets,
}

/// What a node wants from a link it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkIntent {
    /// Receive the remote's published tracks.
    Subscribe,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_short_printable_and_never_an_address() {
        assert_eq!(check_display_name("Ada Lovelace"), Ok(()));
        for bad in [
            "",
            "   ",
            "bell\u{7}",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            &"x".repeat(65),
        ] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn room_id_is_keccak_of_name() {
        let name: RoomName = "hello".parse().unwrap();
        // keccak256("hello"), as Solidity's keccak256(bytes("hello")) computes it.
        assert_eq!(
            name.id().to_string(),
            "1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8"
        );
        assert_ne!(name.id(), "hello2".parse::<RoomName>().unwrap().id());
    }

    #[test]
    fn room_names_are_validated() {
        assert_eq!("".parse::<RoomName>(), Err(RoomNameError::Empty));
        assert_eq!(" a".parse::<RoomName>(), Err(RoomNameError::NotPrintable));
        assert_eq!("a\nb".parse::<RoomName>(), Err(RoomNameError::NotPrintable));
        let long = "x".repeat(MAX_ROOM_NAME_BYTES + 1);
        assert!(matches!(
            long.parse::<RoomName>(),
            Err(RoomNameError::TooLong { .. })
        ));
        assert!("team standup".parse::<RoomName>().is_ok());
    }

    #[test]
    fn tracks_carry_their_kinds_and_round_trip_their_names() {
        for track in Track::ALL {
            assert_eq!(Track::from_name(track.name()), Some(track));
        }
        assert_eq!(Track::from_name("a1b2-uuid"), None);
        assert_eq!(
            Track::carrying(&[MediaKind::Audio, MediaKind::Video], true),
            Track::ALL
        );
        assert_eq!(
            Track::carrying(&[MediaKind::Audio, MediaKind::Video], false),
            [Track::Microphone, Track::Camera]
        );
        assert_eq!(
            Track::carrying(&[MediaKind::Audio], true),
            [Track::Microphone]
        );
    }

    #[test]
    fn file_hashes_print_and_parse_as_hex() {
        let hash = FileHash::from_bytes([0xab; 32]);
        assert_eq!(hash.to_string().parse::<FileHash>(), Ok(hash));
        assert_eq!("ab".parse::<FileHash>(), Err(InvalidFileHash));
        assert_eq!("zz".repeat(32).parse::<FileHash>(), Err(InvalidFileHash));
    }

    #[test]
    fn room_id_from_wrong_length_is_an_error() {
        let err = RoomId::try_from(&[0u8; 31][..]).unwrap_err();
        assert_eq!(
            err,
            InvalidLength {
                expected: 32,
                actual: 31
            }
        );
    }
}
