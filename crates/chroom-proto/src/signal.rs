//! Native signaling messages and their conversion to and from `chroom.signal.v1`.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use chroom_types::{Account, FileHash, IdentityBinding, MAX_SIGNAL_MESSAGE_BYTES, RoomId};
use prost::Message;

use crate::error::{DecodeError, check_size};
use crate::generated::chroom::signal::v1 as pb;
use crate::tree::{TreeMessage, tree_from_wire, tree_to_wire};

/// A request one node sends another.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalRequest {
    /// Receive the peer's published tracks in `room`; `offer_sdp` is a complete SDP offer.
    Subscribe {
        /// The room the link belongs to.
        room: RoomId,
        /// SDP offer with receive-only sections and all local candidates.
        offer_sdp: String,
        /// The account the subscriber acts for, if it proves one.
        binding: Option<IdentityBinding>,
    },
    /// Sent when a connection comes up: which account the sender acts for.
    Hello {
        /// The sender's binding, if it acts for an account.
        binding: Option<IdentityBinding>,
    },
    /// A broadcast-tree message; answered with [`SignalResponse::Ack`].
    Tree(TreeMessage),
    /// Part of a file shared in `room`; answered with [`SignalResponse::FileData`].
    File {
        /// The room it was shared in (the requester must be present there).
        room: RoomId,
        /// The file.
        file: FileHash,
        /// Which part.
        part: FilePart,
    },
    /// A relayed media path for links in `room`; answered with [`SignalResponse::Relay`].
    Relay {
        /// The room (the asker must be a member).
        room: RoomId,
    },
    /// How tall the asker shows the responder's camera in `room`, so the responder sends the
    /// smallest layer at least that tall; answered with [`SignalResponse::Ack`].
    VideoWanted {
        /// The room.
        room: RoomId,
        /// Pixels; `None`: as large as the link carries.
        max_height: Option<u32>,
    },
    /// What the asker lacks of a room's shared document; answered with
    /// [`SignalResponse::DocPart`].
    DocPull(crate::DocPull),
    /// The key the responder seals its content in `room` with; answered with
    /// [`SignalResponse::RoomKey`].
    RoomKey {
        /// The room (the asker must be a member present there).
        room: RoomId,
    },
}

/// Bytes of a relay allocation's token.
pub const RELAY_TOKEN_LEN: usize = 16;

/// An allocation a relayer granted: where relay frames go, the address peers are offered,
/// the secret, and the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayGrant {
    /// The relayer's media socket.
    pub server: SocketAddr,
    /// The allocation's own address.
    pub relayed: SocketAddr,
    /// The allocation's secret.
    pub token: [u8; RELAY_TOKEN_LEN],
    /// What it may relay, both ways together, kbit/s.
    pub kbps: u32,
}

/// A part of a shared file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilePart {
    /// Its manifest: each chunk's BLAKE3 hash.
    Manifest,
    /// One chunk, numbered from 0.
    Chunk(u32),
}

/// The reply to a [`SignalRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalResponse {
    /// The SDP answer completing a subscribe.
    Answer {
        /// SDP answer with the responder's candidates.
        answer_sdp: String,
        /// The account the publisher acts for, if it proves one.
        binding: Option<IdentityBinding>,
    },
    /// The request was refused.
    Error(SignalError),
    /// The answer to a [`SignalRequest::Hello`]: the responder's own binding.
    Hello {
        /// The responder's binding, if it acts for an account.
        binding: Option<IdentityBinding>,
    },
    /// A [`SignalRequest::Tree`] was received.
    Ack,
    /// The part of a file a [`SignalRequest::File`] asked for.
    FileData(Bytes),
    /// The allocation a [`SignalRequest::Relay`] asked for.
    Relay(RelayGrant),
    /// The part of a document's diff a [`SignalRequest::DocPull`] asked for.
    DocPart(crate::DocPart),
    /// The key a [`SignalRequest::RoomKey`] asked for.
    RoomKey(crate::RoomKey),
}

/// A refusal: a machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SignalError {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// Why, in words.
    pub message: String,
}

impl SignalError {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The SDP could not be parsed or negotiated.
    BadSdp,
    /// Something failed inside the responder.
    Internal,
    /// The bytes were not a valid request.
    Malformed,
    /// The requester's account may not do this in this room, or it proved no account.
    NotAuthorized,
    /// The responder is in the room but publishes nothing there.
    NotPublishing,
    /// The responder is not in the named room.
    NotInRoom,
    /// The responder has no capacity for another link.
    Overloaded,
    /// The request exceeded the responder's size limit.
    TooLarge,
    /// The responder could not learn the requester's rights in time.
    Unavailable,
    /// The responder does not hold what was asked for.
    NotFound,
    /// A code this version does not know (sent by a newer peer).
    Unknown(i32),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::BadSdp => "bad sdp",
            Self::Internal => "internal error",
            Self::Malformed => "malformed request",
            Self::NotAuthorized => "not authorized",
            Self::NotPublishing => "not publishing",
            Self::NotInRoom => "not in room",
            Self::Overloaded => "overloaded",
            Self::TooLarge => "too large",
            Self::Unavailable => "unavailable",
            Self::NotFound => "not found",
            Self::Unknown(code) => return write!(f, "error code {code}"),
        };
        f.write_str(text)
    }
}

impl From<ErrorCode> for i32 {
    fn from(code: ErrorCode) -> Self {
        let pb = match code {
            ErrorCode::BadSdp => pb::ErrorCode::BadSdp,
            ErrorCode::Internal => pb::ErrorCode::Internal,
            ErrorCode::Malformed => pb::ErrorCode::Malformed,
            ErrorCode::NotAuthorized => pb::ErrorCode::NotAuthorized,
            ErrorCode::NotPublishing => pb::ErrorCode::NotPublishing,
            ErrorCode::NotInRoom => pb::ErrorCode::NotInRoom,
            ErrorCode::Overloaded => pb::ErrorCode::Overloaded,
            ErrorCode::TooLarge => pb::ErrorCode::TooLarge,
            ErrorCode::Unavailable => pb::ErrorCode::Unavailable,
            ErrorCode::NotFound => pb::ErrorCode::NotFound,
            ErrorCode::Unknown(other) => return other,
        };
        pb as Self
    }
}

impl From<i32> for ErrorCode {
    fn from(value: i32) -> Self {
        match pb::ErrorCode::try_from(value) {
            Ok(pb::ErrorCode::BadSdp) => Self::BadSdp,
            Ok(pb::ErrorCode::Internal) => Self::Internal,
            Ok(pb::ErrorCode::Malformed) => Self::Malformed,
            Ok(pb::ErrorCode::NotAuthorized) => Self::NotAuthorized,
            Ok(pb::ErrorCode::NotPublishing) => Self::NotPublishing,
            Ok(pb::ErrorCode::NotInRoom) => Self::NotInRoom,
            Ok(pb::ErrorCode::Overloaded) => Self::Overloaded,
            Ok(pb::ErrorCode::TooLarge) => Self::TooLarge,
            Ok(pb::ErrorCode::Unavailable) => Self::Unavailable,
            Ok(pb::ErrorCode::NotFound) => Self::NotFound,
            Ok(pb::ErrorCode::Unspecified) | Err(_) => Self::Unknown(value),
        }
    }
}

/// Decodes a request received from a peer.
pub fn decode_request(bytes: &[u8]) -> Result<SignalRequest, DecodeError> {
    check_size(bytes, MAX_SIGNAL_MESSAGE_BYTES)?;
    let msg = pb::SignalRequest::decode(bytes).map_err(|e| DecodeError::Protobuf {
        message: "SignalRequest",
        reason: e.to_string(),
    })?;
    match msg.kind {
        Some(pb::signal_request::Kind::Subscribe(sub)) => {
            let room = RoomId::try_from(sub.room_id.as_ref())
                .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
            Ok(SignalRequest::Subscribe {
                room,
                offer_sdp: sub.offer_sdp,
                binding: sub.binding.map(binding_from_wire).transpose()?,
            })
        }
        Some(pb::signal_request::Kind::Hello(hello)) => Ok(SignalRequest::Hello {
            binding: hello.binding.map(binding_from_wire).transpose()?,
        }),
        Some(pb::signal_request::Kind::Tree(tree)) => {
            Ok(SignalRequest::Tree(tree_from_wire(tree)?))
        }
        Some(pb::signal_request::Kind::File(request)) => {
            let room = RoomId::try_from(request.room_id.as_ref())
                .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
            let file = FileHash::try_from(request.file_hash.as_ref())
                .map_err(|e| DecodeError::BadFileHash { len: e.actual })?;
            let part = match request.part {
                Some(pb::file_request::Part::Manifest(true)) => FilePart::Manifest,
                Some(pb::file_request::Part::Chunk(index)) => FilePart::Chunk(index),
                Some(pb::file_request::Part::Manifest(false)) | None => {
                    return Err(DecodeError::NoFilePart);
                }
            };
            Ok(SignalRequest::File { room, file, part })
        }
        Some(pb::signal_request::Kind::Relay(request)) => {
            let room = RoomId::try_from(request.room_id.as_ref())
                .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
            Ok(SignalRequest::Relay { room })
        }
        Some(pb::signal_request::Kind::VideoWanted(wanted)) => {
            let room = RoomId::try_from(wanted.room_id.as_ref())
                .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
            let max_height = (wanted.max_height > 0).then_some(wanted.max_height);
            Ok(SignalRequest::VideoWanted { room, max_height })
        }
        Some(pb::signal_request::Kind::DocPull(pull)) => {
            Ok(SignalRequest::DocPull(crate::docs::pull_from_wire(pull)?))
        }
        Some(pb::signal_request::Kind::RoomKey(ask)) => {
            let room = RoomId::try_from(ask.room_id.as_ref())
                .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
            Ok(SignalRequest::RoomKey { room })
        }
        None => Err(DecodeError::MissingKind {
            message: "SignalRequest",
        }),
    }
}

/// Encodes a request for the wire.
pub fn encode_request(request: &SignalRequest) -> Vec<u8> {
    let kind = match request {
        SignalRequest::Subscribe {
            room,
            offer_sdp,
            binding,
        } => pb::signal_request::Kind::Subscribe(pb::Subscribe {
            room_id: Bytes::copy_from_slice(room.as_bytes()),
            offer_sdp: offer_sdp.clone(),
            binding: binding.as_ref().map(binding_to_wire),
        }),
        SignalRequest::Hello { binding } => pb::signal_request::Kind::Hello(pb::Hello {
            binding: binding.as_ref().map(binding_to_wire),
        }),
        SignalRequest::Tree(tree) => pb::signal_request::Kind::Tree(tree_to_wire(tree)),
        SignalRequest::File { room, file, part } => {
            pb::signal_request::Kind::File(pb::FileRequest {
                room_id: Bytes::copy_from_slice(room.as_bytes()),
                file_hash: Bytes::copy_from_slice(file.as_bytes()),
                part: Some(match part {
                    FilePart::Manifest => pb::file_request::Part::Manifest(true),
                    FilePart::Chunk(index) => pb::file_request::Part::Chunk(*index),
                }),
            })
        }
        SignalRequest::Relay { room } => pb::signal_request::Kind::Relay(pb::RelayRequest {
            room_id: Bytes::copy_from_slice(room.as_bytes()),
        }),
        SignalRequest::VideoWanted { room, max_height } => {
            pb::signal_request::Kind::VideoWanted(pb::VideoWanted {
                room_id: Bytes::copy_from_slice(room.as_bytes()),
                max_height: max_height.unwrap_or(0),
            })
        }
        SignalRequest::DocPull(pull) => {
            pb::signal_request::Kind::DocPull(crate::docs::pull_to_wire(pull))
        }
        SignalRequest::RoomKey { room } => pb::signal_request::Kind::RoomKey(pb::RoomKeyRequest {
            room_id: Bytes::copy_from_slice(room.as_bytes()),
        }),
    };
    pb::SignalRequest { kind: Some(kind) }.encode_to_vec()
}

/// Decodes a response received from a peer.
pub fn decode_response(bytes: &[u8]) -> Result<SignalResponse, DecodeError> {
    check_size(bytes, MAX_SIGNAL_MESSAGE_BYTES)?;
    let msg = pb::SignalResponse::decode(bytes).map_err(|e| DecodeError::Protobuf {
        message: "SignalResponse",
        reason: e.to_string(),
    })?;
    Ok(match msg.kind {
        Some(pb::signal_response::Kind::Answer(answer)) => SignalResponse::Answer {
            answer_sdp: answer.answer_sdp,
            binding: answer.binding.map(binding_from_wire).transpose()?,
        },
        Some(pb::signal_response::Kind::Error(error)) => SignalResponse::Error(SignalError {
            code: ErrorCode::from(error.code),
            message: error.message,
        }),
        Some(pb::signal_response::Kind::Hello(hello)) => SignalResponse::Hello {
            binding: hello.binding.map(binding_from_wire).transpose()?,
        },
        Some(pb::signal_response::Kind::Ack(_)) => SignalResponse::Ack,
        Some(pb::signal_response::Kind::FileData(data)) => SignalResponse::FileData(data.data),
        Some(pb::signal_response::Kind::DocPart(part)) => {
            SignalResponse::DocPart(crate::docs::part_from_wire(part)?)
        }
        Some(pb::signal_response::Kind::RoomKey(key)) => SignalResponse::RoomKey(crate::RoomKey {
            key_id: key.key_id,
            key: key.key[..].try_into().map_err(|_| DecodeError::BadSealed {
                reason: "a room key is not 32 bytes",
            })?,
        }),
        Some(pb::signal_response::Kind::Relay(grant)) => {
            let bad = |reason: &'static str| DecodeError::BadRelayGrant { reason };
            let addr = |ip: &[u8], port: u32| -> Result<SocketAddr, DecodeError> {
                let ip = match ip.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(ip).map_err(|_| bad("address"))?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(ip).map_err(|_| bad("address"))?),
                    _ => return Err(bad("an address is neither 4 nor 16 bytes")),
                };
                let port = u16::try_from(port).map_err(|_| bad("a port above 65535"))?;
                Ok(SocketAddr::new(ip, port))
            };
            SignalResponse::Relay(RelayGrant {
                server: addr(&grant.server_ip, grant.server_port)?,
                relayed: addr(&grant.relayed_ip, grant.relayed_port)?,
                token: grant.token[..]
                    .try_into()
                    .map_err(|_| bad("the token is not 16 bytes"))?,
                kbps: grant.kbps,
            })
        }
        None => {
            return Err(DecodeError::MissingKind {
                message: "SignalResponse",
            });
        }
    })
}

/// Encodes a response for the wire.
pub fn encode_response(response: &SignalResponse) -> Vec<u8> {
    let kind = match response {
        SignalResponse::Answer {
            answer_sdp,
            binding,
        } => pb::signal_response::Kind::Answer(pb::Answer {
            answer_sdp: answer_sdp.clone(),
            binding: binding.as_ref().map(binding_to_wire),
        }),
        SignalResponse::Error(error) => pb::signal_response::Kind::Error(pb::SignalError {
            code: error.code.into(),
            message: error.message.clone(),
        }),
        SignalResponse::Hello { binding } => pb::signal_response::Kind::Hello(pb::Hello {
            binding: binding.as_ref().map(binding_to_wire),
        }),
        SignalResponse::Ack => pb::signal_response::Kind::Ack(pb::Ack {}),
        SignalResponse::FileData(data) => {
            pb::signal_response::Kind::FileData(pb::FileData { data: data.clone() })
        }
        SignalResponse::DocPart(part) => {
            pb::signal_response::Kind::DocPart(crate::docs::part_to_wire(part))
        }
        SignalResponse::RoomKey(key) => pb::signal_response::Kind::RoomKey(pb::RoomKey {
            key_id: key.key_id,
            key: Bytes::copy_from_slice(&key.key),
        }),
        SignalResponse::Relay(grant) => {
            let ip = |addr: &SocketAddr| match addr.ip() {
                IpAddr::V4(ip) => Bytes::copy_from_slice(&ip.octets()),
                IpAddr::V6(ip) => Bytes::copy_from_slice(&ip.octets()),
            };
            pb::signal_response::Kind::Relay(pb::RelayGrant {
                server_ip: ip(&grant.server),
                server_port: u32::from(grant.server.port()),
                relayed_ip: ip(&grant.relayed),
                relayed_port: u32::from(grant.relayed.port()),
                token: Bytes::copy_from_slice(&grant.token),
                kbps: grant.kbps,
            })
        }
    };
    pb::SignalResponse { kind: Some(kind) }.encode_to_vec()
}

pub(crate) fn binding_from_wire(wire: pb::IdentityBinding) -> Result<IdentityBinding, DecodeError> {
    let field = |field: &'static str, bytes: &[u8], expected: usize| DecodeError::BadBinding {
        field,
        len: bytes.len(),
        expected,
    };
    let account: [u8; 20] = wire.account[..]
        .try_into()
        .map_err(|_| field("account", &wire.account, 20))?;
    let signature: [u8; 65] = wire.signature[..]
        .try_into()
        .map_err(|_| field("signature", &wire.signature, 65))?;
    Ok(IdentityBinding {
        account: Account::from_bytes(account),
        expires_at_unix: wire.expires_at_unix,
        signature,
    })
}

pub(crate) fn binding_to_wire(binding: &IdentityBinding) -> pb::IdentityBinding {
    pb::IdentityBinding {
        account: Bytes::copy_from_slice(binding.account.as_bytes()),
        expires_at_unix: binding.expires_at_unix,
        signature: Bytes::copy_from_slice(&binding.signature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        RoomId::from_bytes([7; 32])
    }

    #[test]
    fn request_round_trips() {
        for binding in [None, Some(binding())] {
            let subscribe = SignalRequest::Subscribe {
                room: room(),
                offer_sdp: "v=0\r\n".into(),
                binding: binding.clone(),
            };
            let hello = SignalRequest::Hello { binding };
            let room_key = SignalRequest::RoomKey { room: room() };
            for request in [subscribe, hello, room_key] {
                assert_eq!(decode_request(&encode_request(&request)), Ok(request));
            }
        }
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            SignalResponse::Answer {
                answer_sdp: "v=0\r\n".into(),
                binding: Some(binding()),
            },
            SignalResponse::Error(SignalError::new(ErrorCode::NotInRoom, "not in room x")),
            SignalResponse::Error(SignalError::new(ErrorCode::Unknown(99), "from the future")),
            SignalResponse::Hello { binding: None },
            SignalResponse::Ack,
            SignalResponse::Hello {
                binding: Some(binding()),
            },
            SignalResponse::FileData(Bytes::from_static(b"chunk")),
            SignalResponse::Error(SignalError::new(ErrorCode::NotFound, "no such file")),
            SignalResponse::RoomKey(crate::RoomKey {
                key_id: 7,
                key: [9; 32],
            }),
        ] {
            assert_eq!(decode_response(&encode_response(&response)), Ok(response));
        }
        let short_key = pb::SignalResponse {
            kind: Some(pb::signal_response::Kind::RoomKey(pb::RoomKey {
                key_id: 1,
                key: Bytes::from_static(&[1; 16]),
            })),
        };
        assert!(matches!(
            decode_response(&short_key.encode_to_vec()),
            Err(DecodeError::BadSealed { .. })
        ));
    }

    #[test]
    fn video_wanted_round_trips_and_zero_means_no_limit() {
        for max_height in [Some(180), None] {
            let request = SignalRequest::VideoWanted {
                room: room(),
                max_height,
            };
            assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        }
        let short_room = pb::SignalRequest {
            kind: Some(pb::signal_request::Kind::VideoWanted(pb::VideoWanted {
                room_id: Bytes::from_static(&[1; 5]),
                max_height: 180,
            })),
        };
        assert_eq!(
            decode_request(&short_room.encode_to_vec()),
            Err(DecodeError::BadRoomId { len: 5 })
        );
    }

    #[test]
    fn relay_requests_and_grants_round_trip_and_bad_grants_are_refused() {
        let request = SignalRequest::Relay { room: room() };
        assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        for (server, relayed) in [
            ("10.77.0.3:4002", "10.77.0.3:51000"),
            ("[2001:db8::3]:4002", "[2001:db8::3]:51000"),
        ] {
            let grant = SignalResponse::Relay(RelayGrant {
                server: server.parse().unwrap(),
                relayed: relayed.parse().unwrap(),
                token: [9; RELAY_TOKEN_LEN],
                kbps: 3000,
            });
            assert_eq!(decode_response(&encode_response(&grant)), Ok(grant));
        }
        let good = pb::RelayGrant {
            server_ip: Bytes::from_static(&[10, 77, 0, 3]),
            server_port: 4002,
            relayed_ip: Bytes::from_static(&[10, 77, 0, 3]),
            relayed_port: 51000,
            token: Bytes::copy_from_slice(&[9; RELAY_TOKEN_LEN]),
            kbps: 3000,
        };
        let bad_ip = pb::RelayGrant {
            server_ip: Bytes::from_static(&[10, 77, 0]),
            ..good.clone()
        };
        let bad_port = pb::RelayGrant {
            relayed_port: 70_000,
            ..good.clone()
        };
        let bad_token = pb::RelayGrant {
            token: Bytes::from_static(&[9; 15]),
            ..good
        };
        for grant in [bad_ip, bad_port, bad_token] {
            let wire = pb::SignalResponse {
                kind: Some(pb::signal_response::Kind::Relay(grant)),
            };
            assert!(matches!(
                decode_response(&wire.encode_to_vec()),
                Err(DecodeError::BadRelayGrant { .. })
            ));
        }
    }

    #[test]
    fn file_requests_round_trip_and_must_name_a_part() {
        for part in [FilePart::Manifest, FilePart::Chunk(7)] {
            let request = SignalRequest::File {
                room: RoomId::from_bytes([1; 32]),
                file: FileHash::from_bytes([2; 32]),
                part,
            };
            assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        }
        let no_part = pb::SignalRequest {
            kind: Some(pb::signal_request::Kind::File(pb::FileRequest {
                room_id: Bytes::copy_from_slice(&[1; 32]),
                file_hash: Bytes::copy_from_slice(&[2; 32]),
                part: None,
            })),
        };
        assert_eq!(
            decode_request(&no_part.encode_to_vec()),
            Err(DecodeError::NoFilePart)
        );
        let short_hash = pb::SignalRequest {
            kind: Some(pb::signal_request::Kind::File(pb::FileRequest {
                room_id: Bytes::copy_from_slice(&[1; 32]),
                file_hash: Bytes::copy_from_slice(&[2; 5]),
                part: Some(pb::file_request::Part::Chunk(0)),
            })),
        };
        assert_eq!(
            decode_request(&short_hash.encode_to_vec()),
            Err(DecodeError::BadFileHash { len: 5 })
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            decode_request(&[0xff, 0xff, 0xff]),
            Err(DecodeError::Protobuf { .. })
        ));
        assert_eq!(
            decode_request(&[]),
            Err(DecodeError::MissingKind {
                message: "SignalRequest"
            })
        );
    }

    fn binding() -> IdentityBinding {
        IdentityBinding {
            account: Account::from_bytes([3; 20]),
            expires_at_unix: 1_700_000_000,
            signature: [9; 65],
        }
    }

    #[test]
    fn binding_fields_of_the_wrong_length_are_refused() {
        let mut wire = binding_to_wire(&binding());
        wire.signature = Bytes::from_static(&[1; 64]);
        let bytes = pb::SignalResponse {
            kind: Some(pb::signal_response::Kind::Answer(pb::Answer {
                answer_sdp: String::new(),
                binding: Some(wire),
            })),
        }
        .encode_to_vec();
        assert_eq!(
            decode_response(&bytes),
            Err(DecodeError::BadBinding {
                field: "signature",
                len: 64,
                expected: 65
            })
        );
    }

    #[test]
    fn short_room_id_is_refused() {
        let bytes = pb::SignalRequest {
            kind: Some(pb::signal_request::Kind::Subscribe(pb::Subscribe {
                room_id: Bytes::from_static(&[1, 2, 3]),
                offer_sdp: String::new(),
                binding: None,
            })),
        }
        .encode_to_vec();
        assert_eq!(
            decode_request(&bytes),
            Err(DecodeError::BadRoomId { len: 3 })
        );
    }

    #[test]
    fn oversized_message_is_refused_before_parsing() {
        let bytes = vec![0u8; MAX_SIGNAL_MESSAGE_BYTES + 1];
        assert_eq!(
            decode_request(&bytes),
            Err(DecodeError::TooLarge {
                len: MAX_SIGNAL_MESSAGE_BYTES + 1,
                limit: MAX_SIGNAL_MESSAGE_BYTES
            })
        );
    }
}
