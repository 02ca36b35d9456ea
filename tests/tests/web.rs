//! The node's page in a real browser (Debian's Chromium, headless): members of a registry room
//! meet on their own nodes' pages, see each other's roles, chat; a stranger's page is refused
//! with the reason; bad input on the page API gets an error and the node keeps serving.

use std::collections::HashMap;
use std::time::Duration;

use chroom_node::{NodeConfig, RunningNode};
use chroom_room::Participation;
use chroom_tests::{Chain, init_tracing, run_page_scenario, tcp_addr, workspace_root};
use chroom_types::MediaKind;
use serde_json::json;

fn serve_page(config: &mut NodeConfig) {
    config.web = Some("127.0.0.1:0".parse().expect("an address"));
}

fn page_url(node: &RunningNode) -> String {
    format!("http://{}/", node.web_addr().expect("the page is served"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_meet_and_chat_on_their_pages_and_a_stranger_is_refused() {
    init_tracing();
    // Account 1 speaks, account 2 listens, account 3 is nobody.
    let (chain, _room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let a = chain
        .node_with(&dir.path().join("a"), 1, &[], serve_page)
        .await;
    let boot = [tcp_addr(&a).await];
    let b = chain
        .node_with(&dir.path().join("b"), 2, &boot, serve_page)
        .await;
    let stranger = chain
        .node_with(&dir.path().join("c"), 3, &boot, serve_page)
        .await;
    let screenshots = workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    let seen = run_page_scenario(
        "room.mjs",
        json!({
            "room": "standup",
            "member_a": page_url(&a),
            "member_b": page_url(&b),
            "stranger": page_url(&stranger),
            "screenshots": screenshots,
        }),
        Duration::from_secs(150),
    )
    .await;

    // Each member's page lists both, with the roles the registry gives them.
    let account = |i| chain.account(i).to_string();
    for (page, me, other) in [("a", 1, 2), ("b", 2, 1)] {
        let roster = seen["roster"][page].as_array().unwrap();
        assert_eq!(roster.len(), 2, "{page}: {roster:?}");
        let role_of = |i: usize| {
            let short = &account(i)[..6];
            roster
                .iter()
                .find(|p| p["name"].as_str().unwrap().starts_with(short))
                .unwrap_or_else(|| panic!("{page} lists no {short}: {roster:?}"))
        };
        let (me_shown, other_shown) = (role_of(me), role_of(other));
        assert!(
            me_shown["name"].as_str().unwrap().ends_with("(you)"),
            "{me_shown}"
        );
        let role = |i| if i == 1 { "speaker" } else { "listener" };
        assert_eq!(me_shown["role"], role(me), "{page}: {roster:?}");
        assert_eq!(other_shown["role"], role(other), "{page}: {roster:?}");
    }

    // The stranger's page says why, naming its account, and never enters the call.
    let refusal = seen["refusal"].as_str().unwrap();
    assert!(refusal.contains("not a member"), "{refusal}");
    assert!(refusal.contains(&account(3)), "{refusal}");
    assert_eq!(seen["stranger_in_call"], false);

    // Chat went both ways, in order, on both pages.
    let lines = json!(["hello from a", "hi a, b here"]);
    assert_eq!(seen["chat"]["a"], lines);
    assert_eq!(seen["chat"]["b"], lines);

    // B left: A lists only itself.
    let after = seen["after_leave"].as_array().unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    tracing::info!(leave_seen_ms = %seen["leave_seen_ms"], "leave shown on the other page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_camera_and_microphone_reach_another_member() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let a = chain
        .node_with(&dir.path().join("a"), 1, &[], serve_page)
        .await;
    let boot = [tcp_addr(&a).await];
    let mut b = chain.node(&dir.path().join("b"), 2, &boot).await;
    let mut frames = b.take_frames().unwrap();
    b.join(
        room,
        Participation::Receive(vec![MediaKind::Audio, MediaKind::Video]),
    )
    .await
    .unwrap();
    let screenshots = workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    let page = tokio::spawn(run_page_scenario(
        "publish.mjs",
        json!({
            "url": page_url(&a),
            "room": "standup",
            "hold_ms": 8000,
            "screenshots": screenshots,
        }),
        Duration::from_secs(90),
    ));

    // B receives A's browser's video and audio, as frames from A's node.
    let mut counts = HashMap::<MediaKind, usize>::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while counts.get(&MediaKind::Video).copied().unwrap_or(0) < 60
        || counts.get(&MediaKind::Audio).copied().unwrap_or(0) < 100
    {
        let frame = tokio::time::timeout_at(deadline, frames.recv())
            .await
            .unwrap_or_else(|_| panic!("B received only {counts:?} from A's page"))
            .expect("frames flow");
        assert_eq!(frame.peer, a.peer_id());
        *counts.entry(frame.frame.kind).or_default() += 1;
    }
    let seen = page.await.unwrap();
    assert_eq!(seen["connection_state"], "connected", "{seen}");
    assert_eq!(seen["error"], serde_json::Value::Null, "{seen}");
    assert!(
        seen["sent"]["video"]["frames"].as_u64().unwrap() > 60,
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pages_in_a_conference_each_play_the_other_two() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    // A third member: account 4 listens (listeners show their camera in a conference).
    chain
        .registry
        .set_role(room, chain.account(4), Some(chroom_types::Role::Listener))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = chain
        .node_with(&dir.path().join("a"), 1, &[], serve_page)
        .await;
    let boot = [tcp_addr(&a).await];
    let b = chain
        .node_with(&dir.path().join("b"), 2, &boot, serve_page)
        .await;
    let c = chain
        .node_with(&dir.path().join("c"), 4, &boot, serve_page)
        .await;
    let screenshots = workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    let watch = Duration::from_secs(10);
    let seen = run_page_scenario(
        "conference.mjs",
        json!({
            "urls": [page_url(&a), page_url(&b), page_url(&c)],
            "room": "standup",
            "watch_ms": watch.as_millis() as u64,
            "screenshots": screenshots,
        }),
        Duration::from_secs(150),
    )
    .await;

    let sample = Duration::from_millis(seen["sample_ms"].as_u64().unwrap());
    let window = (Duration::from_secs(1).as_millis() / sample.as_millis()) as usize;
    for (i, page) in seen["pages"].as_array().unwrap().iter().enumerate() {
        assert_eq!(page["error"], serde_json::Value::Null, "page {i}: {page}");
        assert_eq!(page["playing"], 2, "page {i}: {page}");
        let videos = page["videos"].as_object().unwrap();
        let decoding: Vec<&Vec<serde_json::Value>> = videos
            .values()
            .map(|v| v.as_array().unwrap())
            .filter(|frames| frames.last().and_then(serde_json::Value::as_u64) > Some(0))
            .collect();
        assert_eq!(decoding.len(), 2, "page {i} decodes {videos:?}");
        for frames in decoding {
            let frames: Vec<u64> = frames.iter().map(|f| f.as_u64().unwrap()).collect();
            // Frames decoded keep rising: never flat for a whole second.
            for span in frames.windows(window + 1) {
                assert!(
                    span[window] > span[0],
                    "page {i}: a remote video froze for 1 s: {frames:?}"
                );
            }
            let decoded = frames[frames.len() - 1] - frames[0];
            assert!(decoded >= 5 * watch.as_secs(), "page {i}: {frames:?}");
        }
        let audio = page["audio"].as_object().unwrap();
        let hearing = audio
            .values()
            .filter(|samples| samples.as_u64() > Some(48_000))
            .count();
        assert_eq!(hearing, 2, "page {i} hears {audio:?}");
    }
}
