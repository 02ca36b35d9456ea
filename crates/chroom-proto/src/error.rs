//! [`DecodeError`]: why bytes from a peer, a page or the disk did not decode, for every message
//! of the crate.

/// Why bytes did not decode into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than the receiver accepts for this kind of message.
    #[error("message is {len} bytes, the limit is {limit}")]
    TooLarge {
        /// Size of the rejected message.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not valid protobuf for the expected message.
    #[error("not a valid {message}: {reason}")]
    Protobuf {
        /// Which message was expected.
        message: &'static str,
        /// What prost reported.
        reason: String,
    },
    /// Valid protobuf without the `kind` the message needs.
    #[error("{message} has no kind set")]
    MissingKind {
        /// Which message it was.
        message: &'static str,
    },
    /// A chat line longer than [`chroom_types::MAX_CHAT_TEXT_BYTES`].
    #[error(
        "chat text is {len} bytes, the limit is {}",
        chroom_types::MAX_CHAT_TEXT_BYTES
    )]
    ChatTooLong {
        /// Length sent.
        len: usize,
    },
    /// A question that is empty or longer than [`chroom_types::MAX_QUESTION_BYTES`].
    #[error(
        "a question is 1 to {} bytes, this one {len}",
        chroom_types::MAX_QUESTION_BYTES
    )]
    BadQuestion {
        /// Length sent.
        len: usize,
    },
    /// A shared document's edit or cursor with a bad name or size.
    #[error("bad document update: {reason}")]
    BadDocUpdate {
        /// Why.
        reason: &'static str,
    },
    /// A document pull or part that breaks a limit.
    #[error("bad document sync: {reason}")]
    BadDocSync {
        /// Why.
        reason: &'static str,
    },
    /// A sealed message, or what one opened to, that cannot be.
    #[error("bad sealed message: {reason}")]
    BadSealed {
        /// Why.
        reason: &'static str,
    },
    /// A display name that [`chroom_types::check_display_name`] refuses.
    #[error("bad display name: {reason}")]
    BadDisplayName {
        /// Why.
        reason: &'static str,
    },
    /// A tree message listing more than [`chroom_overlay::MAX_CANDIDATES`] candidates.
    #[error("{len} candidates, the limit is {}", chroom_overlay::MAX_CANDIDATES)]
    TooManyCandidates {
        /// How many were sent.
        len: usize,
    },
    /// A node id that is not a 32-byte public key.
    #[error("node id is {len} bytes, expected 32")]
    BadNodeId {
        /// Length sent.
        len: usize,
    },
    /// A file hash that is not 32 bytes.
    #[error("file hash is {len} bytes, expected 32")]
    BadFileHash {
        /// Length of the bytes sent.
        len: usize,
    },
    /// A relay grant with an address, port or token that cannot be.
    #[error("relay grant refused: {reason}")]
    BadRelayGrant {
        /// What is wrong.
        reason: &'static str,
    },
    /// A file request naming no part of the file.
    #[error("a file request must ask for the manifest or a chunk")]
    NoFilePart,
    /// A file offer whose name or size cannot be shared.
    #[error("file offer refused: {reason}")]
    BadFileOffer {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A room id that is not 32 bytes.
    #[error("room id is {len} bytes, expected 32")]
    BadRoomId {
        /// Length of the bytes sent.
        len: usize,
    },
    /// An identity binding with a field of the wrong length.
    #[error("identity binding {field} is {len} bytes, expected {expected}")]
    BadBinding {
        /// Which field.
        field: &'static str,
        /// Length sent.
        len: usize,
        /// Length required.
        expected: usize,
    },
}

/// Refuses `bytes` longer than `limit` before anything parses them.
pub(crate) fn check_size(bytes: &[u8], limit: usize) -> Result<(), DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    Ok(())
}
