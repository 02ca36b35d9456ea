//! Attackers against real nodes on a devnet (issue 12): a node acting for a stranger's account
//! that poses as a broadcast's root and invites viewers under itself, and a peer whose rights
//! cannot be learned while the registry is cut off, and strangers and latecomers asking a
//! relayer for a relayed media path (issue 13). Every attempt is refused with a reason;
//! honest members keep receiving.

use std::time::Duration;

use chroom_net::signal::Frame;
use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_overlay::Message;
use chroom_proto::{ErrorCode, SignalRequest, SignalResponse, TreeMessage, encode_request};
use chroom_room::Participation;
use chroom_tests::{
    Chain, CuttableProxy, RawSignalClient, eventually, fixtures, init_tracing, tcp_addr,
};
use chroom_types::{MediaKind, RoomKind};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

/// Waits for `count` frames, each within `patience`.
async fn receives(frames: &mut Receiver<chroom_node::NodeFrame>, count: usize, what: &str) {
    for _ in 0..count {
        tokio::time::timeout(Duration::from_secs(30), frames.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no frame in 30 s"))
            .expect("frames flow");
    }
}

/// Unix time `secs` from now.
fn unix_in(secs: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_posing_as_the_broadcaster_feeds_no_viewer_and_moves_none() {
    init_tracing();
    // Account 1 may broadcast (speaker), 2 may watch, 3 is a stranger to the room.
    let (chain, room) = Chain::with_room_of_kind("stage", RoomKind::Broadcast).await;
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let broadcast = Participation::Broadcast {
        kinds: source.kinds(),
        capacity: 8,
    };

    // The attacker: a real node acting for the stranger's account that checks nobody (it
    // would feed anyone), broadcasting its own video and providing the room in the DHT.
    let fake = chain
        .node_with(&dir.path().join("fake"), 3, &[], |config| {
            config.registry = None;
            config.open_access = true;
        })
        .await;
    fake.join(room, broadcast.clone()).await.unwrap();
    let boot = tcp_addr(&fake).await;

    let cancel = CancellationToken::new();
    let faking = publish(&fake, &source, Looping::Forever, cancel.clone());
    let mut viewer = chain
        .node(&dir.path().join("viewer"), 2, std::slice::from_ref(&boot))
        .await;
    let mut frames = viewer.take_frames().unwrap();
    let view = Participation::View(vec![MediaKind::Audio, MediaKind::Video]);

    let first_act = async {
        viewer.join(room, view).await.unwrap();
        // The viewer finds the fake root, learns its account and refuses it.
        eventually(Duration::from_secs(30), "fake root refused", || async {
            (viewer.stats().await.ok()?.roots_refused > 0).then_some(())
        })
        .await;
        assert_eq!(viewer.tree_position(room).await.unwrap().parent, None);
        assert!(fake.tree_position(room).await.unwrap().children.is_empty());
        // It keeps looking, and joins nothing meanwhile.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(viewer.tree_position(room).await.unwrap().parent, None);
        assert!(frames.try_recv().is_err(), "the fake root's media arrived");
    };
    tokio::select! {
        () = first_act => {}
        stopped = faking => panic!("the fake broadcast stopped: {stopped:?}"),
    }

    // The real broadcaster goes live: the viewer joins it and receives.
    let root = chain
        .node(&dir.path().join("root"), 1, std::slice::from_ref(&boot))
        .await;
    root.join(room, broadcast).await.unwrap();
    let faking = publish(&fake, &source, Looping::Forever, cancel.clone());
    let live = publish(&root, &source, Looping::Forever, cancel.clone());
    let second_act = async {
        receives(&mut frames, 10, "the viewer of the real root").await;
        let parent = viewer.tree_position(room).await.unwrap().parent;
        assert_eq!(parent, Some(root.peer_id()));
        assert!(fake.tree_position(room).await.unwrap().children.is_empty());

        // The stranger's account, proven from a bare client, invites the viewer up to it and
        // accepts it as a child at level 0 (as a root would): both are refused with a reason.
        let mut client = RawSignalClient::new();
        client.dial(tcp_addr(&viewer).await);
        let binding =
            chroom_registry::sign(&chain.key(3), &client.peer_id().to_base58(), unix_in(600))
                .unwrap();
        let hello = SignalRequest::Hello {
            binding: Some(binding),
        };
        let answer = client
            .ask(viewer.peer_id(), Frame::Payload(encode_request(&hello)))
            .await;
        assert!(matches!(answer, SignalResponse::Hello { .. }), "{answer:?}");
        for message in [
            Message::Invite { level: 0 },
            Message::Accepted {
                level: 0,
                candidates: Vec::new(),
            },
            Message::State {
                level: 0,
                candidates: Vec::new(),
            },
        ] {
            let request = SignalRequest::Tree(TreeMessage { room, message });
            let answer = client
                .ask(viewer.peer_id(), Frame::Payload(encode_request(&request)))
                .await;
            let SignalResponse::Error(error) = answer else {
                panic!("the viewer took a stranger's tree message: {answer:?}");
            };
            assert_eq!(error.code, ErrorCode::NotAuthorized, "{error}");
            assert!(
                error.message.contains("nor a registered relayer"),
                "{error}"
            );
        }
        let stats = viewer.stats().await.unwrap();
        assert!(stats.tree_messages_refused >= 3, "{stats:?}");
        // Nothing moved: the viewer stays under the real root and keeps receiving.
        while frames.try_recv().is_ok() {}
        receives(&mut frames, 10, "the viewer after the attack").await;
        let parent = viewer.tree_position(room).await.unwrap().parent;
        assert_eq!(parent, Some(root.peer_id()));
    };
    tokio::select! {
        () = second_act => {}
        stopped = faking => panic!("the fake broadcast stopped: {stopped:?}"),
        stopped = live => panic!("the broadcast stopped: {stopped:?}"),
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_rights_cannot_be_learned_gets_no_media_and_its_link_closes_at_the_deadline() {
    init_tracing();
    // Account 1 speaks, 2 listens, in a members-only conference.
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
    // The member reaches the chain through a proxy of its own, cut before it learns anything
    // of the publisher: to it, the publisher's rights are unknown.
    let own_rpc = CuttableProxy::start(([127, 0, 0, 1], chain.anvil.port()).into()).await;
    let check_timeout = Duration::from_secs(3);
    let mut member = chain
        .node_with(
            &dir.path().join("member"),
            2,
            std::slice::from_ref(&boot),
            |config| {
                let registry = config.registry.as_mut().expect("a registry");
                registry.rpc_url = own_rpc.url();
                registry.link_check_timeout = check_timeout;
            },
        )
        .await;
    let mut frames = member.take_frames().unwrap();
    own_rpc.cut();

    let cancel = CancellationToken::new();
    let scenario = async {
        // A request already on its way may still pass the cut: start once the member's node
        // knows its registry is unreachable.
        eventually(
            Duration::from_secs(30),
            "the member's registry cut",
            || async { member.stats().await.ok()?.registry_stale.then_some(()) },
        )
        .await;
        member
            .join(room, Participation::Receive(vec![MediaKind::Video]))
            .await
            .unwrap();
        // The publisher knows the member and answers; the member's link to it carries nothing
        // while the publisher is unproven, and closes at the deadline.
        eventually(Duration::from_secs(30), "a link opened", || async {
            (member.stats().await.ok()?.receiving_links > 0).then_some(())
        })
        .await;
        eventually(check_timeout * 4, "the unproven link closed", || async {
            (member.stats().await.ok()?.links_unverified > 0).then_some(())
        })
        .await;
        assert!(
            frames.try_recv().is_err(),
            "media from an unproven peer was used"
        );

        // The registry answers again: the publisher is proven and the member receives.
        own_rpc.restore();
        receives(&mut frames, 10, "the member once the registry answers").await;
    };
    tokio::select! {
        () = scenario => {}
        stopped = publish(&publisher, &source, Looping::Forever, cancel.clone()) => {
            panic!("publisher stopped: {stopped:?}")
        }
    }
    cancel.cancel();
}

/// Asks `relayer` for a relayed path in `room` until its answer is more than "being looked
/// up" (it asks the registry about the asker first).
async fn ask_for_relay(
    asker: &chroom_node::RunningNode,
    relayer: chroom_net::PeerId,
    room: chroom_types::RoomId,
) -> SignalResponse {
    eventually(Duration::from_secs(30), "a relayer's verdict", || async {
        let response = asker
            .net()
            .request(relayer, SignalRequest::Relay { room })
            .await
            .ok()?;
        match &response {
            SignalResponse::Error(e) if e.code == ErrorCode::Unavailable => None,
            _ => Some(response),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayer_grants_relayed_paths_to_members_only_and_within_its_budget() {
    init_tracing();
    // Account 1 speaks, 2 listens, 3 is nobody; 4 volunteers as a relayer with upload for
    // exactly one relayed path.
    let (chain, room) = Chain::with_room("members-only").await;
    let dir = tempfile::tempdir().unwrap();
    let relayer = chain
        .node_with(&dir.path().join("relayer"), 4, &[], |config| {
            config.relay = Some(chroom_node::config::RelayConfig {
                capacity: 1,
                rooms: Vec::new(),
                budget: chroom_room::relaying::RelayBudget {
                    upload_kbps: 6000,
                    stream_kbps: 1500,
                    allocation_kbps: 6000,
                },
            });
        })
        .await;
    let boot = tcp_addr(&relayer).await;
    let node = |name: &str, account| {
        let dir = dir.path().join(name);
        let boot = boot.clone();
        let chain = &chain;
        async move { chain.node(&dir, account, &[boot]).await }
    };
    let (listener, stranger, speaker) = (
        node("listener", 2).await,
        node("stranger", 3).await,
        node("speaker", 1).await,
    );
    let relayer_id = relayer.peer_id();

    match ask_for_relay(&listener, relayer_id, room).await {
        SignalResponse::Relay(grant) => {
            assert_eq!(grant.server, relayer.media_addr());
            assert_eq!(grant.kbps, 6000);
        }
        other => panic!("a member was not granted a relayed path: {other:?}"),
    }
    match ask_for_relay(&stranger, relayer_id, room).await {
        SignalResponse::Error(refusal) => {
            assert_eq!(refusal.code, ErrorCode::NotAuthorized, "{refusal}");
        }
        other => panic!("a stranger got {other:?}"),
    }
    match ask_for_relay(&speaker, relayer_id, room).await {
        SignalResponse::Error(refusal) => {
            assert_eq!(refusal.code, ErrorCode::Overloaded, "{refusal}");
            assert!(
                refusal.message.contains("over the upload budget"),
                "{refusal}"
            );
        }
        other => panic!("a relayer over budget granted {other:?}"),
    }
    let served = relayer.stats().await.unwrap().relay.allocations;
    assert_eq!(served, 1, "only the member's allocation is open");
}
