//! The steps of signaling that take several round trips (subscribing to a peer, answering a
//! subscriber), and translating between the wire's messages and the core's: room messages,
//! tree messages and refusals. No decisions: the core made them.

use chroom_media::{MediaError, MediaHandle};
use chroom_net::{NetHandle, PeerId, SignalReplyId};
use chroom_overlay::Message;
use chroom_proto::{
    ErrorCode, RoomMessage, RoomMessageBody, SignalError, SignalRequest, SignalResponse,
    decode_room_message, encode_room_message,
};
use chroom_room::node::{Heard, Say};
use chroom_room::{RoomEvent, SubscribeFailure};
use chroom_types::{IdentityBinding, LinkId, LinkMode, MediaKind, NodeId, RoomId, Track};

/// Opens a link to `peer` that receives (and, in a conference, sends too): offer, subscribe
/// request, answer. Returns the publisher's binding too, when its answer carried one.
pub(crate) async fn subscribe(
    net: &NetHandle,
    media: &MediaHandle,
    (room, peer): (RoomId, PeerId),
    (receive, send): (&[MediaKind], &[MediaKind]),
    mode: LinkMode,
    binding: Option<IdentityBinding>,
) -> (Result<LinkId, SubscribeFailure>, Option<IdentityBinding>) {
    let failed = |e: &dyn std::fmt::Display| SubscribeFailure::Failed(e.to_string());
    // Links between members (whole frames) carry a screen m-line beside the camera's; the
    // broadcast tree forwards the main tracks only.
    let screen = mode == LinkMode::Frames;
    let (receive, send) = (
        Track::carrying(receive, screen),
        Track::carrying(send, screen),
    );
    let (link, offer_sdp) = match media.create_offer(&receive, &send, mode).await {
        Ok(offer) => offer,
        Err(e) => return (Err(failed(&e)), None),
    };
    let request = SignalRequest::Subscribe {
        room,
        offer_sdp,
        binding,
    };
    let mut publisher_binding = None;
    let outcome = match net.request(peer, request).await {
        Ok(SignalResponse::Answer {
            answer_sdp,
            binding,
        }) => {
            publisher_binding = binding;
            media
                .accept_answer(link, answer_sdp)
                .await
                .map_err(|e| failed(&e))
        }
        Ok(SignalResponse::Error(error)) => Err(SubscribeFailure::Refused(error)),
        Ok(other) => Err(SubscribeFailure::Failed(format!(
            "unexpected response {other:?}"
        ))),
        Err(e) => Err(failed(&e)),
    };
    match outcome {
        Ok(()) => (Ok(link), publisher_binding),
        Err(failure) => {
            media.close_link(link).await;
            (Err(failure), publisher_binding)
        }
    }
}

/// Accepts a subscriber's offer and answers it. Returns the new link, or `None` if the offer was
/// refused (the refusal has been sent).
pub(crate) async fn accept(
    net: &NetHandle,
    media: &MediaHandle,
    (reply, offer_sdp): (SignalReplyId, String),
    peer: PeerId,
    mode: LinkMode,
    binding: Option<IdentityBinding>,
) -> Option<LinkId> {
    let response = match media.accept_offer(offer_sdp, mode).await {
        Ok((link, answer_sdp)) => {
            let answer = SignalResponse::Answer {
                answer_sdp,
                binding,
            };
            if net.respond(reply, answer).await.is_ok() {
                return Some(link);
            }
            media.close_link(link).await;
            return None;
        }
        Err(MediaError::TooManyLinks { limit }) => SignalError::new(
            ErrorCode::Overloaded,
            format!("this node already has {limit} links"),
        ),
        Err(MediaError::BadSdp { reason }) => {
            SignalError::new(ErrorCode::BadSdp, format!("offer refused: {reason}"))
        }
        Err(e) => SignalError::new(ErrorCode::Internal, e.to_string()),
    };
    tracing::warn!(%peer, error = %response, "refused subscribe offer");
    let _ = net.respond(reply, SignalResponse::Error(response)).await;
    None
}

/// Sends `error` as the answer to a request, off the caller's task.
pub(crate) fn refuse(net: &NetHandle, reply: SignalReplyId, error: SignalError) {
    let net = net.clone();
    tokio::spawn(async move {
        let _ = net.respond(reply, SignalResponse::Error(error)).await;
    });
}

/// A room message from this node, stamped with its binding and the time; `None` if it names
/// a member whose PeerId hides no node key.
pub(crate) fn encode_say(
    room: RoomId,
    say: Say<PeerId>,
    author: Option<IdentityBinding>,
    sent_at_unix_ms: u64,
) -> Option<Vec<u8>> {
    let body = match say.into_content() {
        Ok(content) => content,
        Err(Say::Moderate { target, action }) => RoomMessageBody::Moderate {
            target: chroom_net::node_id_of(&target)?,
            action,
        },
        Err(Say::Presence(presence)) => RoomMessageBody::Presence(presence),
        Err(Say::Cue { cue, at_unix_ms }) => RoomMessageBody::Cue {
            cue: cue.map(|peer| chroom_net::node_id_of(&peer))?,
            at_unix_ms,
        },
        Err(Say::Sealed(sealed)) => RoomMessageBody::Sealed(sealed),
        // Content was converted above.
        Err(_) => return None,
    };
    Some(encode_room_message(&RoomMessage {
        room,
        author,
        sent_at_unix_ms,
        body,
    }))
}

/// A received room message as the core reads it, and the binding it carries; `Err` says why
/// it cannot be read.
pub(crate) fn decode_heard(
    data: &[u8],
) -> Result<(Heard<PeerId>, Option<IdentityBinding>), String> {
    let message = decode_room_message(data).map_err(|e| e.to_string())?;
    let say = match Say::from_content(message.body) {
        Ok(content) => content,
        Err(RoomMessageBody::Moderate { target, action }) => Say::Moderate {
            target: chroom_net::peer_id_of(target)
                .ok_or("a host's decision about a key that names no node")?,
            action,
        },
        Err(RoomMessageBody::Presence(presence)) => Say::Presence(presence),
        Err(RoomMessageBody::Cue { cue, at_unix_ms }) => Say::Cue {
            cue: cue
                .map(chroom_net::peer_id_of)
                .ok_or("a cue about a key that names no node")?,
            at_unix_ms,
        },
        Err(RoomMessageBody::Sealed(sealed)) => Say::Sealed(sealed),
        Err(_) => return Err("unknown message kind".to_owned()),
    };
    let heard = Heard {
        room: message.room,
        sent_at_unix_ms: message.sent_at_unix_ms,
        say,
    };
    Ok((heard, message.author))
}

/// A tree message as it travels: members named by their keys (Chroom nodes all have ed25519
/// keys: every member can be named).
pub(crate) fn tree_to_nodes(message: Message<PeerId>) -> Option<Message<NodeId>> {
    message.try_map_peers(|peer| chroom_net::node_id_of(&peer))
}

/// A received tree message with members as PeerIds; `None` if it names a key that is not one.
pub(crate) fn tree_from_nodes(message: Message<NodeId>) -> Option<Message<PeerId>> {
    message.try_map_peers(chroom_net::peer_id_of)
}

/// Seeds the node's random choices from its key, so nodes differ but a node is reproducible.
pub(crate) fn seed_of(peer: &PeerId) -> u64 {
    let bytes = peer.to_bytes();
    let tail: [u8; 8] = bytes[bytes.len() - 8..].try_into().unwrap_or([0; 8]);
    u64::from_le_bytes(tail)
}

pub(crate) fn log_room_event(event: &RoomEvent<PeerId>) {
    use chroom_net::fmt_short as short;
    match event {
        RoomEvent::Subscribed { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "receiving from publisher");
        }
        RoomEvent::SubscriptionLost { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "lost publisher link, retrying");
        }
        RoomEvent::SubscriberAdded { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "subscriber added");
        }
        RoomEvent::SubscriberRemoved { room, peer, link } => {
            tracing::info!(room = %room.fmt_short(), peer = %short(peer), %link, "subscriber removed");
        }
        RoomEvent::SubscribeFailed {
            room,
            peer,
            failure,
        } => {
            tracing::debug!(room = %room.fmt_short(), peer = %short(peer), ?failure, "subscribe failed");
        }
        RoomEvent::AccessRevoked { room, peer, link } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %link, "closed link: access revoked");
        }
        RoomEvent::RequestRefused { peer, error } => {
            tracing::info!(peer = %short(peer), %error, "request refused");
        }
        RoomEvent::TreeAttached {
            room,
            parent,
            level,
        } => {
            tracing::info!(room = %room.fmt_short(), parent = %short(parent), level, "fed by a new parent in the relay tree");
        }
        RoomEvent::TreeRefused { room, peer, error } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %error, "refused by a tree member");
        }
        RoomEvent::TreeMessageRefused { room, peer, error } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %error, "refused a tree message: its sender's place is not proven");
        }
        RoomEvent::RootRefused { room, peer, error } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %error, "refused a broadcast root: it may not broadcast");
        }
        RoomEvent::RootContested { room, winner } => {
            tracing::warn!(room = %room.fmt_short(), winner = %short(winner), "another broadcaster's claim wins: viewers watch it");
        }
        RoomEvent::ParentSilent { room, parent } => {
            tracing::warn!(room = %room.fmt_short(), parent = %short(parent), "the tree parent's media stopped: looking for another");
        }
        RoomEvent::LinkUnverified { room, peer, link } => {
            tracing::warn!(room = %room.fmt_short(), peer = %short(peer), %link, "closed link: the peer's rights stayed unknown");
        }
        _ => {}
    }
    tracing::debug!(target: "chroom::_events::room", event = ?event);
}
