//! A restarted node keeps its PeerId, its store and the peers it knew.

use std::time::Duration;

use chroom_tests::{eventually, init_tracing, start_node, tcp_addr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_peer_id_and_peer_book() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let other = start_node(&dir.path().join("other"), &[]).await;
    let other_addr = tcp_addr(&other).await;

    let node = start_node(&dir.path().join("node"), &[other_addr]).await;
    let peer_id = node.peer_id();
    eventually(Duration::from_secs(10), "peer book entry", || async {
        let known = node.store().known_peers().ok()?;
        known
            .iter()
            .any(|p| p.peer_id == other.peer_id().to_base58() && !p.addrs.is_empty())
            .then_some(())
    })
    .await;
    node.shutdown().await;

    // No bootstrap this time: the peer book is enough to find the other node again.
    let node = start_node(&dir.path().join("node"), &[]).await;
    assert_eq!(node.peer_id(), peer_id);
    let known = node.store().known_peers().unwrap();
    assert!(
        known
            .iter()
            .any(|p| p.peer_id == other.peer_id().to_base58())
    );
    eventually(
        Duration::from_secs(10),
        "reconnect from the peer book",
        || async {
            let peers = node.net().connected_peers().await.ok()?;
            peers.contains(&other.peer_id()).then_some(())
        },
    )
    .await;
    node.shutdown().await;
    other.shutdown().await;
}
