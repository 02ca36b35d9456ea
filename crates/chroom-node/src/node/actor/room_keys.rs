//! The actor's side of sealed room content: asks for members' keys go out as signaling
//! requests, and members' asks are answered with the key the core hands.

use super::*;

impl NodeActor {
    /// Asks `peer` for the key it seals its content in `room` with; the answer goes back to
    /// the core.
    pub(super) fn ask_room_key(&mut self, room: RoomId, peer: PeerId) {
        let (net, results) = (self.parts.net.clone(), self.results.clone());
        self.steps.spawn(async move {
            let answer = match net.request(peer, SignalRequest::RoomKey { room }).await {
                Ok(SignalResponse::RoomKey(key)) => Ok(key),
                Ok(SignalResponse::Error(error)) => Err(error),
                Ok(other) => Err(SignalError::new(
                    ErrorCode::Malformed,
                    format!("answered an ask for a room key with {other:?}"),
                )),
                Err(e) => Err(SignalError::new(ErrorCode::Unavailable, e.to_string())),
            };
            let _ = results
                .send(StepResult::RoomKey { room, peer, answer })
                .await;
        });
    }

    /// Answers an accepted ask with this node's key.
    pub(super) fn serve_room_key(&mut self, request: InboundId, key: chroom_proto::RoomKey) {
        let Some(inbound) = self.inbound.remove(&request) else {
            return;
        };
        let net = self.parts.net.clone();
        tokio::spawn(async move {
            let _ = net
                .respond(inbound.reply(), SignalResponse::RoomKey(key))
                .await;
        });
    }

    /// `say` as it travels from this node in `room` (content sealed), stamped with its
    /// binding and `sent_at_unix_ms`; `None` if it cannot go (logged).
    pub(super) fn encode_own(
        &mut self,
        room: RoomId,
        say: Say<PeerId>,
        sent_at_unix_ms: u64,
    ) -> Option<Vec<u8>> {
        let Some(say) = self.core.seal(room, say) else {
            tracing::warn!("a room message too large to seal");
            return None;
        };
        let author = self.own_binding();
        let encoded = encode_say(room, say, author, sent_at_unix_ms);
        if encoded.is_none() {
            tracing::warn!("a room message names a node without an ed25519 key");
        }
        encoded
    }
}
