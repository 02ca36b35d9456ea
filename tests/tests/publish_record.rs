//! publish → record between real nodes on loopback: the recorder finds the publisher in the
//! DHT, links over WebRTC and writes byte-identical frames to files ffprobe accepts. Headless
//! members (`chroom publish --meet`) meet and count what reaches them.

use std::path::Path;
use std::time::{Duration, Instant};

use chroom_node::RunningNode;
use chroom_node::record::{Recorder, StopAfter};
use chroom_room::Participation;
use chroom_tests::process::NodeProcess;
use chroom_tests::{
    Publisher, check_against_source, eventually, ffprobe_codec, fixtures, init_tracing, ops,
    start_node, tcp_addr,
};
use chroom_types::{MediaKind, RoomId, RoomName};

/// Records from the room until `frames` video frames are written; returns the output dir.
async fn record(
    mut node: RunningNode,
    room: RoomId,
    frames: u64,
    out: &Path,
) -> chroom_node::record::RecordStats {
    let started = Instant::now();
    let mut received = node.take_frames().unwrap();
    node.join(
        room,
        Participation::Receive(vec![MediaKind::Audio, MediaKind::Video]),
    )
    .await
    .unwrap();
    let mut recorder = Recorder::new(out, started).unwrap();
    let stop = StopAfter {
        video_frames: Some(frames),
        duration: None,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !recorder.is_done(&stop) {
        let frame = tokio::time::timeout_at(deadline, received.recv())
            .await
            .expect("frames keep arriving")
            .expect("node running");
        recorder.write(&frame).unwrap();
    }
    node.shutdown().await;
    recorder.finish().unwrap()
}

fn ffprobe_ok(path: &Path) {
    let codec = ffprobe_codec(path);
    assert!(
        codec == "vp8" || codec == "opus",
        "unexpected codec {codec:?} in {}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_receives_every_frame_byte_identical() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let room = "publish-record".parse::<RoomName>().unwrap().id();
    let publisher = Publisher::start(&dir.path().join("publisher"), room).await;
    let boot = tcp_addr(&publisher.node).await;
    let recorder = start_node(&dir.path().join("recorder"), &[boot]).await;
    let out = dir.path().join("out");
    let stats = publisher
        .while_publishing(record(recorder, room, 150, &out))
        .await;
    let source = publisher.source.clone();
    publisher.node.shutdown().await;

    assert_eq!(stats.publishers.len(), 1);
    let recording = &stats.publishers[0];
    let video_path = recording.video_path.as_ref().expect("video recorded");
    let audio_path = recording.audio_path.as_ref().expect("audio recorded");
    assert!(recording.audio_packets > 100, "{recording:?}");
    check_against_source(video_path, &source);
    ffprobe_ok(video_path);
    ffprobe_ok(audio_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_serves_three_recorders_at_once() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let room = "fan-out".parse::<RoomName>().unwrap().id();
    let publisher = Publisher::start(&dir.path().join("publisher"), room).await;
    let boot = tcp_addr(&publisher.node).await;
    let mut recordings = Vec::new();
    for i in 0..3 {
        let node = start_node(
            &dir.path().join(format!("recorder-{i}")),
            std::slice::from_ref(&boot),
        )
        .await;
        let out = dir.path().join(format!("out-{i}"));
        recordings.push(async move { (record(node, room, 60, &out).await, out) });
    }
    let results = publisher
        .while_publishing(futures::future::join_all(recordings))
        .await;
    let source = publisher.source.clone();
    publisher.node.shutdown().await;
    for (stats, _) in &results {
        let recording = &stats.publishers[0];
        assert!(recording.video_frames >= 60, "{recording:?}");
        check_against_source(recording.video_path.as_ref().unwrap(), &source);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_members_meet_and_count_what_reaches_them() {
    init_tracing();
    // Two `chroom publish --meet` processes (what `chroom bench conference` runs): each sends
    // the fixtures and receives the other, and its `/metrics` counts the frames handed to it
    // and the bytes its media socket sent.
    let dir = tempfile::tempdir().unwrap();
    let boot = start_node(&dir.path().join("boot"), &[]).await;
    let boot_addr = tcp_addr(&boot).await;
    let (video, audio) = fixtures();
    let config = format!(
        "[node]\nopen_access = true\n\n[net]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n\
         bootstrap = [\"{boot_addr}\"]\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
    );
    let (video, audio) = (video.to_str().unwrap(), audio.to_str().unwrap());
    let command = [
        "publish", "--meet", "--room", "huddle", "--video", video, "--audio", audio,
    ];
    let mut members: Vec<NodeProcess> = (0..2)
        .map(|i| {
            NodeProcess::spawn_in(
                &dir.path().join(format!("member{i}")),
                &config,
                None,
                &command,
            )
        })
        .collect();
    for member in &mut members {
        member.started(Duration::from_secs(20)).await;
    }
    for (i, member) in members.iter().enumerate() {
        let metrics = member.metrics_addr();
        eventually(
            Duration::from_secs(30),
            &format!("member {i} counts the other's frames"),
            || async move {
                let scraped = ops::scrape(metrics).await;
                let frames = ops::sample(
                    &scraped,
                    "chroom_frames_received_total",
                    &[("kind", "video")],
                )?;
                let sent = ops::sample(
                    &scraped,
                    "chroom_media_bytes_total",
                    &[("direction", "sent")],
                )?;
                (frames >= 60.0 && sent > 100_000.0).then_some(())
            },
        )
        .await;
    }
    boot.shutdown().await;
}
