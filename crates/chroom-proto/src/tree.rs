//! Broadcast-tree messages and their conversion to and from `chroom.overlay.v1`.

use bytes::Bytes;
use chroom_overlay::{Candidate, MAX_CANDIDATES, Message};
use chroom_types::{NodeId, RoomId};

use crate::error::DecodeError;
use crate::generated::chroom::overlay::v1 as pb;

/// A tree message for the tree of `room`. Members are named by [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeMessage {
    /// The broadcast room.
    pub room: RoomId,
    /// The message.
    pub message: Message<NodeId>,
}

pub(crate) fn tree_from_wire(wire: pb::TreeMessage) -> Result<TreeMessage, DecodeError> {
    let room = RoomId::try_from(wire.room_id.as_ref())
        .map_err(|e| DecodeError::BadRoomId { len: e.actual })?;
    let missing = DecodeError::MissingKind {
        message: "TreeMessage",
    };
    let message = match wire.kind.ok_or(missing)? {
        pb::tree_message::Kind::Join(join) => Message::Join {
            below_level: join.below_level,
            capacity: join.capacity,
        },
        pb::tree_message::Kind::Accepted(accepted) => Message::Accepted {
            level: accepted.level,
            candidates: candidates_from_wire(accepted.candidates)?,
        },
        pb::tree_message::Kind::Redirected(redirected) => Message::Redirected {
            candidates: candidates_from_wire(redirected.candidates)?,
        },
        pb::tree_message::Kind::Refused(_) => Message::Refused,
        pb::tree_message::Kind::State(state) => Message::State {
            level: state.level,
            candidates: candidates_from_wire(state.candidates)?,
        },
        pb::tree_message::Kind::Report(report) => Message::Report {
            spare: report.spare.map(candidate_from_wire).transpose()?,
            room: report.room,
            pushdown: report.pushdown.map(candidate_from_wire).transpose()?,
            deepest: report.deepest.map(candidate_from_wire).transpose()?,
        },
        pb::tree_message::Kind::Invite(invite) => Message::Invite {
            level: invite.level,
        },
        pb::tree_message::Kind::Handover(handover) => Message::Handover {
            candidates: candidates_from_wire(handover.candidates)?,
        },
        pb::tree_message::Kind::Evicted(evicted) => Message::Evicted {
            to: candidate_from_wire(evicted.to.ok_or(DecodeError::MissingKind {
                message: "Evicted.to",
            })?)?,
        },
        pb::tree_message::Kind::Left(_) => Message::Left,
        pb::tree_message::Kind::Probe(_) => Message::Probe,
        pb::tree_message::Kind::Repairing(_) => Message::Repairing,
        pb::tree_message::Kind::Feeding(_) => Message::Feeding,
    };
    Ok(TreeMessage { room, message })
}

pub(crate) fn tree_to_wire(tree: &TreeMessage) -> pb::TreeMessage {
    use pb::tree_message::Kind;
    let kind = match &tree.message {
        Message::Join {
            below_level,
            capacity,
        } => Kind::Join(pb::Join {
            below_level: *below_level,
            capacity: *capacity,
        }),
        Message::Accepted { level, candidates } => Kind::Accepted(pb::Accepted {
            level: *level,
            candidates: candidates_to_wire(candidates),
        }),
        Message::Redirected { candidates } => Kind::Redirected(pb::Redirected {
            candidates: candidates_to_wire(candidates),
        }),
        Message::Refused => Kind::Refused(pb::Refused {}),
        Message::State { level, candidates } => Kind::State(pb::State {
            level: *level,
            candidates: candidates_to_wire(candidates),
        }),
        Message::Report {
            spare,
            room,
            pushdown,
            deepest,
        } => Kind::Report(pb::Report {
            spare: spare.as_ref().map(candidate_to_wire),
            room: *room,
            pushdown: pushdown.as_ref().map(candidate_to_wire),
            deepest: deepest.as_ref().map(candidate_to_wire),
        }),
        Message::Invite { level } => Kind::Invite(pb::Invite { level: *level }),
        Message::Handover { candidates } => Kind::Handover(pb::Handover {
            candidates: candidates_to_wire(candidates),
        }),
        Message::Evicted { to } => Kind::Evicted(pb::Evicted {
            to: Some(candidate_to_wire(to)),
        }),
        Message::Left => Kind::Left(pb::Left {}),
        Message::Probe => Kind::Probe(pb::Probe {}),
        Message::Repairing => Kind::Repairing(pb::Repairing {}),
        Message::Feeding => Kind::Feeding(pb::Feeding {}),
    };
    pb::TreeMessage {
        room_id: Bytes::copy_from_slice(tree.room.as_bytes()),
        kind: Some(kind),
    }
}

fn candidates_from_wire(wire: Vec<pb::Candidate>) -> Result<Vec<Candidate<NodeId>>, DecodeError> {
    if wire.len() > MAX_CANDIDATES {
        return Err(DecodeError::TooManyCandidates { len: wire.len() });
    }
    wire.into_iter().map(candidate_from_wire).collect()
}

fn candidate_from_wire(wire: pb::Candidate) -> Result<Candidate<NodeId>, DecodeError> {
    let node: [u8; 32] = wire.node[..]
        .try_into()
        .map_err(|_| DecodeError::BadNodeId {
            len: wire.node.len(),
        })?;
    Ok(Candidate {
        peer: NodeId::from_public_key(node),
        level: wire.level,
        spare: wire.spare,
        room: wire.room,
    })
}

fn candidates_to_wire(candidates: &[Candidate<NodeId>]) -> Vec<pb::Candidate> {
    candidates.iter().map(candidate_to_wire).collect()
}

fn candidate_to_wire(candidate: &Candidate<NodeId>) -> pb::Candidate {
    pb::Candidate {
        node: Bytes::copy_from_slice(candidate.peer.as_bytes()),
        level: candidate.level,
        spare: candidate.spare,
        room: candidate.room,
    }
}

#[cfg(test)]
mod tests {
    use crate::{SignalRequest, decode_request, encode_request};

    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId::from_public_key([n; 32])
    }

    fn candidate(n: u8) -> Candidate<NodeId> {
        Candidate {
            peer: node(n),
            level: u32::from(n),
            spare: 2,
            room: 9,
        }
    }

    #[test]
    fn every_tree_message_round_trips() {
        let room = RoomId::from_bytes([4; 32]);
        let messages = [
            Message::Join {
                below_level: Some(3),
                capacity: 16,
            },
            Message::Join {
                below_level: None,
                capacity: 0,
            },
            Message::Accepted {
                level: 1,
                candidates: vec![candidate(1), candidate(2)],
            },
            Message::Redirected {
                candidates: vec![candidate(3)],
            },
            Message::Refused,
            Message::State {
                level: 2,
                candidates: vec![],
            },
            Message::Report {
                spare: Some(candidate(4)),
                room: 40,
                pushdown: None,
                deepest: Some(candidate(5)),
            },
            Message::Invite { level: 0 },
            Message::Handover {
                candidates: vec![candidate(6)],
            },
            Message::Evicted { to: candidate(7) },
            Message::Left,
            Message::Probe,
            Message::Repairing,
            Message::Feeding,
        ];
        for message in messages {
            let request = SignalRequest::Tree(TreeMessage { room, message });
            assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        }
    }

    #[test]
    fn oversized_lists_and_bad_node_ids_are_refused() {
        let mut wire = tree_to_wire(&TreeMessage {
            room: RoomId::from_bytes([4; 32]),
            message: Message::Redirected {
                candidates: (0..=MAX_CANDIDATES as u8).map(candidate).collect(),
            },
        });
        assert_eq!(
            tree_from_wire(wire.clone()),
            Err(DecodeError::TooManyCandidates {
                len: MAX_CANDIDATES + 1
            })
        );
        if let Some(pb::tree_message::Kind::Redirected(redirected)) = &mut wire.kind {
            redirected.candidates.truncate(1);
            redirected.candidates[0].node = Bytes::from_static(&[1, 2]);
        }
        assert_eq!(tree_from_wire(wire), Err(DecodeError::BadNodeId { len: 2 }));
    }
}
