//! The actor's side of catching up on shared documents: pulls the core decides go out as
//! signaling requests, and a member's pulls are answered with the part the core computes.

use super::*;

impl NodeActor {
    /// Asks `peer` for a part of a document of `room`; the answer goes back to the core.
    pub(super) fn pull_doc(&mut self, room: RoomId, peer: PeerId, pull: chroom_proto::DocPull) {
        let (net, results) = (self.parts.net.clone(), self.results.clone());
        self.steps.spawn(async move {
            let answer = match net.request(peer, SignalRequest::DocPull(pull)).await {
                Ok(SignalResponse::DocPart(part)) => Ok(part),
                Ok(SignalResponse::Error(error)) => Err(error.to_string()),
                Ok(other) => Err(format!("answered a document pull with {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            let _ = results
                .send(StepResult::DocPart { room, peer, answer })
                .await;
        });
    }

    /// Answers an accepted pull with the part the core computes.
    pub(super) fn serve_doc_part(&mut self, request: InboundId) {
        let Some(Inbound::DocPull { reply, peer, pull }) = self.inbound.remove(&request) else {
            return;
        };
        let response = match self.core.doc_part(peer, &pull) {
            Ok(part) => SignalResponse::DocPart(part),
            Err(error) => SignalResponse::Error(error),
        };
        let net = self.parts.net.clone();
        tokio::spawn(async move {
            let _ = net.respond(reply, response).await;
        });
    }
}
