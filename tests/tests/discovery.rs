//! Nodes that know only one bootstrap node find every member of a room through the DHT.

use std::collections::HashSet;
use std::time::Duration;

use chroom_net::{PeerId, Presence};
use chroom_room::Participation;
use chroom_tests::{eventually, init_tracing, start_node, tcp_addr};
use chroom_types::{MediaKind, RoomName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_resolve_every_provider_of_a_room() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = start_node(&dir.path().join("n0"), &[]).await;
    let boot_addr = tcp_addr(&bootstrap).await;
    let mut nodes = vec![bootstrap];
    for i in 1..5 {
        nodes.push(
            start_node(
                &dir.path().join(format!("n{i}")),
                std::slice::from_ref(&boot_addr),
            )
            .await,
        );
    }
    let room = "discovery".parse::<RoomName>().unwrap().id();
    let other_room = "elsewhere".parse::<RoomName>().unwrap().id();
    // Nodes 0 and 1 publish, the rest are plain members.
    for (i, node) in nodes.iter().enumerate() {
        let participation = if i < 2 {
            Participation::Publish(vec![MediaKind::Audio])
        } else {
            Participation::Receive(vec![MediaKind::Audio])
        };
        node.join(room, participation).await.unwrap();
    }
    let everyone: HashSet<_> = nodes.iter().map(|n| n.peer_id()).collect();
    let publishers: HashSet<_> = nodes[..2].iter().map(|n| n.peer_id()).collect();
    for node in &nodes {
        let me = node.peer_id();
        let others = |set: &HashSet<PeerId>| -> HashSet<PeerId> {
            set.iter().copied().filter(|p| *p != me).collect()
        };
        for (presence, expected) in [
            (Presence::Member, others(&everyone)),
            (Presence::Publisher, others(&publishers)),
        ] {
            eventually(Duration::from_secs(30), "every provider", || async {
                let found = node.net().find_providers(room, presence).await.ok()?;
                eprintln!(
                    "{me} {presence:?} found {} expected {}",
                    found.len(),
                    expected.len()
                );
                (found == expected).then_some(())
            })
            .await;
        }
        // A room nobody joined has no providers.
        let none = node
            .net()
            .find_providers(other_room, Presence::Member)
            .await
            .unwrap_or_default();
        assert!(none.is_empty(), "{none:?}");
    }
    for node in nodes {
        node.shutdown().await;
    }
}
