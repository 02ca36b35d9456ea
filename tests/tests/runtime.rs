//! The node runtime's own promises, across real nodes, anvil and libp2p: a user's check of its
//! own access is served from the registry cache during an RPC outage (but not past
//! `max_staleness`, when links needing a right close until the chain is back, and a ban made
//! meanwhile holds once it is), and a chat line
//! comes back to its sender with the time its members see on it. The chat test also scrapes
//! the listener's `/metrics` before and after the chat (it parses as Prometheus text, and its
//! counters rise) and runs `chroom status` against it.

use std::time::Duration;

use chroom_tests::{Chain, eventually, init_tracing, ops, take_part, tcp_addr, until_present};

use chroom_types::{Action, RoomName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_can_still_join_from_its_page_while_the_chain_is_unreachable() {
    init_tracing();
    let (chain, _room) = Chain::with_room("outage-join").await;
    let name: RoomName = "outage-join".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let member = chain.node(&dir.path().join("member"), 1, &[]).await;

    let before = member
        .check_own_access(&name, Action::Listen)
        .await
        .unwrap();
    assert!(before.is_ok(), "a speaker may join: {before:?}");

    chain.proxy.cut();
    eventually(
        Duration::from_secs(20),
        "the node notices the outage",
        || async { member.stats().await.unwrap().registry_stale.then_some(()) },
    )
    .await;
    let during = member
        .check_own_access(&name, Action::Listen)
        .await
        .unwrap();
    assert_eq!(
        during.map(|access| access.role),
        Ok(Some(chroom_types::Role::Speaker)),
        "answered from the registry cache, as peers are"
    );
    member.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_line_returns_to_its_sender_with_the_time_members_see() {
    init_tracing();
    let (chain, room) = Chain::with_room("chat-time").await;
    let dir = tempfile::tempdir().unwrap();
    let speaker = chain.node(&dir.path().join("speaker"), 1, &[]).await;
    let bootstrap = [tcp_addr(&speaker).await];
    let listener = chain
        .node_with(&dir.path().join("listener"), 2, &bootstrap, |config| {
            config.metrics = Some(([127, 0, 0, 1], 0).into());
        })
        .await;
    take_part(&speaker, room).await;
    take_part(&listener, room).await;
    until_present(&speaker, room, 2).await;
    until_present(&listener, room, 2).await;
    let metrics = listener.metrics_addr().expect("metrics served");
    let room_label = &room.to_string();
    let before = eventually(
        Duration::from_secs(10),
        "the metrics snapshot shows the room and its other member",
        || async move {
            let scraped = ops::scrape(metrics).await;
            let members = ops::sample(
                &scraped,
                "chroom_room_members",
                &[("room", room_label), ("part", "receive")],
            );
            (ops::sample(&scraped, "chroom_rooms", &[]) == Some(1.0) && members == Some(1.0))
                .then_some(scraped)
        },
    )
    .await;
    let delivered = |scraped: &prometheus_parse::Scrape| {
        ops::sample(
            scraped,
            "chroom_gossip_messages_total",
            &[("verdict", "delivered")],
        )
        .expect("gossip counter")
    };
    assert!(ops::is_counter(&before, "chroom_gossip_messages_total"));

    let mut heard = listener.chat_messages();
    // Lines sent before the mesh takes the listener in are lost (gossip keeps nothing): send
    // until one arrives, each line its own, and compare the one that did.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut sent_lines = Vec::new();
    let (sent, received) = 'wait: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no chat line arrived"
        );
        let text = format!("what time is it? ({})", sent_lines.len());
        if let Ok(line) = speaker.send_chat(room, text).await {
            sent_lines.push(line);
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(received)) = tokio::time::timeout_at(until, heard.recv()).await {
            if let Some(sent) = sent_lines.iter().find(|s| s.text == received.text) {
                break 'wait (sent.clone(), received);
            }
        }
    };
    assert_eq!(received.author, speaker.peer_id());
    assert_eq!(
        sent.sent_at_unix_ms, received.sent_at_unix_ms,
        "the sender's echo carries the time members see"
    );
    assert_eq!(sent.account, Some(chain.account(1)));

    let delivered_before = delivered(&before);
    let after = eventually(
        Duration::from_secs(10),
        "the delivered chat lines show in /metrics",
        || async move {
            let scraped = ops::scrape(metrics).await;
            (delivered(&scraped) > delivered_before).then_some(scraped)
        },
    )
    .await;
    let counter = |scraped: &prometheus_parse::Scrape, name: &str| {
        ops::sample(scraped, name, &[]).unwrap_or_else(|| panic!("no {name}"))
    };
    assert!(counter(&after, "chroom_uptime_seconds") > counter(&before, "chroom_uptime_seconds"));
    assert!(
        counter(&after, "chroom_registry_lookups_total") >= 1.0
            && counter(&after, "chroom_registry_facts_read_total") >= 1.0,
        "the speaker's account was looked up in the registry"
    );
    assert!(counter(&after, "chroom_registry_head_block") >= 1.0);
    assert_eq!(counter(&after, "chroom_registry_stale"), 0.0);

    let status = tokio::process::Command::new(chroom_tests::process::chroom_binary())
        .args(["status", "--addr", &metrics.to_string()])
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "chroom status: {printed}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(printed.contains("health ok"), "{printed}");
    assert!(
        printed.contains(&format!("{room_label} receive: 1 members")),
        "{printed}"
    );
    assert!(
        printed.contains(&listener.peer_id().to_base58()),
        "{printed}"
    );
    listener.shutdown().await;
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_max_staleness_closes_links_until_the_chain_is_back() {
    use chroom_room::Participation;
    use chroom_types::MediaKind;

    init_tracing();
    let (chain, room) = Chain::with_room("outage-long").await;
    let dir = tempfile::tempdir().unwrap();
    let short = |config: &mut chroom_node::NodeConfig| {
        if let Some(registry) = &mut config.registry {
            registry.max_staleness = Duration::from_secs(2);
        }
    };
    let publisher = chain
        .node_with(&dir.path().join("publisher"), 1, &[], short)
        .await;
    // Links are what is checked: nothing needs to play on them.
    publisher
        .join(room, Participation::Publish(vec![MediaKind::Video]))
        .await
        .unwrap();
    let boot = [tcp_addr(&publisher).await];
    // Two listeners: account 2, and account 3, banned while the publisher cannot see the chain.
    chain.grant(room, 3, chroom_types::Role::Listener).await;
    let member = chain.node(&dir.path().join("member"), 2, &boot).await;
    let banned = chain.node(&dir.path().join("banned"), 3, &boot).await;
    for node in [&member, &banned] {
        node.join(room, Participation::Receive(vec![MediaKind::Video]))
            .await
            .unwrap();
    }
    let sending = || async { publisher.stats().await.unwrap().sending_links };
    eventually(Duration::from_secs(30), "both are linked", || async {
        (sending().await == 2).then_some(())
    })
    .await;

    chain.proxy.cut();
    chain.registry.ban(room, chain.account(3)).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the links close after max_staleness, failing closed",
        || async { (sending().await == 0).then_some(()) },
    )
    .await;
    chain.proxy.restore();
    eventually(
        Duration::from_secs(60),
        "the member is linked again",
        || async { (sending().await == 1).then_some(()) },
    )
    .await;
    // The ban made during the outage holds: the banned account is refused, not linked.
    eventually(
        Duration::from_secs(30),
        "the banned one refused",
        || async {
            let refusal = banned.stats().await.ok()?.last_refusal?;
            refusal.contains("the account is banned").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sending().await, 1, "only the member is linked");
    banned.shutdown().await;
    member.shutdown().await;
    publisher.shutdown().await;
}
