//! Native room gossip messages and their conversion to and from `chroom.room.v1`.

use bytes::Bytes;
use chroom_types::{
    Cue, FileHash, IdentityBinding, MAX_CHAT_TEXT_BYTES, MAX_DOC_POSITION_BYTES,
    MAX_DOC_UPDATE_BYTES, MAX_FILE_BYTES, MAX_FILE_NAME_BYTES, MAX_QUESTION_BYTES,
    MAX_ROOM_MESSAGE_BYTES, Moderation, NodeId, RoomId, check_display_name, check_doc_name,
};
use prost::Message;

use crate::generated::chroom::room::v1 as pb;
use crate::signal::{DecodeError, binding_from_wire, binding_to_wire, check_size};

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
mod tests {
    use chroom_types::Account;

    use super::*;

    fn chat(text: &str) -> RoomMessage {
        RoomMessage {
            room: RoomId::from_bytes([5; 32]),
            author: Some(IdentityBinding {
                account: Account::from_bytes([1; 20]),
                expires_at_unix: 1_800_000_000,
                signature: [2; 65],
            }),
            sent_at_unix_ms: 1_790_000_000_000,
            body: RoomMessageBody::Chat { text: text.into() },
        }
    }

    #[test]
    fn every_cue_round_trips_and_a_cue_without_its_subject_is_refused() {
        let someone = NodeId::from_public_key([3; 32]);
        for cue in [
            Cue::Present,
            Cue::StopPresenting,
            Cue::PassPresentation { to: someone },
            Cue::RaiseHand,
            Cue::LowerHand { of: someone },
            Cue::InviteToStage { who: someone },
            Cue::RemoveFromStage { who: someone },
        ] {
            let message = RoomMessage {
                body: RoomMessageBody::Cue {
                    cue,
                    at_unix_ms: 1_790_000_000_000,
                },
                ..chat("")
            };
            assert_eq!(
                decode_room_message(&encode_room_message(&message)),
                Ok(message)
            );
        }
        let wire = |kind: pb::CueKind, subject: &[u8]| {
            let mut message = pb::RoomMessage::decode(&encode_room_message(&chat(""))[..]).unwrap();
            message.body = Some(pb::room_message::Body::Cue(pb::Cue {
                kind: kind.into(),
                subject: Bytes::copy_from_slice(subject),
                at_unix_ms: 1,
            }));
            decode_room_message(&message.encode_to_vec())
        };
        assert_eq!(
            wire(pb::CueKind::InviteToStage, &[1; 5]),
            Err(DecodeError::BadNodeId { len: 5 })
        );
        assert_eq!(
            wire(pb::CueKind::Unspecified, &[]),
            Err(DecodeError::MissingKind { message: "Cue" })
        );
    }

    #[test]
    fn a_presence_round_trips_every_field() {
        let message = RoomMessage {
            body: RoomMessageBody::Presence(Presence {
                leaving: false,
                sharing_screen: true,
                publish_only: true,
                joined_at_unix_ms: 1_800_000_000_000,
                beat_interval_ms: 1_000,
                display_name: Some("Ada".into()),
                links_epoch: 2,
            }),
            ..chat("")
        };
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
    }

    #[test]
    fn a_document_edit_round_trips_and_a_bad_name_or_size_is_refused() {
        let edit = |name: &str, update: Vec<u8>| RoomMessage {
            body: RoomMessageBody::DocUpdate {
                name: name.into(),
                update: update.into(),
            },
            ..chat("")
        };
        let message = edit("notes", vec![1, 2, 3]);
        let cursor = |anchor: Vec<u8>| RoomMessage {
            body: RoomMessageBody::DocCursor {
                name: "notes".into(),
                anchor: anchor.into(),
                head: Bytes::from_static(&[1]),
            },
            ..chat("")
        };
        assert_eq!(
            decode_room_message(&encode_room_message(&cursor(vec![2; 64]))),
            Ok(cursor(vec![2; 64]))
        );
        assert!(matches!(
            decode_room_message(&encode_room_message(&cursor(vec![2; 65]))),
            Err(DecodeError::BadDocUpdate { .. })
        ));
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
        for bad in [
            edit("", vec![1]),
            edit("a\nb", vec![1]),
            edit(&"n".repeat(65), vec![1]),
            edit("notes", vec![]),
            edit("notes", vec![0; MAX_DOC_UPDATE_BYTES + 1]),
        ] {
            assert!(matches!(
                decode_room_message(&encode_room_message(&bad)),
                Err(DecodeError::BadDocUpdate { .. })
            ));
        }
    }

    #[test]
    fn a_presence_names_its_user_and_an_address_as_a_name_is_refused() {
        let named = |name: &str| RoomMessage {
            body: RoomMessageBody::Presence(Presence {
                display_name: Some(name.into()),
                ..Presence::default()
            }),
            ..chat("")
        };
        let message = named("Ada");
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
        assert!(matches!(
            decode_room_message(&encode_room_message(&named(
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            ))),
            Err(DecodeError::BadDisplayName { .. })
        ));
    }

    #[test]
    fn questions_round_trip_and_empty_or_long_ones_are_refused() {
        let asking = |text: &str| RoomMessage {
            body: RoomMessageBody::Question { text: text.into() },
            ..chat("")
        };
        let message = asking("Is there a recording?");
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
        for (text, len) in [("", 0), (&*"q".repeat(501), 501)] {
            assert_eq!(
                decode_room_message(&encode_room_message(&asking(text))),
                Err(DecodeError::BadQuestion { len })
            );
        }
    }

    #[test]
    fn chat_round_trips() {
        let message = chat("hello, room");
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message)
        );
    }

    #[test]
    fn file_offers_round_trip_and_bad_names_or_sizes_are_refused() {
        let offer = FileOffer {
            hash: FileHash::from_bytes([7; 32]),
            name: "notes.pdf".into(),
            size: 5_000_000,
            manifest_hash: [8; 32],
        };
        let message = RoomMessage {
            body: RoomMessageBody::FileOffer(offer.clone()),
            ..chat("")
        };
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Ok(message.clone())
        );
        for (name, size) in [
            ("../../.bashrc", 10),
            ("a\\b", 10),
            ("", 10),
            ("..", 10),
            ("bell\u{7}", 10),
            ("ok.txt", 0),
            ("ok.txt", MAX_FILE_BYTES + 1),
        ] {
            let bad = RoomMessage {
                body: RoomMessageBody::FileOffer(FileOffer {
                    name: name.into(),
                    size,
                    ..offer.clone()
                }),
                ..message.clone()
            };
            assert!(
                matches!(
                    decode_room_message(&encode_room_message(&bad)),
                    Err(DecodeError::BadFileOffer { .. })
                ),
                "{name:?} {size}"
            );
        }
    }

    #[test]
    fn moderation_round_trips_and_needs_a_key_and_an_action() {
        for action in [Moderation::Mute, Moderation::Unmute, Moderation::Remove] {
            let message = RoomMessage {
                body: RoomMessageBody::Moderate {
                    target: NodeId::from_public_key([4; 32]),
                    action,
                },
                ..chat("")
            };
            assert_eq!(
                decode_room_message(&encode_room_message(&message)),
                Ok(message)
            );
        }
        let wire = |target: &[u8], action: i32| {
            pb::RoomMessage {
                room_id: Bytes::copy_from_slice(&[5; 32]),
                body: Some(pb::room_message::Body::Moderate(pb::Moderate {
                    target: Bytes::copy_from_slice(target),
                    action,
                })),
                ..Default::default()
            }
            .encode_to_vec()
        };
        assert_eq!(
            decode_room_message(&wire(&[4; 31], 1)),
            Err(DecodeError::BadNodeId { len: 31 })
        );
        for action in [0, 99] {
            assert!(matches!(
                decode_room_message(&wire(&[4; 32], action)),
                Err(DecodeError::MissingKind { .. })
            ));
        }
    }

    #[test]
    fn overlong_chat_is_refused() {
        let message = chat(&"x".repeat(MAX_CHAT_TEXT_BYTES + 1));
        assert_eq!(
            decode_room_message(&encode_room_message(&message)),
            Err(DecodeError::ChatTooLong {
                len: MAX_CHAT_TEXT_BYTES + 1
            })
        );
    }

    #[test]
    fn a_message_without_body_or_room_is_refused() {
        let no_body = pb::RoomMessage {
            room_id: Bytes::copy_from_slice(&[5; 32]),
            ..Default::default()
        };
        assert_eq!(
            decode_room_message(&no_body.encode_to_vec()),
            Err(DecodeError::MissingKind {
                message: "RoomMessage"
            })
        );
        assert_eq!(
            decode_room_message(&[]),
            Err(DecodeError::BadRoomId { len: 0 })
        );
        let huge = vec![0u8; MAX_ROOM_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode_room_message(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn sealed_content_is_content_alone_and_a_sealed_envelope_round_trips() {
        let content = RoomMessageBody::DocUpdate {
            name: "notes".into(),
            update: Bytes::from_static(b"\x01"),
        };
        let plain = encode_sealed_content(&content).unwrap();
        assert_eq!(decode_sealed_content(&plain), Ok(content));
        // Control kinds travel in the clear: they are never sealed, nor accepted sealed.
        let presence = RoomMessageBody::Presence(Presence::default());
        assert_eq!(encode_sealed_content(&presence), None);
        let smuggled = pb::RoomMessage {
            body: Some(body_to_wire(&presence)),
            ..pb::RoomMessage::default()
        };
        assert!(matches!(
            decode_sealed_content(&smuggled.encode_to_vec()),
            Err(DecodeError::BadSealed { .. })
        ));
        // Content cannot claim another envelope than the one it arrived in.
        assert!(matches!(
            decode_sealed_content(&encode_room_message(&chat("hi"))),
            Err(DecodeError::BadSealed { .. })
        ));

        let sealed = RoomMessage {
            body: RoomMessageBody::Sealed(Sealed {
                key_id: 3,
                counter: 41,
                ciphertext: Bytes::from(vec![7; SEAL_TAG_BYTES + 5]),
            }),
            ..chat("")
        };
        assert_eq!(
            decode_room_message(&encode_room_message(&sealed)),
            Ok(sealed)
        );
        let tagless = RoomMessage {
            body: RoomMessageBody::Sealed(Sealed {
                key_id: 3,
                counter: 41,
                ciphertext: Bytes::from(vec![7; SEAL_TAG_BYTES - 1]),
            }),
            ..chat("")
        };
        assert!(matches!(
            decode_room_message(&encode_room_message(&tagless)),
            Err(DecodeError::BadSealed { .. })
        ));
    }
}
