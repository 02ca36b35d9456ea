//! Host decisions are carried out by every node only if the registry lets their author moderate
//! the room: a member's node that publishes one anyway changes nothing elsewhere.

use std::time::Duration;

use chroom_tests::{Chain, eventually, init_tracing, take_part, tcp_addr, until_present};
use chroom_types::Moderation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_is_not_a_host_cannot_remove_anyone() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let speaker = chain.node(&dir.path().join("speaker"), 1, &[]).await;
    let boot = [tcp_addr(&speaker).await];
    // The listener's node checks nothing itself (no registry: a node run with its own checks
    // off, as an attacker would), so it publishes what its honest node would refuse.
    let listener = chain
        .node_with(&dir.path().join("listener"), 2, &boot, |config| {
            config.registry = None;
            config.open_access = true;
        })
        .await;
    let owner = chain.node(&dir.path().join("owner"), 0, &boot).await;
    for node in [&speaker, &listener, &owner] {
        take_part(node, room).await;
    }
    for node in [&speaker, &listener, &owner] {
        until_present(node, room, 3).await;
    }
    let mut notices = speaker.moderation_notices();

    // The listener's node publishes a removal it has no right to: the others refuse it.
    listener
        .moderate(room, speaker.peer_id(), Moderation::Remove)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the removal refused", || async {
        let (speaker, owner) = (speaker.stats().await.ok()?, owner.stats().await.ok()?);
        (speaker.gossip_rejected > 0 && owner.gossip_rejected > 0).then_some(())
    })
    .await;
    assert!(notices.try_recv().is_err(), "the speaker carried it out");
    let present = owner.participants(room).await.unwrap();
    assert!(present.iter().any(|p| p.peer == speaker.peer_id()));
    assert_eq!(speaker.participants(room).await.unwrap().len(), 3);

    // The owner may: the speaker's node leaves, the owner's drops it.
    owner
        .moderate(room, speaker.peer_id(), Moderation::Remove)
        .await
        .unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .expect("the speaker hears of it")
        .unwrap();
    assert_eq!(notice.action, Moderation::Remove);
    assert_eq!(notice.by, owner.peer_id());
    assert_eq!(notice.by_account, Some(chain.account(0)));
    assert!(speaker.participants(room).await.unwrap().is_empty());
    until_present(&owner, room, 2).await;

    for node in [speaker, listener, owner] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_arriving_later_learns_of_a_removal_from_the_host() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    chain.grant(room, 4, chroom_types::Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let owner = chain.node(&dir.path().join("owner"), 0, &[]).await;
    let boot = [tcp_addr(&owner).await];
    let speaker = chain.node(&dir.path().join("speaker"), 1, &boot).await;
    for node in [&owner, &speaker] {
        take_part(node, room).await;
    }
    for node in [&owner, &speaker] {
        until_present(node, room, 2).await;
    }
    owner
        .moderate(room, speaker.peer_id(), Moderation::Remove)
        .await
        .unwrap();
    until_present(&owner, room, 1).await;

    // A member arriving after the removal hears of it from the host's node...
    let newcomer = chain.node(&dir.path().join("newcomer"), 4, &boot).await;
    let mut notices = newcomer.moderation_notices();
    take_part(&newcomer, room).await;
    let notice = tokio::time::timeout(Duration::from_secs(20), notices.recv())
        .await
        .expect("the newcomer hears of the removal")
        .unwrap();
    assert_eq!(notice.target, speaker.peer_id());
    assert_eq!(notice.action, Moderation::Remove);
    // ...so the removed member coming back is ignored by it too.
    take_part(&speaker, room).await;
    until_present(&speaker, room, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen: Vec<_> = newcomer
        .participants(room)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.peer)
        .collect();
    assert!(!seen.contains(&speaker.peer_id()), "{seen:?}");
    assert!(seen.contains(&owner.peer_id()), "{seen:?}");

    for node in [newcomer, speaker, owner] {
        node.shutdown().await;
    }
}
