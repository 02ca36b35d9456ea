//! A peer that sends garbage, oversized or misaddressed signaling gets a clear error reply, and
//! the node keeps serving its real subscribers meanwhile.

use std::time::{Duration, Instant};

use chroom_net::signal::Frame;
use chroom_proto::{ErrorCode, SignalRequest, SignalResponse, encode_request};
use chroom_room::Participation;
use chroom_tests::{Publisher, RawSignalClient, init_tracing, start_node, tcp_addr};
use chroom_types::{MAX_SIGNAL_MESSAGE_BYTES, MediaKind, RoomName};
use libp2p::Multiaddr;

fn refusal_code(response: &SignalResponse) -> ErrorCode {
    match response {
        SignalResponse::Error(error) => {
            assert!(!error.message.is_empty(), "refusals explain themselves");
            error.code
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_replies_and_the_node_keeps_serving() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let room = "robust".parse::<RoomName>().unwrap().id();
    let publisher = Publisher::start(&dir.path().join("publisher"), room).await;
    let addr: Multiaddr = tcp_addr(&publisher.node).await;

    // A real subscriber, receiving before, during and after the abuse.
    let mut recorder = start_node(&dir.path().join("recorder"), std::slice::from_ref(&addr)).await;
    let mut frames = recorder.take_frames().unwrap();
    recorder
        .join(room, Participation::Receive(vec![MediaKind::Video]))
        .await
        .unwrap();

    let abuse = async {
        // Wait for the real link to carry media first.
        let first = tokio::time::timeout(Duration::from_secs(30), frames.recv())
            .await
            .expect("recorder receives")
            .unwrap();
        assert_eq!(first.peer, publisher.node.peer_id());

        let mut client = RawSignalClient::new();
        client.dial(addr.clone());
        let peer = publisher.node.peer_id();

        let garbage = client
            .ask(peer, Frame::Payload(vec![0xff, 0x13, 0x37, 0x00]))
            .await;
        assert_eq!(refusal_code(&garbage), ErrorCode::Malformed);

        let huge = Frame::Payload(vec![0x0a; MAX_SIGNAL_MESSAGE_BYTES + 1]);
        assert_eq!(
            refusal_code(&client.ask(peer, huge).await),
            ErrorCode::TooLarge
        );

        let elsewhere = SignalRequest::Subscribe {
            room: "not-here".parse::<RoomName>().unwrap().id(),
            offer_sdp: "v=0".into(),
            binding: None,
        };
        let reply = client
            .ask(peer, Frame::Payload(encode_request(&elsewhere)))
            .await;
        assert_eq!(refusal_code(&reply), ErrorCode::NotInRoom);

        // Tree messages: too many candidates does not decode; a room without a tree here is
        // refused by name.
        let candidate = |n: u8| chroom_overlay::Candidate {
            peer: chroom_types::NodeId::from_public_key([n; 32]),
            level: 1,
            spare: 1,
            room: 1,
        };
        let flood = SignalRequest::Tree(chroom_proto::TreeMessage {
            room,
            message: chroom_overlay::Message::Redirected {
                candidates: (0..=chroom_overlay::MAX_CANDIDATES as u8)
                    .map(candidate)
                    .collect(),
            },
        });
        let reply = client
            .ask(peer, Frame::Payload(encode_request(&flood)))
            .await;
        assert_eq!(refusal_code(&reply), ErrorCode::Malformed);
        let no_tree = SignalRequest::Tree(chroom_proto::TreeMessage {
            room,
            message: chroom_overlay::Message::Join {
                below_level: None,
                capacity: 0,
            },
        });
        let reply = client
            .ask(peer, Frame::Payload(encode_request(&no_tree)))
            .await;
        assert_eq!(refusal_code(&reply), ErrorCode::NotInRoom);

        let bad_sdp = SignalRequest::Subscribe {
            room,
            offer_sdp: "this is not sdp".into(),
            binding: None,
        };
        let reply = client
            .ask(peer, Frame::Payload(encode_request(&bad_sdp)))
            .await;
        assert_eq!(refusal_code(&reply), ErrorCode::BadSdp);

        // The real subscriber still receives, without a new link.
        let after = Instant::now();
        let mut received = 0;
        while received < 30 {
            let frame = tokio::time::timeout(Duration::from_secs(5), frames.recv())
                .await
                .expect("media keeps flowing after the abuse")
                .unwrap();
            if frame.frame.received_at >= after {
                received += 1;
            }
        }
        let stats = publisher.node.stats().await.unwrap();
        assert_eq!(stats.sending_links, 1, "{stats:?}");
        assert!(stats.malformed_requests >= 2, "{stats:?}");
    };
    publisher.while_publishing(abuse).await;
    recorder.shutdown().await;
    publisher.node.shutdown().await;
}
