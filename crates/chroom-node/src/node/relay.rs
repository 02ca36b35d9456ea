//! Relayed media paths over the network: relayers announce themselves under one DHT key, and
//! a node that needs a path asks them in turn ([`seek`]). The decisions (who may have one,
//! whether this node needs one) are the core's ([`chroom_room::relaying`]).

use std::time::Duration;

use chroom_media::MediaHandle;
use chroom_media::relay::RelayGrant;
use chroom_net::{NetHandle, PeerId, Presence};
use chroom_proto::{ErrorCode, SignalRequest, SignalResponse};
use chroom_types::RoomId;

/// How often a relayer still looking this node's rights up is asked again, and how long
/// apart: a registry lookup takes three RPC round trips.
const LOOKUP_TRIES: u32 = 10;
const LOOKUP_WAIT: Duration = Duration::from_millis(300);

/// The DHT key relayers provide: a room id no registry room can have (room names cannot hold
/// a `/`), so only relayers are listed under it.
pub(crate) fn service_key() -> RoomId {
    RoomId::from_bytes(alloy::primitives::keccak256(b"chroom/relay-service/v1").0)
}

/// Asks the relayers the DHT lists, one after another, for a path for links in `room`; the
/// first grant is handed to the media socket, whose new links then offer it. Returns whether
/// one was granted.
pub(crate) async fn seek(net: NetHandle, media: MediaHandle, room: RoomId) -> bool {
    let relayers = match net.find_providers(service_key(), Presence::Member).await {
        Ok(relayers) => relayers,
        Err(e) => {
            tracing::info!(error = %e, "no relayer found for a relayed path");
            return false;
        }
    };
    for relayer in relayers {
        if let Some(grant) = ask(&net, relayer, room).await {
            media.use_relay(Some(grant)).await;
            return true;
        }
    }
    false
}

/// Asks one relayer, again while it is still looking this node's rights up (it asks the
/// registry on the first request).
async fn ask(net: &NetHandle, relayer: PeerId, room: RoomId) -> Option<RelayGrant> {
    for _ in 0..LOOKUP_TRIES {
        match net.request(relayer, SignalRequest::Relay { room }).await {
            Ok(SignalResponse::Relay(grant)) => {
                tracing::info!(%relayer, relayed = %grant.relayed, "relayed path granted");
                return Some(RelayGrant {
                    server: grant.server,
                    relayed: grant.relayed,
                    token: grant.token,
                });
            }
            Ok(SignalResponse::Error(refusal)) if refusal.code == ErrorCode::Unavailable => {
                tokio::time::sleep(LOOKUP_WAIT).await;
            }
            Ok(SignalResponse::Error(refusal)) => {
                tracing::info!(%relayer, %refusal, "relayed path refused");
                return None;
            }
            Ok(other) => {
                tracing::info!(%relayer, ?other, "relayer answered out of turn");
                return None;
            }
            Err(e) => {
                tracing::info!(%relayer, error = %e, "relayer did not answer");
                return None;
            }
        }
    }
    tracing::info!(%relayer, "relayer kept looking this node's rights up");
    None
}
