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

#[tokio::test]
async fn a_full_frame_channel_costs_frames_not_control() {
    let shutdown = CancellationToken::new();
    // Room for one event and one frame, and nothing read until the end.
    let receiver = spawn(1, 1, &shutdown).await;
    let mut sender = spawn(16, 16, &shutdown).await;

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

    // Send until the receiver has dropped a few frames: its channel holds one.
    let data: Arc<[u8]> = Arc::from(vec![0x55; 80]);
    let give_up = Instant::now() + PATIENCE;
    let mut rtp_time = 0;
    loop {
        for _ in 0..5 {
            sender
                .handle
                .send_frame(Track::Microphone, rtp_time, data.clone())
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
