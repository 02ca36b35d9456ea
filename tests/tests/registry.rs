//! Membership enforced end to end: a real anvil chain with the registry, nodes that prove their
//! accounts with identity bindings, a member that records, a stranger that is refused, and a
//! ban that cuts a member off.

use std::time::{Duration, Instant};

use chroom_node::RunningNode;
use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_registry::RegistryClient;
use chroom_registry::client::JoinPolicy;
use chroom_room::Participation;
use chroom_tests::{Chain, RawSignalClient, eventually, fixtures, init_tracing, tcp_addr};
use chroom_types::{MediaKind, Role, RoomKind, RoomName};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_record_strangers_are_refused_and_a_ban_cuts_the_link() {
    init_tracing();
    let (chain, room) = Chain::with_room("members-only").await;

    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let publisher = chain.node(&dir.path().join("publisher"), 1, &[]).await;
    publisher
        .join(room, Participation::Publish(source.kinds()))
        .await
        .unwrap();
    let boot = tcp_addr(&publisher).await;
    let mut member = chain
        .node(&dir.path().join("member"), 2, std::slice::from_ref(&boot))
        .await;
    let stranger = chain
        .node(&dir.path().join("stranger"), 3, std::slice::from_ref(&boot))
        .await;
    let receive = Participation::Receive(vec![MediaKind::Audio, MediaKind::Video]);
    let mut frames = member.take_frames().unwrap();
    member.join(room, receive.clone()).await.unwrap();
    stranger.join(room, receive).await.unwrap();

    let cancel = CancellationToken::new();
    let scenario = async {
        // The member receives.
        tokio::time::timeout(Duration::from_secs(30), frames.recv())
            .await
            .expect("member receives")
            .unwrap();

        // The stranger is refused, with a reason naming its account.
        let refusal = eventually(Duration::from_secs(30), "stranger refused", || async {
            stranger.stats().await.ok()?.last_refusal
        })
        .await;
        assert!(refusal.contains("not authorized"), "{refusal}");
        assert!(refusal.contains(&chain.account(3).to_string()), "{refusal}");
        assert!(refusal.contains("not a member"), "{refusal}");

        // A ban on chain closes the member's link within 2 s of the block.
        chain.registry.ban(room, chain.account(2)).await.unwrap();
        let banned_at = Instant::now();
        eventually(Duration::from_secs(5), "link closed", || async {
            (publisher.stats().await.ok()?.sending_links == 0).then_some(())
        })
        .await;
        let closed_after = banned_at.elapsed();
        assert!(
            closed_after < Duration::from_secs(2),
            "link closed {closed_after:?} after the ban"
        );
        // Nothing flows to the banned member any more.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while frames.try_recv().is_ok() {}
        let late = tokio::time::timeout(Duration::from_secs(2), frames.recv()).await;
        assert!(late.is_err(), "frames still arrive after the ban");
        // And it gets no new link.
        let stats = publisher.stats().await.unwrap();
        assert_eq!(stats.sending_links, 0, "{stats:?}");
    };
    tokio::select! {
        () = scenario => {}
        r = publish(&publisher, &source, Looping::Forever, cancel.clone()) => panic!("publisher stopped: {r:?}"),
    }
    cancel.cancel();
    member.shutdown().await;
    stranger.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_outage_serves_the_cache_and_catches_up_afterwards() {
    init_tracing();
    let (chain, room) = Chain::with_room("outage").await;

    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let publisher = chain.node(&dir.path().join("publisher"), 1, &[]).await;
    publisher
        .join(room, Participation::Publish(source.kinds()))
        .await
        .unwrap();
    let boot = tcp_addr(&publisher).await;
    let receive = Participation::Receive(vec![MediaKind::Video]);
    let mut member = chain
        .node(&dir.path().join("member"), 2, std::slice::from_ref(&boot))
        .await;
    let mut member_frames = member.take_frames().unwrap();
    member.join(room, receive.clone()).await.unwrap();

    let cancel = CancellationToken::new();
    let scenario = async {
        tokio::time::timeout(Duration::from_secs(30), member_frames.recv())
            .await
            .expect("member receives")
            .unwrap();

        // The chain goes out of reach.
        chain.proxy.cut();
        eventually(Duration::from_secs(10), "staleness reported", || async {
            publisher.stats().await.ok()?.registry_stale.then_some(())
        })
        .await;
        // A known member keeps being served from the cache.
        let before = Instant::now();
        let mut received_during_outage = 0;
        while received_during_outage < 30 {
            let frame = tokio::time::timeout(Duration::from_secs(5), member_frames.recv())
                .await
                .expect("known member still served during the outage")
                .unwrap();
            if frame.frame.received_at > before {
                received_during_outage += 1;
            }
        }

        // Meanwhile a role is granted on chain; a newcomer cannot get in yet.
        chain.grant(room, 3, Role::Listener).await;
        let mut newcomer = chain
            .node(&dir.path().join("newcomer"), 3, std::slice::from_ref(&boot))
            .await;
        let mut newcomer_frames = newcomer.take_frames().unwrap();
        newcomer.join(room, receive.clone()).await.unwrap();
        let early = tokio::time::timeout(Duration::from_secs(3), newcomer_frames.recv()).await;
        assert!(
            early.is_err(),
            "the newcomer got in while its grant was unknowable"
        );

        // The chain is back: the grant takes effect without a restart.
        chain.proxy.restore();
        eventually(Duration::from_secs(10), "fresh again", || async {
            (!publisher.stats().await.ok()?.registry_stale).then_some(())
        })
        .await;
        tokio::time::timeout(Duration::from_secs(30), newcomer_frames.recv())
            .await
            .expect("the newcomer is admitted once the rpc is back")
            .unwrap();
        newcomer.shutdown().await;
    };
    tokio::select! {
        () = scenario => {}
        r = publish(&publisher, &source, Looping::Forever, cancel.clone()) => panic!("publisher stopped: {r:?}"),
    }
    cancel.cancel();
    member.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_bindings_are_refused() {
    use chroom_net::signal::Frame;
    use chroom_proto::{ErrorCode, SignalRequest, SignalResponse, encode_request};

    init_tracing();
    let (chain, room) = Chain::with_room("forgery").await;

    let dir = tempfile::tempdir().unwrap();
    let publisher = chain.node(&dir.path().join("publisher"), 1, &[]).await;
    publisher
        .join(room, Participation::Publish(vec![MediaKind::Video]))
        .await
        .unwrap();
    let mut client = RawSignalClient::new();
    client.dial(tcp_addr(&publisher).await);
    let me = client.peer_id().to_base58();
    let member = chain.key(2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let mut ask = async |binding| {
        let request = SignalRequest::Subscribe {
            room,
            offer_sdp: "not sdp".into(),
            binding: Some(binding),
        };
        let response = client
            .ask(
                publisher.peer_id(),
                Frame::Payload(encode_request(&request)),
            )
            .await;
        match response {
            SignalResponse::Error(error) => error,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };

    // Signed by the member, but for another node's PeerId: a replayed binding.
    let other_peer = publisher.peer_id().to_base58();
    let replayed = chroom_registry::sign(&member, &other_peer, now + 600).unwrap();
    let error = ask(replayed).await;
    assert_eq!(error.code, ErrorCode::NotAuthorized, "{error}");
    // Expired.
    let expired = chroom_registry::sign(&member, &me, now - 1).unwrap();
    assert_eq!(ask(expired).await.code, ErrorCode::NotAuthorized);
    // Claims the member's account, signed by someone else.
    let mut stolen = chroom_registry::sign(&chain.key(4), &me, now + 600).unwrap();
    stolen.account = chain.account(2);
    assert_eq!(ask(stolen).await.code, ErrorCode::NotAuthorized);
    // A genuine binding passes the identity and membership checks (and then fails on the SDP).
    let genuine = chroom_registry::sign(&member, &me, now + 600).unwrap();
    let error = ask(genuine).await;
    assert_eq!(error.code, ErrorCode::BadSdp, "{error}");
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lets_its_holder_in_and_transferring_it_takes_them_out() {
    use alloy::primitives::U256;
    use chroom_registry::contract::TestERC721;

    init_tracing();
    // Reuse the chain setup, then add a token-gated broadcast next to its allowlist room.
    let (chain, _) = Chain::with_room("unused").await;
    let nft = TestERC721::deploy(chain.registry.provider()).await.unwrap();
    let name: RoomName = "holders".parse().unwrap();
    let room = name.id();
    let gate = JoinPolicy::TokenGated {
        token: *nft.address(),
        min_balance: U256::from(1),
    };
    chain
        .registry
        .create_room(&name, RoomKind::Broadcast, gate, "")
        .await
        .unwrap();
    chain.grant(room, 1, Role::Speaker).await;
    nft.mint(chain.key(2).address(), U256::from(1))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let publisher = chain.node(&dir.path().join("publisher"), 1, &[]).await;
    publisher
        .join(room, Participation::Publish(source.kinds()))
        .await
        .unwrap();
    let boot = tcp_addr(&publisher).await;
    let mut holder = chain
        .node(&dir.path().join("holder"), 2, std::slice::from_ref(&boot))
        .await;
    let mut frames = holder.take_frames().unwrap();
    holder
        .join(room, Participation::Receive(vec![MediaKind::Video]))
        .await
        .unwrap();

    let cancel = CancellationToken::new();
    let scenario = async {
        tokio::time::timeout(Duration::from_secs(30), frames.recv())
            .await
            .expect("the token holder receives")
            .unwrap();
        assert_eq!(publisher.stats().await.unwrap().sending_links, 1);
        // The holder gives the token away: out of the room.
        let as_holder = RegistryClient::connect(
            &chain.anvil.endpoint(),
            chain.registry.address(),
            Some(chain.key(2)),
        )
        .unwrap();
        TestERC721::new(*nft.address(), as_holder.provider())
            .transferFrom(
                chain.key(2).address(),
                chain.key(4).address(),
                U256::from(1),
            )
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        eventually(Duration::from_secs(5), "link closed", || async {
            (publisher.stats().await.ok()?.sending_links == 0).then_some(())
        })
        .await;
    };
    tokio::select! {
        () = scenario => {}
        r = publish(&publisher, &source, Looping::Forever, cancel.clone()) => panic!("publisher stopped: {r:?}"),
    }
    cancel.cancel();
    holder.shutdown().await;
    publisher.shutdown().await;
}

/// Sends `text` from `node` until `receiver` has it (the gossip mesh takes a heartbeat or two
/// to form), and returns what arrived.
async fn chat_until_received(
    node: &RunningNode,
    room: chroom_types::RoomId,
    text: &str,
    receiver: &mut tokio::sync::broadcast::Receiver<chroom_node::ChatMessage>,
    seen: &mut Vec<String>,
) -> chroom_node::ChatMessage {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Failures only mean that no topic peer is known yet.
        let _ = node.send_chat(room, text).await;
        let wait = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match receiver.recv().await {
                    Ok(message) if message.text == text => return Some(message),
                    Ok(message) => seen.push(message.text),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await;
        if let Ok(Some(message)) = wait {
            return message;
        }
        assert!(Instant::now() < deadline, "{text:?} never arrived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_chat_reaches_members_and_strangers_and_banned_accounts_are_not_heard() {
    init_tracing();
    let (chain, room) = Chain::with_room("chatty").await;
    let dir = tempfile::tempdir().unwrap();
    let speaker = chain.node(&dir.path().join("speaker"), 1, &[]).await;
    let boot = tcp_addr(&speaker).await;
    let listener = chain
        .node(&dir.path().join("listener"), 2, std::slice::from_ref(&boot))
        .await;
    let stranger = chain
        .node(&dir.path().join("stranger"), 3, std::slice::from_ref(&boot))
        .await;
    let nodes = [&speaker, &listener, &stranger];
    for node in nodes {
        node.join(room, Participation::Receive(vec![MediaKind::Audio]))
            .await
            .unwrap();
    }
    let mut heard = listener.chat_messages();
    let mut seen = Vec::new();

    let first = chat_until_received(&speaker, room, "hello", &mut heard, &mut seen).await;
    assert_eq!(first.author, speaker.peer_id());
    assert_eq!(first.account, Some(chain.account(1)));

    // The stranger's node publishes happily; every member node rejects it and forwards nothing.
    for _ in 0..5 {
        let _ = stranger.send_chat(room, "let me in").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    chat_until_received(&speaker, room, "still here", &mut heard, &mut seen).await;
    let rejected = async {
        let mut total = 0;
        for node in [&speaker, &listener] {
            total += node.stats().await.unwrap().gossip_rejected;
        }
        total
    };
    assert!(rejected.await >= 1, "a member node rejected the stranger");
    assert!(!seen.iter().any(|t| t == "let me in"), "heard {seen:?}");

    // Once the speaker is banned on chain, its words stop reaching the room.
    chain.registry.ban(room, chain.account(1)).await.unwrap();
    let rejected_by_listener = || async { listener.stats().await.unwrap().gossip_rejected };
    let before = rejected_by_listener().await;
    eventually(
        Duration::from_secs(30),
        "the ban reaches the listener",
        || async {
            let _ = speaker.send_chat(room, "anyone?").await;
            (rejected_by_listener().await > before).then_some(())
        },
    )
    .await;
    let before = rejected_by_listener().await;
    for _ in 0..3 {
        speaker.send_chat(room, "banned words").await.unwrap();
    }
    eventually(Duration::from_secs(10), "3 rejections", || async {
        (rejected_by_listener().await >= before + 3).then_some(())
    })
    .await;
    while let Ok(message) = heard.try_recv() {
        seen.push(message.text);
    }
    assert!(!seen.iter().any(|t| t == "banned words"), "heard {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_prove_their_accounts_to_each_other_on_connect() {
    init_tracing();
    let (chain, _room) = Chain::with_room("hello").await;
    let dir = tempfile::tempdir().unwrap();
    let first = chain.node(&dir.path().join("first"), 1, &[]).await;
    let boot = tcp_addr(&first).await;
    let second = chain
        .node(&dir.path().join("second"), 2, std::slice::from_ref(&boot))
        .await;
    // No room joined, no request sent: the bindings came with the connection.
    for node in [&first, &second] {
        eventually(Duration::from_secs(10), "binding verified", || async {
            (node.stats().await.ok()?.peers_with_accounts == 1).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_trees_admit_only_viewers_the_registry_lets_watch() {
    use chroom_net::signal::Frame;
    use chroom_overlay::Message;
    use chroom_proto::{ErrorCode, SignalRequest, SignalResponse, TreeMessage, encode_request};

    init_tracing();
    // Account 1 speaks (broadcasts), 4 is granted listening below, 5 is a registered relayer
    // with no role in the room, 3 is a stranger.
    let (chain, room) = Chain::with_room_of_kind("stage", RoomKind::Broadcast).await;
    chain.grant(room, 4, Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let root = chain.node(&dir.path().join("root"), 1, &[]).await;
    // The root feeds only the relayer: everyone else must ask the relayer.
    root.join(
        room,
        Participation::Broadcast {
            kinds: source.kinds(),
            capacity: 1,
        },
    )
    .await
    .unwrap();
    let boot = tcp_addr(&root).await;
    let relayer = chain
        .node(&dir.path().join("relayer"), 5, std::slice::from_ref(&boot))
        .await;
    RegistryClient::connect(
        &chain.anvil.endpoint(),
        chain.registry.address(),
        Some(chain.key(5)),
    )
    .unwrap()
    .register_relayer(&relayer.peer_id().to_bytes(), 4)
    .await
    .unwrap();
    relayer
        .join(room, Participation::Relay { capacity: 4 })
        .await
        .unwrap();
    // A member that is no registered relayer may watch, but feeds nobody.
    let pretender = chain
        .node(
            &dir.path().join("pretender"),
            2,
            std::slice::from_ref(&boot),
        )
        .await;
    pretender
        .join(room, Participation::Relay { capacity: 4 })
        .await
        .unwrap();
    let view = Participation::View(vec![MediaKind::Audio, MediaKind::Video]);

    let cancel = CancellationToken::new();
    let scenario = async {
        eventually(Duration::from_secs(20), "relayer attached", || async {
            relayer.tree_position(room).await.ok()?.parent.map(|_| ())
        })
        .await;

        // A listener is fed through the relayer.
        let mut member = chain
            .node(&dir.path().join("member"), 4, std::slice::from_ref(&boot))
            .await;
        let mut frames = member.take_frames().unwrap();
        member.join(room, view.clone()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), frames.recv())
            .await
            .expect("the member receives")
            .unwrap();
        let position = member.tree_position(room).await.unwrap();
        assert_eq!(position.parent, Some(relayer.peer_id()));
        assert!(
            pretender
                .tree_position(room)
                .await
                .unwrap()
                .children
                .is_empty()
        );

        // A stranger is told why it cannot watch.
        let stranger = chain
            .node(&dir.path().join("stranger"), 3, std::slice::from_ref(&boot))
            .await;
        stranger.join(room, view.clone()).await.unwrap();
        let refusal = eventually(Duration::from_secs(30), "stranger refused", || async {
            stranger.stats().await.ok()?.last_refusal
        })
        .await;
        assert!(refusal.contains("is not a member"), "{refusal}");
        assert!(stranger.tree_position(room).await.unwrap().parent.is_none());

        // Asking the relayer directly, with the stranger's account proven, changes nothing.
        let mut client = RawSignalClient::new();
        client.dial(tcp_addr(&relayer).await);
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let binding =
            chroom_registry::sign(&chain.key(3), &client.peer_id().to_base58(), expires).unwrap();
        let hello = SignalRequest::Hello {
            binding: Some(binding),
        };
        let answer = client
            .ask(relayer.peer_id(), Frame::Payload(encode_request(&hello)))
            .await;
        assert!(
            matches!(answer, SignalResponse::Hello { binding: Some(_) }),
            "{answer:?}"
        );
        let join = SignalRequest::Tree(TreeMessage {
            room,
            message: Message::Join {
                below_level: None,
                capacity: 0,
            },
        });
        let answer = client
            .ask(relayer.peer_id(), Frame::Payload(encode_request(&join)))
            .await;
        let SignalResponse::Error(error) = answer else {
            panic!("the relayer accepted a stranger: {answer:?}");
        };
        assert_eq!(error.code, ErrorCode::NotAuthorized, "{error}");
        let fed = relayer.tree_position(room).await.unwrap().children;
        assert!(!fed.contains(&client.peer_id()), "{fed:?}");
    };
    tokio::select! {
        () = scenario => {}
        stopped = publish(&root, &source, Looping::Forever, cancel.clone()) => {
            panic!("broadcast stopped: {stopped:?}")
        }
    }
    cancel.cancel();
}
