//! Native room gossip messages and their conversion to and from `chroom.room.v1`.

use bytes::Bytes;
use chroom_types::{
    Cue, FileHash, IdentityBinding, MAX_CHAT_TEXT_BYTES, MAX_DOC_POSITION_BYTES,
    MAX_DOC_UPDATE_BYTES, MAX_FILE_BYTES, MAX_FILE_NAME_BYTES, MAX_QUESTION_BYTES,
    MAX_ROOM_MESSAGE_BYTES, Moderation, NodeId, RoomId, check_display_name, check_doc_name,
};
use prost::Message;

use crate::error::{DecodeError, check_size};
use crate::generated::chroom::room::v1 as pb;
use crate::signal::{binding_from_wire, binding_to_wire};

/// A message published in a room's gossip topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// The room; must be the room of the topic it arrived on.
    pub room: RoomId,
    /// The author's account, if it proves one.
    pub author: Option<IdentityBinding>,
    /// When the author sent it, unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// What it says.
    pub body: RoomMessageBody,
}

/// A presence beat: the author is in the room, or leaving it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// The author is leaving.
    pub leaving: bool,
    /// The author is sharing a screen (on its links' screen m-line).
    pub sharing_screen: bool,
    /// The author sends media but subscribes to nobody: meeting members subscribe to it.
    pub publish_only: bool,
    /// When the author joined the room, unix milliseconds (0: it does not say).
    pub joined_at_unix_ms: u64,
    /// How soon the author's next beat comes, milliseconds (0: the usual interval).
    pub beat_interval_ms: u32,
    /// The name the author's user goes by, if it set one ([`check_display_name`]).
    pub display_name: Option<String>,
    /// How many times the author remade its links in the room during this visit: when it
    /// grows, members link to it afresh.
    pub links_epoch: u32,
}

/// The content of a [`RoomMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomMessageBody {
    /// A line of chat, at most [`MAX_CHAT_TEXT_BYTES`] bytes.
    Chat {
        /// The text.
        text: String,
    },
    /// The author is in the room (`leaving`: is leaving it now).
    Presence(Presence),
    /// The author shares a file with the room.
    FileOffer(FileOffer),
    /// A question to the room's hosts, 1 to [`MAX_QUESTION_BYTES`] bytes.
    Question {
        /// The text.
        text: String,
    },
    /// A cue for the orchestrator, decided at `at_unix_ms`.
    Cue {
        /// What is asked or decided, naming members by node.
        cue: Cue<NodeId>,
        /// When its author decided it, unix milliseconds.
        at_unix_ms: u64,
    },
    /// A host's decision about a member.
    Moderate {
        /// The member's node.
        target: NodeId,
        /// What is decided.
        action: Moderation,
    },
    /// Where the author's selection is in one of the room's shared documents.
    DocCursor {
        /// The document ([`check_doc_name`]).
        name: String,
        /// One end of the selection, a Yjs relative position of at most
        /// [`MAX_DOC_POSITION_BYTES`]; with `head` empty: the author left the document.
        anchor: Bytes,
        /// The other end (the caret).
        head: Bytes,
    },
    /// An edit of one of the room's shared documents.
    DocUpdate {
        /// The document ([`check_doc_name`]).
        name: String,
        /// A Yjs v1 update, 1 to [`MAX_DOC_UPDATE_BYTES`] bytes (its content is the documents
        /// core's to check).
        update: Bytes,
    },
    /// Content for members only, sealed with its author's room key.
    Sealed(Sealed),
}

impl RoomMessageBody {
    /// Whether this is content for members only, which travels [`Sealed`]: chat, questions,
    /// file offers, documents' edits and carets. Presence, cues and hosts' decisions travel
    /// in the clear: relayers and nodes waiting for a key act on them.
    pub fn is_content(&self) -> bool {
        match self {
            Self::Chat { .. }
            | Self::Question { .. }
            | Self::FileOffer(_)
            | Self::DocCursor { .. }
            | Self::DocUpdate { .. } => true,
            Self::Presence(_) | Self::Cue { .. } | Self::Moderate { .. } | Self::Sealed(_) => false,
        }
    }
}

/// The authentication tag ChaCha20-Poly1305 appends to a sealed message.
pub const SEAL_TAG_BYTES: usize = 16;

/// Content sealed with its author's key for the room (ChaCha20-Poly1305, the room id as
/// associated data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Which of the author's keys, as its [`RoomKey`] said.
    pub key_id: u32,
    /// The nonce: never repeats under one key.
    pub counter: u64,
    /// [`encode_sealed_content`]'s bytes, sealed, with the tag.
    pub ciphertext: Bytes,
}

/// The key a member seals its content in a room with, handed to members who ask.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey {
    /// Which key: a new one is made whenever a member leaves.
    pub key_id: u32,
    /// ChaCha20-Poly1305 key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("RoomKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A file shared with a room: members' nodes fetch it from the author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOffer {
    /// BLAKE3 of its bytes.
    pub hash: FileHash,
    /// What to call it: 1 to [`MAX_FILE_NAME_BYTES`] bytes, no path, no control characters.
    pub name: String,
    /// Its length, 1 to [`MAX_FILE_BYTES`] bytes.
    pub size: u64,
    /// BLAKE3 of its manifest (each chunk's hash).
    pub manifest_hash: [u8; 32],
}

/// Checks that `name` can name a shared file: saved as it is, it stays in the folder it is
/// saved to.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_FILE_NAME_BYTES {
        return Err("a file name is 1 to 255 bytes");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
        || name == "."
        || name == ".."
    {
        return Err("a file name has no path and no control characters");
    }
    Ok(())
}

fn file_offer_from_wire(offer: pb::FileOffer) -> Result<FileOffer, DecodeError> {
    let hash = FileHash::try_from(offer.hash.as_ref())
        .map_err(|e| DecodeError::BadFileHash { len: e.actual })?;
    let manifest_hash: [u8; 32] =
        offer.manifest_hash[..]
            .try_into()
            .map_err(|_| DecodeError::BadFileHash {
                len: offer.manifest_hash.len(),
            })?;
    check_file_name(&offer.name).map_err(|reason| DecodeError::BadFileOffer { reason })?;
    if offer.size == 0 || offer.size > MAX_FILE_BYTES {
        return Err(DecodeError::BadFileOffer {
            reason: "a shared file is 1 byte to 32 MiB",
        });
    }
    Ok(FileOffer {
        hash,
        name: offer.name,
        size: offer.size,
        manifest_hash,
    })
}

/// Decodes a room message received over gossip.
pub fn decode_room_message(bytes: &[u8]) -> Result<RoomMessage, DecodeError> {
    check_size(bytes, MAX_ROOM_MESSAGE_BYTES)?;
    let msg = pb::RoomMessage::decode(bytes).map_err(|e| DecodeError::Protobuf {
        message: "RoomMessage",
        reason: e.to_string(),
    })?;
    let room = RoomId::try_from(msg.room_id.as_ref())
        .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
    Ok(RoomMessage {
        room,
        author: msg.author.map(binding_from_wire).transpose()?,
        sent_at_unix_ms: msg.sent_at_unix_ms,
        body: body_from_wire(msg.body)?,
    })
}

fn body_from_wire(body: Option<pb::room_message::Body>) -> Result<RoomMessageBody, DecodeError> {
    Ok(match body {
        Some(pb::room_message::Body::Chat(chat)) => {
            if chat.text.len() > MAX_CHAT_TEXT_BYTES {
                return Err(DecodeError::ChatTooLong {
                    len: chat.text.len(),
                });
            }
            RoomMessageBody::Chat { text: chat.text }
        }
        Some(pb::room_message::Body::FileOffer(offer)) => {
            RoomMessageBody::FileOffer(file_offer_from_wire(offer)?)
        }
        Some(pb::room_message::Body::Cue(cue)) => cue_from_wire(&cue)?,
        Some(pb::room_message::Body::Question(question)) => {
            if question.text.is_empty() || question.text.len() > MAX_QUESTION_BYTES {
                return Err(DecodeError::BadQuestion {
                    len: question.text.len(),
                });
            }
            RoomMessageBody::Question {
                text: question.text,
            }
        }
        Some(pb::room_message::Body::Moderate(moderate)) => {
            let target: [u8; 32] =
                moderate.target[..]
                    .try_into()
                    .map_err(|_| DecodeError::BadNodeId {
                        len: moderate.target.len(),
                    })?;
            let action = match pb::ModerateAction::try_from(moderate.action) {
                Ok(pb::ModerateAction::Mute) => Moderation::Mute,
                Ok(pb::ModerateAction::Unmute) => Moderation::Unmute,
                Ok(pb::ModerateAction::Remove) => Moderation::Remove,
                Ok(pb::ModerateAction::Unspecified) | Err(_) => {
                    return Err(DecodeError::MissingKind {
                        message: "Moderate",
                    });
                }
            };
            RoomMessageBody::Moderate {
                target: NodeId::from_public_key(target),
                action,
            }
        }
        Some(pb::room_message::Body::DocCursor(cursor)) => {
            let bad = |reason| DecodeError::BadDocUpdate { reason };
            check_doc_name(&cursor.name).map_err(bad)?;
            if cursor.anchor.len() > MAX_DOC_POSITION_BYTES
                || cursor.head.len() > MAX_DOC_POSITION_BYTES
            {
                return Err(bad("a position in a document is at most 64 bytes"));
            }
            RoomMessageBody::DocCursor {
                name: cursor.name,
                anchor: cursor.anchor,
                head: cursor.head,
            }
        }
        Some(pb::room_message::Body::DocUpdate(edit)) => {
            check_doc_name(&edit.name).map_err(|reason| DecodeError::BadDocUpdate { reason })?;
            if edit.update.is_empty() || edit.update.len() > MAX_DOC_UPDATE_BYTES {
                return Err(DecodeError::BadDocUpdate {
                    reason: "a document update is 1 byte to 12 KiB",
                });
            }
            RoomMessageBody::DocUpdate {
                name: edit.name,
                update: edit.update,
            }
        }
        Some(pb::room_message::Body::Presence(presence)) => RoomMessageBody::Presence(Presence {
            display_name: match presence.display_name {
                name if name.is_empty() => None,
                name => {
                    check_display_name(&name)
                        .map_err(|reason| DecodeError::BadDisplayName { reason })?;
                    Some(name)
                }
            },
            leaving: presence.leaving,
            sharing_screen: presence.sharing_screen,
            publish_only: presence.publish_only,
            joined_at_unix_ms: presence.joined_at_unix_ms,
            beat_interval_ms: presence.beat_interval_ms,
            links_epoch: presence.links_epoch,
        }),
        Some(pb::room_message::Body::Sealed(sealed)) => {
            if sealed.ciphertext.len() < SEAL_TAG_BYTES {
                return Err(DecodeError::BadSealed {
                    reason: "a sealed message is shorter than its tag",
                });
            }
            RoomMessageBody::Sealed(Sealed {
                key_id: sealed.key_id,
                counter: sealed.counter,
                ciphertext: sealed.ciphertext,
            })
        }
        None => {
            return Err(DecodeError::MissingKind {
                message: "RoomMessage",
            });
        }
    })
}

/// Encodes a room message for gossip.
pub fn encode_room_message(message: &RoomMessage) -> Vec<u8> {
    pb::RoomMessage {
        room_id: Bytes::copy_from_slice(message.room.as_bytes()),
        author: message.author.as_ref().map(binding_to_wire),
        sent_at_unix_ms: message.sent_at_unix_ms,
        body: Some(body_to_wire(&message.body)),
    }
    .encode_to_vec()
}

/// The bytes content is sealed as: a room message holding only `body`. `None` unless `body`
/// is content ([`RoomMessageBody::is_content`]).
pub fn encode_sealed_content(body: &RoomMessageBody) -> Option<Vec<u8>> {
    body.is_content().then(|| {
        pb::RoomMessage {
            body: Some(body_to_wire(body)),
            ..pb::RoomMessage::default()
        }
        .encode_to_vec()
    })
}

/// Decodes what a [`Sealed`] opened to: one content kind and nothing else.
pub fn decode_sealed_content(bytes: &[u8]) -> Result<RoomMessageBody, DecodeError> {
    check_size(bytes, MAX_ROOM_MESSAGE_BYTES)?;
    let msg = pb::RoomMessage::decode(bytes).map_err(|e| DecodeError::Protobuf {
        message: "sealed RoomMessage",
        reason: e.to_string(),
    })?;
    if !msg.room_id.is_empty() || msg.author.is_some() || msg.sent_at_unix_ms != 0 {
        return Err(DecodeError::BadSealed {
            reason: "sealed content carries its envelope's fields",
        });
    }
    let body = body_from_wire(msg.body)?;
    if !body.is_content() {
        return Err(DecodeError::BadSealed {
            reason: "only chat, questions, file offers and documents travel sealed",
        });
    }
    Ok(body)
}

fn body_to_wire(body: &RoomMessageBody) -> pb::room_message::Body {
    match body {
        RoomMessageBody::Chat { text } => {
            pb::room_message::Body::Chat(pb::Chat { text: text.clone() })
        }
        RoomMessageBody::Presence(presence) => pb::room_message::Body::Presence(pb::Presence {
            leaving: presence.leaving,
            sharing_screen: presence.sharing_screen,
            publish_only: presence.publish_only,
            joined_at_unix_ms: presence.joined_at_unix_ms,
            beat_interval_ms: presence.beat_interval_ms,
            display_name: presence.display_name.clone().unwrap_or_default(),
            links_epoch: presence.links_epoch,
        }),
        RoomMessageBody::Question { text } => {
            pb::room_message::Body::Question(pb::Question { text: text.clone() })
        }
        RoomMessageBody::Cue { cue, at_unix_ms } => {
            pb::room_message::Body::Cue(cue_to_wire(*cue, *at_unix_ms))
        }
        RoomMessageBody::Moderate { target, action } => {
            let action = match action {
                Moderation::Mute => pb::ModerateAction::Mute,
                Moderation::Unmute => pb::ModerateAction::Unmute,
                Moderation::Remove => pb::ModerateAction::Remove,
            };
            pb::room_message::Body::Moderate(pb::Moderate {
                target: Bytes::copy_from_slice(target.as_bytes()),
                action: action.into(),
            })
        }
        RoomMessageBody::DocCursor { name, anchor, head } => {
            pb::room_message::Body::DocCursor(pb::DocCursor {
                name: name.clone(),
                anchor: anchor.clone(),
                head: head.clone(),
            })
        }
        RoomMessageBody::DocUpdate { name, update } => {
            pb::room_message::Body::DocUpdate(pb::DocUpdate {
                name: name.clone(),
                update: update.clone(),
            })
        }
        RoomMessageBody::FileOffer(offer) => pb::room_message::Body::FileOffer(pb::FileOffer {
            hash: Bytes::copy_from_slice(offer.hash.as_bytes()),
            name: offer.name.clone(),
            size: offer.size,
            manifest_hash: Bytes::copy_from_slice(&offer.manifest_hash),
        }),
        RoomMessageBody::Sealed(sealed) => pb::room_message::Body::Sealed(pb::Sealed {
            key_id: sealed.key_id,
            counter: sealed.counter,
            ciphertext: sealed.ciphertext.clone(),
        }),
    }
}

fn cue_from_wire(cue: &pb::Cue) -> Result<RoomMessageBody, DecodeError> {
    let subject = || -> Result<NodeId, DecodeError> {
        let key: [u8; 32] = cue.subject[..]
            .try_into()
            .map_err(|_| DecodeError::BadNodeId {
                len: cue.subject.len(),
            })?;
        Ok(NodeId::from_public_key(key))
    };
    let cue_kind = pb::CueKind::try_from(cue.kind).unwrap_or(pb::CueKind::Unspecified);
    let decoded = match cue_kind {
        pb::CueKind::Present => Cue::Present,
        pb::CueKind::StopPresenting => Cue::StopPresenting,
        pb::CueKind::PassPresentation => Cue::PassPresentation { to: subject()? },
        pb::CueKind::RaiseHand => Cue::RaiseHand,
        pb::CueKind::LowerHand => Cue::LowerHand { of: subject()? },
        pb::CueKind::InviteToStage => Cue::InviteToStage { who: subject()? },
        pb::CueKind::RemoveFromStage => Cue::RemoveFromStage { who: subject()? },
        pb::CueKind::Unspecified => return Err(DecodeError::MissingKind { message: "Cue" }),
    };
    Ok(RoomMessageBody::Cue {
        cue: decoded,
        at_unix_ms: cue.at_unix_ms,
    })
}

fn cue_to_wire(cue: Cue<NodeId>, at_unix_ms: u64) -> pb::Cue {
    let kind = match cue {
        Cue::Present => pb::CueKind::Present,
        Cue::StopPresenting => pb::CueKind::StopPresenting,
        Cue::PassPresentation { .. } => pb::CueKind::PassPresentation,
        Cue::RaiseHand => pb::CueKind::RaiseHand,
        Cue::LowerHand { .. } => pb::CueKind::LowerHand,
        Cue::InviteToStage { .. } => pb::CueKind::InviteToStage,
        Cue::RemoveFromStage { .. } => pb::CueKind::RemoveFromStage,
    };
    pb::Cue {
        kind: kind.into(),
        subject: cue
            .subject()
            .map_or_else(Bytes::new, |node| Bytes::copy_from_slice(node.as_bytes())),
        at_unix_ms,
    }
}

#[cfg(test)]
mod tests;
