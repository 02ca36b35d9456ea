//! Actors over loopback: a node that reads neither frames nor events loses frames, never link
//! events, and its actor keeps serving commands; the media socket answers STUN Binding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chroom_types::{LinkId, LinkMode, Track};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{LinkClosed, MediaActor, MediaConfig, MediaEvent, MediaHandle, ReceivedFrame};

/// How long anything may take. Generous: the machine is shared and slow, and nothing here
/// measures speed; a stalled actor would fail the test by never answering at all.
const PATIENCE: Duration = Duration::from_secs(60);

struct Node {
    handle: MediaHandle,
    events: mpsc::Receiver<MediaEvent>,
    frames: mpsc::Receiver<(LinkId, ReceivedFrame)>,
}

async fn spawn(event_room: usize, frame_room: usize, shutdown: &CancellationToken) -> Node {
    let (events_tx, events) = mpsc::channel(event_room);
    let (frames_tx, frames) = mpsc::channel(frame_room);
    let (actor, handle) = MediaActor::bind(MediaConfig::default(), events_tx, frames_tx)
        .await
        .unwrap();
    tokio::spawn(actor.run(shutdown.child_token()));
    Node {
        handle,
        events,
        frames,
    }
}

async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time")
        .expect("the actor runs")
}

/// Links `sender`'s microphone to `receiver` (which offers) and waits until the sender's side
/// connects. Returns the receiver's link and the sender's.
async fn link_microphone(receiver: &Node, sender: &mut Node) -> (LinkId, LinkId) {
    let (link, offer) = receiver
        .handle
        .create_offer(&[Track::Microphone], &[], LinkMode::Frames)
        .await
        .unwrap();
    let (sender_link, answer) = sender
        .handle
        .accept_offer(offer, LinkMode::Frames)
        .await
        .unwrap();
    receiver.handle.accept_answer(link, answer).await.unwrap();
    // Links between nodes start held; the node releases them once the peer's right is known.
    receiver.handle.hold(link, false).await;
    sender.handle.hold(sender_link, false).await;
    let connected = next_event(&mut sender.events).await;
    assert!(
        matches!(connected, MediaEvent::LinkConnected { link } if link == sender_link),
        "{connected:?}"
    );

    (link, sender_link)
}

#[tokio::test]
async fn a_full_frame_channel_costs_frames_not_control() {
    let shutdown = CancellationToken::new();
    // Room for one event and one frame, and nothing read until the end.
    let receiver = spawn(1, 1, &shutdown).await;
    let mut sender = spawn(16, 16, &shutdown).await;

    let (link, _) = link_microphone(&receiver, &mut sender).await;

    // Send until the receiver has dropped a few frames: its channel holds one.
    let data: Arc<[u8]> = Arc::from(vec![0x55; 80]);
    let give_up = Instant::now() + PATIENCE;
    let mut rtp_time = 0;
    loop {
        for _ in 0..5 {
            sender
                .handle
                .send_frame(Track::Microphone, rtp_time, data.clone(), None)
                .await
                .unwrap();
            rtp_time += 960;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The actor answers while frames pile up unread (it used to wait for the reader).
        let stats = tokio::time::timeout(PATIENCE, receiver.handle.relay_stats())
            .await
            .expect("the receiving actor answers")
            .unwrap();
        if stats.frames_dropped >= 5 {
            break;
        }
        assert!(Instant::now() < give_up, "no frame dropped: {stats:?}");
    }

    // Link events queue up behind the unread LinkConnected instead of being lost, and the
    // actor still serves commands meanwhile.
    let (spare, _) = receiver
        .handle
        .create_offer(&[Track::Camera], &[], LinkMode::Frames)
        .await
        .unwrap();
    receiver.handle.close_link(spare).await;
    receiver.handle.close_link(link).await;
    let stats = tokio::time::timeout(PATIENCE, receiver.handle.relay_stats())
        .await
        .expect("the receiving actor answers")
        .unwrap();
    assert!(stats.frames_dropped >= 5, "{stats:?}");

    let Node {
        mut events,
        mut frames,
        ..
    } = receiver;
    let (from, frame) = frames.try_recv().expect("the first frame was kept");
    assert_eq!((from, frame.track), (link, Track::Microphone));
    let connected = next_event(&mut events).await;
    assert!(
        matches!(connected, MediaEvent::LinkConnected { link: l } if l == link),
        "{connected:?}"
    );
    let flowing = next_event(&mut events).await;
    assert!(
        matches!(flowing, MediaEvent::LinkFlowing { link: l } if l == link),
        "the first media is reported: {flowing:?}"
    );
    for closed in [spare, link] {
        let event = next_event(&mut events).await;
        assert!(
            matches!(
                &event,
                MediaEvent::LinkClosed { link: l, reason: LinkClosed::ByRequest } if *l == closed
            ),
            "{event:?}"
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_senders_audio_level_arrives_with_its_frames_and_names_the_speaker() {
    let shutdown = CancellationToken::new();
    let mut receiver = spawn(16, 1024, &shutdown).await;
    let mut sender = spawn(16, 16, &shutdown).await;
    let (link, _) = link_microphone(&receiver, &mut sender).await;
    assert_eq!(receiver.handle.dominant_speaker(vec![link]).await, None);

    // A second and a half of speech at −20 dBov, paced as a microphone sends it.
    let data: Arc<[u8]> = Arc::from(vec![0x55; 80]);
    for i in 0..75u64 {
        sender
            .handle
            .send_frame(Track::Microphone, i * 960, data.clone(), Some(-20))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (from, frame) = tokio::time::timeout(PATIENCE, receiver.frames.recv())
        .await
        .expect("a frame in time")
        .expect("the actor runs");
    assert_eq!((from, frame.audio_level), (link, Some(-20)));
    assert_eq!(
        receiver.handle.dominant_speaker(vec![link]).await,
        Some(link)
    );
    // Asked about other links only, it names none of them.
    assert_eq!(
        receiver.handle.dominant_speaker(vec![LinkId(999)]).await,
        None
    );
    shutdown.cancel();
}

#[tokio::test]
async fn the_media_socket_tells_a_stun_asker_its_address_and_ignores_garbage() {
    let shutdown = CancellationToken::new();
    let node = spawn(16, 16, &shutdown).await;
    let asker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = node.handle.local_addr();
    // Garbage first: it must not stop the answer to what follows.
    asker.send_to(&[0xff; 40], target).await.unwrap();
    let transaction = [9; 12];
    asker
        .send_to(&crate::stun::binding_request(transaction), target)
        .await
        .unwrap();
    let mut buf = [0; 1500];
    let (len, from) = tokio::time::timeout(PATIENCE, asker.recv_from(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(from, target);
    assert_eq!(
        crate::stun::binding_success_address(&buf[..len], transaction),
        Some(asker.local_addr().unwrap())
    );
    shutdown.cancel();
}

/// Receives one datagram on `socket`, in time.
async fn recv(socket: &tokio::net::UdpSocket) -> (Vec<u8>, std::net::SocketAddr) {
    let mut buffer = vec![0; 2048];
    let (len, from) = tokio::time::timeout(PATIENCE, socket.recv_from(&mut buffer))
        .await
        .expect("a datagram in time")
        .unwrap();
    buffer.truncate(len);
    (buffer, from)
}

#[tokio::test]
async fn an_allocation_relays_both_ways_and_only_for_peers_the_client_sent_to() {
    use crate::relay::{self, RelayFrame};
    let shutdown = CancellationToken::new();
    let relayer = spawn(16, 16, &shutdown).await;
    let grant = relayer.handle.allocate_relay(10_000).await.unwrap();
    assert_eq!(grant.server, relayer.handle.local_addr());
    assert_ne!(grant.relayed, grant.server);
    let bind = |ip| tokio::net::UdpSocket::bind((ip, 0));
    let client = bind("127.0.0.1").await.unwrap();
    let peer = bind("127.0.0.1").await.unwrap();
    // Permissions are per address, as in TURN: the stranger is another host.
    let stranger = bind("127.0.0.2").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();

    // Client → peer, sent from the relayed address.
    let frame = relay::to_peer(&grant.token, peer_addr, b"hello peer");
    client.send_to(&frame, grant.server).await.unwrap();
    let (data, from) = recv(&peer).await;
    assert_eq!((data.as_slice(), from), (&b"hello peer"[..], grant.relayed));

    // A stranger the client never sent to gets nothing through; the peer does.
    stranger.send_to(b"let me in", grant.relayed).await.unwrap();
    peer.send_to(b"hello client", grant.relayed).await.unwrap();
    let (data, from) = recv(&client).await;
    assert_eq!(from, grant.server);
    assert_eq!(
        relay::decode(&data),
        Some(RelayFrame::FromPeer {
            token: grant.token,
            peer: peer_addr,
            payload: b"hello client"
        })
    );

    // A wrong token relays nothing.
    let forged = relay::to_peer(&[0; relay::TOKEN_LEN], peer_addr, b"forged");
    client.send_to(&forged, grant.server).await.unwrap();
    client.send_to(&frame, grant.server).await.unwrap();
    assert_eq!(recv(&peer).await.0, b"hello peer");

    let stats = relayer.handle.relay_stats().await.unwrap();
    assert_eq!(stats.allocations, 1);
    assert_eq!(stats.relayed_dropped, 1, "the stranger's datagram");
    assert_eq!(stats.relayed_bytes, (10 + 12 + 10) as u64);
    shutdown.cancel();
}
