//! Files shared in a room between real nodes: a download cut off by a restart goes on from the
//! chunks it kept, only members present in the room are served, a file over the automatic
//! limit waits for its user, and one past a quota is refused with a reason.

use std::time::Duration;

use chroom_node::RunningNode;
use chroom_node::files::{FetchState, FileStatus};
use chroom_proto::{ErrorCode, FilePart, SignalRequest, SignalResponse};
use chroom_room::files::chunk_count;
use chroom_tests::{
    Chain, eventually, init_tracing, run_page_scenario, take_part, tcp_addr, until_present,
};
use chroom_types::{FileHash, RoomId};

/// Has both nodes take part in `room` and waits until each sees the other.
async fn meet(a: &RunningNode, b: &RunningNode, room: RoomId) {
    for node in [a, b] {
        take_part(node, room).await;
    }
    for node in [a, b] {
        until_present(node, room, 2).await;
    }
}

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
    meet(&sharer, &receiver, room).await;

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

/// `len` bytes unlike any other test's file (`seed` apart).
fn bytes_of(len: u32, seed: u32) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 % 253) ^ seed) as u8).collect()
}

/// How `node` holds `hash`, once it has heard of it.
async fn status_of(node: &RunningNode, room: RoomId, hash: FileHash) -> FileStatus {
    eventually(Duration::from_secs(20), "the offer arrives", || async {
        let files = node.files().room_files(room).await.ok()?;
        files.into_iter().find(|f| f.hash == hash)
    })
    .await
}

/// Waits until `node` holds `hash` whole.
async fn until_complete(node: &RunningNode, room: RoomId, hash: FileHash) {
    eventually(Duration::from_secs(20), "the file arrives", || async {
        let status = node.files().room_files(room).await.ok()?;
        status
            .iter()
            .find(|f| f.hash == hash && f.complete)
            .map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_automatic_limit_is_fetched_only_when_asked() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let sharer = chain.node(&dir.path().join("sharer"), 1, &[]).await;
    let boot = [tcp_addr(&sharer).await];
    let receiver = chain
        .node_with(&dir.path().join("receiver"), 2, &boot, |config| {
            config.file_limits.auto_download_max = 100_000;
        })
        .await;
    meet(&sharer, &receiver, room).await;

    // At the limit: fetched unasked, as before.
    let small = bytes_of(100_000, 1);
    let small_hash = sharer
        .share_file(room, "small.bin".into(), small.into())
        .await
        .unwrap();
    until_complete(&receiver, room, small_hash).await;
    let fetched = receiver.files().chunks_fetched();

    // One byte over: kept as an offer, nothing fetched, the page offered a download.
    let large = bytes_of(100_001, 2);
    let hash = sharer
        .share_file(room, "large.bin".into(), large.clone().into())
        .await
        .unwrap();
    let waiting = status_of(&receiver, room, hash).await;
    assert_eq!(waiting.fetch, FetchState::OnRequest, "{waiting:?}");
    assert_eq!((waiting.received, waiting.complete), (0, false));
    assert!(
        receiver
            .store()
            .file_chunk_indexes(hash)
            .unwrap()
            .is_empty()
    );
    assert_eq!(receiver.store().file(hash).unwrap().unwrap().manifest, None);
    assert_eq!(receiver.files().chunks_fetched(), fetched);

    // Asked for, it arrives whole, and is the shared file.
    receiver.files().fetch(room, hash).await.unwrap();
    until_complete(&receiver, room, hash).await;
    let (name, held) = receiver.files().read(hash).await.unwrap().unwrap();
    assert_eq!(name, "large.bin");
    assert_eq!(blake3::hash(&held).as_bytes(), hash.as_bytes());
    assert!(held == large, "the bytes differ");
    assert_eq!(
        status_of(&receiver, room, hash).await.fetch,
        FetchState::Fetching
    );
    // A file the room does not have cannot be asked for.
    let unknown = FileHash::from_bytes([7; 32]);
    assert!(receiver.files().fetch(room, unknown).await.is_err());

    receiver.shutdown().await;
    sharer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_the_rooms_quota_is_refused_with_a_reason_and_not_fetched() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let sharer = chain.node(&dir.path().join("sharer"), 1, &[]).await;
    let boot = [tcp_addr(&sharer).await];
    let receiver = chain
        .node_with(&dir.path().join("receiver"), 2, &boot, |config| {
            config.file_limits.room_quota = 150_000;
        })
        .await;
    meet(&sharer, &receiver, room).await;

    let first = sharer
        .share_file(room, "first.bin".into(), bytes_of(100_000, 3).into())
        .await
        .unwrap();
    until_complete(&receiver, room, first).await;
    let fetched = receiver.files().chunks_fetched();

    // 100 kB more would make 200 kB of a 150 kB room: the page is told, nothing is fetched.
    let mut statuses = receiver.files().subscribe();
    let second = sharer
        .share_file(room, "second.bin".into(), bytes_of(100_000, 4).into())
        .await
        .unwrap();
    let told = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let status = statuses.recv().await.unwrap();
            if status.hash == second {
                return status;
            }
        }
    })
    .await
    .expect("the page hears of the file");
    assert_eq!(told.fetch, FetchState::Refused, "{told:?}");
    let reason = told.problem.unwrap();
    assert!(
        reason.starts_with("not downloaded: this node's file space for this room is full")
            && reason.contains("room_quota"),
        "{reason}"
    );
    // Asking does not get past the quota either; a page opened later reads the same reason.
    receiver.files().fetch(room, second).await.unwrap();
    let later = status_of(&receiver, room, second).await;
    assert_eq!(later.fetch, FetchState::Refused, "{later:?}");
    assert_eq!(later.problem.as_deref(), Some(reason.as_str()));
    assert!(
        receiver
            .store()
            .file_chunk_indexes(second)
            .unwrap()
            .is_empty()
    );
    assert_eq!(receiver.files().chunks_fetched(), fetched);

    receiver.shutdown().await;
    sharer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_offers_a_large_file_for_download_and_says_why_another_is_not_fetched() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let sharer = chain.node(&dir.path().join("sharer"), 1, &[]).await;
    let boot = [tcp_addr(&sharer).await];
    let receiver = chain
        .node_with(&dir.path().join("receiver"), 2, &boot, |config| {
            config.web = Some("127.0.0.1:0".parse().unwrap());
            config.file_limits.auto_download_max = 100_000;
            config.file_limits.room_quota = 350_000;
        })
        .await;
    take_part(&sharer, room).await;
    let large = bytes_of(200_000, 5);
    let too_large = bytes_of(400_000, 6);
    let hash_of = |bytes: &[u8]| FileHash::from_bytes(*blake3::hash(bytes).as_bytes());
    let (large_hash, refused_hash) = (hash_of(&large), hash_of(&too_large));
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    // The receiver's node joins the room when its page does; then the files are shared.
    let share = async {
        until_present(&sharer, room, 2).await;
        for (name, bytes) in [("large.bin", &large), ("too-large.bin", &too_large)] {
            sharer
                .share_file(room, name.into(), bytes.clone().into())
                .await
                .unwrap();
        }
    };
    let scenario = run_page_scenario(
        "file-limits.mjs",
        serde_json::json!({
            "url": receiver.page_link().unwrap(),
            "room": "standup",
            "large": large_hash.to_string(),
            "refused": refused_hash.to_string(),
            "downloads": downloads,
        }),
        Duration::from_secs(90),
    );
    let ((), seen) = tokio::join!(share, scenario);

    assert_eq!(seen["error"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["button"], "Download (0.2 MB)", "{seen}");
    assert_eq!(seen["waiting"]["bar_hidden"], true, "{seen}");
    let refused = seen["refused"]["status"].as_str().unwrap();
    assert!(
        refused.contains(
            "not downloaded: this file (390.6 KiB) is larger than this node's whole file \
             space for this room (341.8 KiB)"
        ),
        "{seen}"
    );
    assert_eq!(seen["refused"]["button"], false, "{seen}");
    let saved = std::fs::read(seen["saved"].as_str().unwrap()).unwrap();
    assert!(saved == large, "the saved bytes differ");
    assert!(
        receiver
            .store()
            .file_chunk_indexes(refused_hash)
            .unwrap()
            .is_empty()
    );

    receiver.shutdown().await;
    sharer.shutdown().await;
}
