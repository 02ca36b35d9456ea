//! Catching up on a room's shared documents over signaling: [`DocPull`] asks a member for the
//! Yjs diff against the asker's state vector, [`DocPart`] carries it in parts small enough
//! for one signaling message. What the bytes mean is the documents core's to check.

use bytes::Bytes;
use chroom_types::{RoomId, check_doc_name};

use crate::error::DecodeError;
use crate::generated::chroom::signal::v1 as pb;

/// Largest state vector a pull or a part carries, in bytes (16 bytes or so per author who
/// ever edited the document).
pub const MAX_STATE_VECTOR_BYTES: usize = 16 * 1024;
/// Largest part of a diff one answer carries, in bytes (a signaling message is at most
/// 64 KiB).
pub const MAX_DOC_PART_BYTES: usize = 48 * 1024;
/// Largest whole diff a member sends, in bytes: a document's cap (2 MiB) with room to spare.
pub const MAX_DOC_DIFF_BYTES: u32 = 4 * 1024 * 1024;
/// Most document names one answer lists.
pub const MAX_DOC_NAMES: usize = 16;

/// Asks a member for what this node lacks of one of `room`'s documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocPull {
    /// The room (the asker must be present in it).
    pub room: RoomId,
    /// The document; `None`: the room's document names alone.
    pub name: Option<String>,
    /// The asker's Yjs state vector (v1) of it.
    pub state_vector: Bytes,
    /// Where the part asked for starts in the diff.
    pub offset: u32,
    /// BLAKE3 of the whole diff, as its first part said; `None` for the first part.
    pub digest: Option<[u8; 32]>,
}

/// A part of the diff a [`DocPull`] asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocPart {
    /// The room's document names (answering a pull without a name).
    pub names: Vec<String>,
    /// The diff's bytes from the pull's offset.
    pub data: Bytes,
    /// The whole diff's length.
    pub total: u32,
    /// BLAKE3 of the whole diff.
    pub digest: [u8; 32],
    /// The responder's state vector of the document (in the first part).
    pub state_vector: Bytes,
}

fn bad(reason: &'static str) -> DecodeError {
    DecodeError::BadDocSync { reason }
}

pub(crate) fn pull_from_wire(pull: pb::DocPull) -> Result<DocPull, DecodeError> {
    let room = RoomId::try_from(pull.room_id.as_ref())
        .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
    let name = match pull.name {
        name if name.is_empty() => None,
        name => {
            check_doc_name(&name).map_err(bad)?;
            Some(name)
        }
    };
    if pull.state_vector.len() > MAX_STATE_VECTOR_BYTES {
        return Err(bad("a state vector is at most 16 KiB"));
    }
    let digest = match pull.digest.len() {
        0 => None,
        32 => Some(pull.digest[..].try_into().map_err(|_| bad("digest"))?),
        _ => return Err(bad("a digest is 32 bytes")),
    };
    if pull.offset > MAX_DOC_DIFF_BYTES {
        return Err(bad("an offset past the largest diff"));
    }
    Ok(DocPull {
        room,
        name,
        state_vector: pull.state_vector,
        offset: pull.offset,
        digest,
    })
}

pub(crate) fn pull_to_wire(pull: &DocPull) -> pb::DocPull {
    pb::DocPull {
        room_id: Bytes::copy_from_slice(pull.room.as_bytes()),
        name: pull.name.clone().unwrap_or_default(),
        state_vector: pull.state_vector.clone(),
        offset: pull.offset,
        digest: pull
            .digest
            .map(|d| Bytes::copy_from_slice(&d))
            .unwrap_or_default(),
    }
}

pub(crate) fn part_from_wire(part: pb::DocPart) -> Result<DocPart, DecodeError> {
    if part.names.len() > MAX_DOC_NAMES {
        return Err(bad("at most 16 document names"));
    }
    for name in &part.names {
        check_doc_name(name).map_err(bad)?;
    }
    if part.data.len() > MAX_DOC_PART_BYTES {
        return Err(bad("a part is at most 48 KiB"));
    }
    if part.total > MAX_DOC_DIFF_BYTES {
        return Err(bad("a diff is at most 4 MiB"));
    }
    if part.state_vector.len() > MAX_STATE_VECTOR_BYTES {
        return Err(bad("a state vector is at most 16 KiB"));
    }
    let digest = part.digest[..]
        .try_into()
        .map_err(|_| bad("a digest is 32 bytes"))?;
    Ok(DocPart {
        names: part.names,
        data: part.data,
        total: part.total,
        digest,
        state_vector: part.state_vector,
    })
}

pub(crate) fn part_to_wire(part: &DocPart) -> pb::DocPart {
    pb::DocPart {
        names: part.names.clone(),
        data: part.data.clone(),
        total: part.total,
        digest: Bytes::copy_from_slice(&part.digest),
        state_vector: part.state_vector.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        SignalRequest, SignalResponse, decode_request, decode_response, encode_request,
        encode_response,
    };

    fn room() -> RoomId {
        RoomId::from_bytes([3; 32])
    }

    #[test]
    fn pulls_and_parts_round_trip() {
        for pull in [
            DocPull {
                room: room(),
                name: None,
                state_vector: Bytes::new(),
                offset: 0,
                digest: None,
            },
            DocPull {
                room: room(),
                name: Some("notes".into()),
                state_vector: Bytes::from_static(&[1, 2, 3]),
                offset: 49_152,
                digest: Some([7; 32]),
            },
        ] {
            let request = SignalRequest::DocPull(pull);
            assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        }
        let part = SignalResponse::DocPart(DocPart {
            names: vec!["notes".into(), "agenda".into()],
            data: Bytes::from_static(b"diff"),
            total: 4,
            digest: [9; 32],
            state_vector: Bytes::from_static(&[0]),
        });
        assert_eq!(decode_response(&encode_response(&part)), Ok(part));
    }

    #[test]
    fn a_pull_or_part_past_a_limit_is_refused() {
        let pull = |f: fn(&mut pb::DocPull)| {
            let mut wire = pull_to_wire(&DocPull {
                room: room(),
                name: Some("notes".into()),
                state_vector: Bytes::new(),
                offset: 0,
                digest: None,
            });
            f(&mut wire);
            pull_from_wire(wire)
        };
        assert!(pull(|p| p.name = "a\nb".into()).is_err());
        assert!(pull(|p| p.state_vector = vec![0; MAX_STATE_VECTOR_BYTES + 1].into()).is_err());
        assert!(pull(|p| p.digest = vec![0; 5].into()).is_err());
        assert!(pull(|p| p.offset = MAX_DOC_DIFF_BYTES + 1).is_err());
        assert!(pull(|p| p.room_id = vec![0; 3].into()).is_err());

        let part = |f: fn(&mut pb::DocPart)| {
            let mut wire = part_to_wire(&DocPart::default());
            f(&mut wire);
            part_from_wire(wire)
        };
        assert!(part(|_| {}).is_ok());
        assert!(part(|p| p.names = vec!["n".into(); MAX_DOC_NAMES + 1]).is_err());
        assert!(part(|p| p.names = vec![String::new()]).is_err());
        assert!(part(|p| p.data = vec![0; MAX_DOC_PART_BYTES + 1].into()).is_err());
        assert!(part(|p| p.total = MAX_DOC_DIFF_BYTES + 1).is_err());
        assert!(part(|p| p.digest = Bytes::new()).is_err());
    }
}
