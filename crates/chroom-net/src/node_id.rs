//! Between libp2p's [`PeerId`] and Chroom's [`NodeId`] (the ed25519 key behind it), for
//! messages that name other nodes on the wire.

use chroom_types::NodeId;
use libp2p::PeerId;
use libp2p::identity::{PublicKey, ed25519};

/// The PeerId of the node with key `node`, or `None` if the bytes are not an ed25519 key.
pub fn peer_id_of(node: NodeId) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(node.as_bytes()).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

/// The key behind `peer`, or `None` if it is not an ed25519 identity (Chroom nodes always
/// use ed25519; such a PeerId inlines its public key).
pub fn node_id_of(peer: &PeerId) -> Option<NodeId> {
    let multihash = peer.as_ref();
    // 0x00: the identity "hash", which holds the protobuf-encoded public key itself.
    if multihash.code() != 0x00 {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(NodeId::from_public_key(
        key.try_into_ed25519().ok()?.to_bytes(),
    ))
}

/// The last 8 characters of a PeerId: enough to tell nodes apart in logs.
pub fn fmt_short(peer: &PeerId) -> String {
    let text = peer.to_base58();
    text[text.len().saturating_sub(8)..].to_owned()
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    #[test]
    fn ed25519_peers_round_trip_and_other_peer_ids_have_no_node_id() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let node = node_id_of(&peer).expect("an ed25519 peer has a node id");
        assert_eq!(peer_id_of(node), Some(peer));
        assert_eq!(node_id_of(&PeerId::random()), None);
    }
}
