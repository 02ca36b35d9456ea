//! Files shared in a room between real nodes: a download cut off by a restart goes on from the
//! chunks it kept, and only members present in the room are served.

use std::time::Duration;

use chroom_node::files::FileStatus;
use chroom_proto::{ErrorCode, FilePart, SignalRequest, SignalResponse};
use chroom_room::files::chunk_count;
use chroom_tests::{Chain, eventually, init_tracing, take_part, tcp_addr, until_present};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_off_by_a_restart_resumes_from_the_chunks_it_kept() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    // The sharer serves 256 kB/s, so 1 MiB takes about four seconds: time to cut it off.
    let sharer = chain
        .node_with(&dir.path().join("sharer"), 1, &[], |config| {
            config.file_serve_kbps = 2048;
        })
        .await;
    let boot = [tcp_addr(&sharer).await];
    let receiver_dir = dir.path().join("receiver");
    let receiver = chain.node(&receiver_dir, 2, &boot).await;
    take_part(&sharer, room).await;
    take_part(&receiver, room).await;
    until_present(&sharer, room, 2).await;
    until_present(&receiver, room, 2).await;

    let bytes: Vec<u8> = (0..1_048_576u32).map(|i| (i * 31 % 253) as u8).collect();
    let total = u64::from(chunk_count(bytes.len() as u64));
    let mut statuses = receiver.files().subscribe();
    let hash = sharer
        .share_file(room, "slides.bin".into(), bytes.clone().into())
        .await
        .unwrap();

    // Part-way through, the receiver stops.
    let partial = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let status: FileStatus = statuses.recv().await.unwrap();
            if status.hash == hash && status.received > 0 {
                return status;
            }
        }
    })
    .await
    .expect("the download starts");
    assert!(!partial.complete, "{partial:?}");
    // A download under way does not hold the node up (nor its store open).
    tokio::time::timeout(Duration::from_secs(20), receiver.shutdown())
        .await
        .expect("the receiver stops");

    let receiver = chain.node(&receiver_dir, 2, &boot).await;
    let kept = receiver.store().file_chunk_indexes(hash).unwrap().len() as u64;
    assert!(kept > 0 && kept < total, "kept {kept} of {total} chunks");
    take_part(&receiver, room).await;
    eventually(
        Duration::from_secs(60),
        "the download completes",
        || async {
            let files = receiver.files().room_files(room).await.ok()?;
            files
                .iter()
                .find(|f| f.hash == hash && f.complete)
                .map(|_| ())
        },
    )
    .await;
    // It asked only for what it lacked, and holds exactly the shared bytes.
    assert_eq!(receiver.files().chunks_fetched(), total - kept);
    let (name, held) = receiver.files().read(hash).await.unwrap().unwrap();
    assert_eq!(name, "slides.bin");
    assert!(held == bytes, "the bytes differ");

    receiver.shutdown().await;
    sharer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_only_to_members_present_in_the_room() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let sharer = chain.node(&dir.path().join("sharer"), 1, &[]).await;
    let boot = [tcp_addr(&sharer).await];
    // Account 3 is not a member: it can connect, but is never present in the room.
    let stranger = chain.node(&dir.path().join("stranger"), 3, &boot).await;
    take_part(&sharer, room).await;
    let hash = sharer
        .share_file(room, "secret.txt".into(), b"the plan".to_vec().into())
        .await
        .unwrap();

    for part in [FilePart::Manifest, FilePart::Chunk(0)] {
        let request = SignalRequest::File {
            room,
            file: hash,
            part,
        };
        let answer = stranger
            .net()
            .request(sharer.peer_id(), request)
            .await
            .unwrap();
        match answer {
            SignalResponse::Error(e) => assert_eq!(e.code, ErrorCode::NotInRoom, "{e}"),
            other => panic!("a stranger got {other:?}"),
        }
    }
    stranger.shutdown().await;
    sharer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_banned_on_chain_is_refused_files_at_once() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let sharer = chain.node(&dir.path().join("sharer"), 1, &[]).await;
    let boot = [tcp_addr(&sharer).await];
    let listener = chain.node(&dir.path().join("listener"), 2, &boot).await;
    take_part(&sharer, room).await;
    take_part(&listener, room).await;
    until_present(&sharer, room, 2).await;
    let hash = sharer
        .share_file(room, "plan.txt".into(), b"the plan".to_vec().into())
        .await
        .unwrap();
    let ask = || async {
        let request = SignalRequest::File {
            room,
            file: hash,
            part: FilePart::Manifest,
        };
        listener
            .net()
            .request(sharer.peer_id(), request)
            .await
            .unwrap()
    };
    let answer = ask().await;
    assert!(
        matches!(answer, SignalResponse::FileData(_)),
        "a present member is served: {answer:?}"
    );

    chain.registry.ban(room, chain.account(2)).await.unwrap();
    // The sharer's node learns of the ban from the chain (polled every 200 ms here); from then
    // on every request is refused, although the listener is still present in its roster.
    let refusal = eventually(Duration::from_secs(20), "the ban applies", || async {
        match ask().await {
            SignalResponse::Error(e) if e.code == ErrorCode::NotAuthorized => Some(e),
            _ => None,
        }
    })
    .await;
    assert!(refusal.message.contains("banned"), "{refusal}");
    assert!(
        sharer
            .participants(room)
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer == listener.peer_id()),
        "refused by the registry's verdict, not by the roster"
    );
    listener.shutdown().await;
    sharer.shutdown().await;
}
