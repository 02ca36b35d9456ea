//! The node's page in a real browser (Debian's Chromium, headless, and Debian's Firefox ESR
//! with its default ICE settings): members of a registry room meet on their own nodes' pages,
//! see each other's roles, chat; a stranger's page is refused with the reason; bad input on the
//! page API gets an error and the node keeps serving. Pages in both engines share a conference
//! and an audio space, and a WebRTC stack that is no browser (aiortc) drives the page API.

use std::collections::HashMap;
use std::time::Duration;

use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_node::{NodeConfig, RunningNode};
use chroom_room::Participation;
use chroom_tests::pages::{page_nodes, page_url, screenshots, serve_page};
use chroom_tests::{
    Chain, eventually, fixtures, init_tracing, run_aiortc_page, run_page_scenario,
    run_page_scenario_on_a_display, tcp_addr,
};
use chroom_types::MediaKind;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

/// The cookie a browser holds after opening the page's link, and the page's own origin.
fn page_headers(node: &RunningNode) -> [(&'static str, String); 2] {
    let link = node.page_link().expect("the page is served");
    let key = link.split_once("token=").expect("the link carries a key").1;
    [
        ("Cookie", format!("chroom_page={key}")),
        ("Origin", format!("http://{}", node.web_addr().unwrap())),
    ]
}

/// A WebSocket request to the page API carrying `headers`.
fn api_request(
    node: &RunningNode,
    headers: &[(&'static str, String)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{}/api/ws", node.web_addr().unwrap())
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_meet_and_chat_on_their_pages_and_a_stranger_is_refused() {
    init_tracing();
    // Account 1 speaks, account 2 listens (from Firefox), account 3 is nobody.
    let (chain, _room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2, 3]).await;
    let [a, b, stranger] = &nodes[..] else {
        unreachable!()
    };

    let seen = run_page_scenario(
        "room.mjs",
        json!({
            "room": "standup",
            "member_a": page_url(a),
            "member_b": page_url(b),
            "member_b_engine": "firefox",
            "stranger": page_url(stranger),
            "screenshots": screenshots(),
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

    // Back in the room, B's page shows the chat its node kept, B's own line as its own.
    assert_eq!(
        seen["history_b"],
        json!([
            { "text": "hello from a", "own": false },
            { "text": "hi a, b here", "own": true },
        ])
    );
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
    let page = tokio::spawn(run_page_scenario(
        "publish.mjs",
        json!({
            "url": page_url(&a),
            "room": "standup",
            "hold_ms": 8000,
            "screenshots": screenshots(),
        }),
        Duration::from_secs(90),
    ));

    // B receives A's browser's video and audio, as frames from A's node.
    let mut counts = HashMap::<MediaKind, usize>::new();
    // The page sends its 640×360 camera as simulcast layers; nothing limits the loopback link
    // between the nodes, so B ends on the top layer (after a lower one, at most, while the
    // browser's estimate of its own link ramps up).
    let top = (640, 360);
    let mut sizes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while counts.get(&MediaKind::Video).copied().unwrap_or(0) < 60
        || counts.get(&MediaKind::Audio).copied().unwrap_or(0) < 100
        || sizes.last() != Some(&top)
    {
        let frame = tokio::time::timeout_at(deadline, frames.recv())
            .await
            .unwrap_or_else(|_| panic!("B received {counts:?} from A's page, keyframes {sizes:?}"))
            .expect("frames flow");
        assert_eq!(frame.peer, a.peer_id());
        *counts.entry(frame.frame.kind).or_default() += 1;
        sizes.extend(chroom_node::record::vp8_keyframe_size(&frame.frame.data));
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
async fn a_small_tile_gets_a_small_layer_and_a_large_one_the_top() {
    small_tile_then_large("chromium").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_firefox_tile_gets_a_small_layer_and_a_large_one_the_top() {
    small_tile_then_large("firefox").await;
}

/// A Chromium page and a page in `engine_b` (B) call; B's window starts small, then grows
/// (tests/web/tile-size.mjs).
async fn small_tile_then_large(engine_b: &str) {
    init_tracing();
    let (chain, _room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2]).await;
    // B's window: 480×270, its tile of A well under 180 pixels tall.
    let scenario = run_page_scenario(
        "tile-size.mjs",
        json!({
            "urls": nodes.iter().map(page_url).collect::<Vec<_>>(),
            "room": "standup",
            "peer_a": nodes[0].peer_id().to_base58(),
            "peer_b": nodes[1].peer_id().to_base58(),
            "small": { "width": 480, "height": 270 },
            "settle_ms": 4000,
            "timeout_ms": 60_000,
            "engine_b": engine_b,
        }),
        Duration::from_secs(90),
    );
    // Meanwhile A's node says, in its stats (and /metrics), that B gets its half-size layer.
    let b = nodes[1].peer_id();
    let half_size = eventually(
        Duration::from_secs(60),
        "B on A's half-size layer",
        || async {
            let layers = nodes[0].stats().await.ok()?.camera_layers;
            layers.contains(&(b, Some(1))).then_some(())
        },
    );
    let (seen, ()) = tokio::join!(scenario, half_size);
    println!("{seen}");
    // A's camera is 640×360, sent as 640×360 and 320×180: the small window gets the smaller,
    // the grown one the top; A, large all along, gets B's top layer.
    assert_eq!(seen["small_width"], 320, "{seen}");
    assert_eq!(seen["large_width"], 640, "{seen}");
    assert_eq!(seen["a_sees_b_width"], 640, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pages_in_a_conference_play_each_other_see_a_shared_screen_and_get_a_file() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    // A third member: account 4 listens (listeners show their camera in a conference).
    chain.grant(room, 4, chroom_types::Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2, 4]).await;
    // 5 MB that do not compress, and no two chunks alike.
    let file: Vec<u8> = (0..5_000_000u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file_path = dir.path().join("notes.bin");
    std::fs::write(&file_path, &file).unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    let watch = Duration::from_secs(10);
    let seen = run_page_scenario(
        "conference.mjs",
        json!({
            "urls": nodes.iter().map(page_url).collect::<Vec<_>>(),
            "room": "standup",
            "watch_ms": watch.as_millis() as u64,
            "screenshots": screenshots(),
            "file": file_path,
            "downloads": downloads,
        }),
        Duration::from_secs(150),
    )
    .await;

    assert_each_page_plays_the_others(&seen, watch);

    // The first page shared its screen: both others showed it large and saw it end.
    assert_screen_shown(&seen["screen"], &nodes[0]);

    // The first page said a line and shared 5 MB: both others read the line, watched the file
    // arrive, and saved exactly its bytes; its name everywhere is its BLAKE3 hash.
    let sharing = &seen["sharing"];
    let hash = blake3::hash(&file).to_hex().to_string();
    assert_eq!(sharing["hash"], hash.as_str(), "{sharing}");
    assert!(
        sharing["sender_status"]
            .as_str()
            .unwrap()
            .contains("shared with the room"),
        "{sharing}"
    );
    for receiver in sharing["receivers"].as_array().unwrap() {
        assert!(
            receiver["chat"]
                .as_array()
                .unwrap()
                .contains(&json!("notes for today attached")),
            "{receiver}"
        );
        let saved = std::fs::read(receiver["saved"].as_str().unwrap()).unwrap();
        assert_eq!(saved.len(), file.len());
        assert_eq!(blake3::hash(&saved).to_hex().as_str(), hash);
        let progress: Vec<u64> = receiver["progress"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        assert!(
            progress.iter().any(|p| *p > 0 && *p < file.len() as u64),
            "the page never showed the file part-way: {progress:?}"
        );
        assert!(progress.is_sorted(), "progress went back: {progress:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_and_chromium_pages_in_one_conference_play_each_other() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    chain.grant(room, 4, chroom_types::Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2, 4]).await;
    // Firefox with its default ICE settings (no loopback candidates, its own addresses behind
    // mDNS names): it reaches its node only through an address the node offers on a real
    // interface, and it answers the node's playback offer as a standards ICE agent does.
    let engines = ["chromium", "firefox", "firefox"];
    // A Firefox page shares its screen; the Chromium page and the other Firefox page show it.
    let presenter = 1;
    let watch = Duration::from_secs(10);
    // Headless Firefox has no screen to share: this scenario gets a virtual display.
    let seen = run_page_scenario_on_a_display(
        "engines.mjs",
        json!({
            "pages": nodes
                .iter()
                .zip(engines)
                .map(|(node, engine)| json!({ "url": page_url(node), "engine": engine }))
                .collect::<Vec<_>>(),
            "room": "standup",
            "watch_ms": watch.as_millis() as u64,
            "presenter": presenter,
            "screenshots": screenshots(),
        }),
        Duration::from_secs(150),
    )
    .await;
    assert_each_page_plays_the_others(&seen, watch);
    assert_screen_shown(&seen["screen"], &nodes[presenter]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_browser_webrtc_stack_on_the_page_api_sends_to_the_room_and_plays_it() {
    init_tracing();
    // aiortc (Python) drives account 1's page API as a page would; account 2's node meets it
    // in the conference with the fixtures, receiving and sending.
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let a = chain
        .node_with(&dir.path().join("a"), 1, &[], serve_page)
        .await;
    let boot = [tcp_addr(&a).await];
    let mut b = chain.node(&dir.path().join("b"), 2, &boot).await;
    let mut frames = b.take_frames().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    b.join(
        room,
        Participation::Meet {
            publish: source.kinds(),
            receive: vec![MediaKind::Audio, MediaKind::Video],
        },
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let playing = publish(&b, &source, Looping::Forever, cancel.clone());
    let link = page_url(&a);
    let client = run_aiortc_page(&link, "standup", 12);
    // B receives what aiortc sends, as frames from A's node.
    let received = async {
        let mut counts = HashMap::<MediaKind, usize>::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while counts.get(&MediaKind::Video).copied().unwrap_or(0) < 60
            || counts.get(&MediaKind::Audio).copied().unwrap_or(0) < 100
        {
            let Ok(Some(frame)) = tokio::time::timeout_at(deadline, frames.recv()).await else {
                break;
            };
            assert_eq!(frame.peer, a.peer_id());
            *counts.entry(frame.frame.kind).or_default() += 1;
        }
        counts
    };
    let (seen, counts) = tokio::select! {
        both = async { tokio::join!(client, received) } => both,
        stopped = playing => panic!("B's publisher stopped: {stopped:?}"),
    };
    cancel.cancel();
    assert!(
        counts.get(&MediaKind::Video) >= Some(&60) && counts.get(&MediaKind::Audio) >= Some(&100),
        "B received only {counts:?} from aiortc"
    );
    // aiortc answered the node's playback offer as any standards stack does and decodes B.
    assert_eq!(seen["errors"], json!([]), "{seen}");
    assert_eq!(seen["publish"], "connected", "{seen}");
    assert_eq!(seen["playback"], "connected", "{seen}");
    assert!(seen["decoded"]["video"].as_u64() > Some(60), "{seen}");
    assert!(seen["decoded"]["audio"].as_u64() > Some(100), "{seen}");
}

/// What a page scenario's screen share saw (`shareScreen` in `lib.mjs`): every viewer showed
/// the presenter's screen large, named its presenter, decoded it at the screen's size (not a
/// camera's) with frames still coming; then it ended everywhere.
fn assert_screen_shown(screen: &serde_json::Value, presenter: &RunningNode) {
    let presenter = presenter.peer_id().to_base58();
    assert_eq!(screen["presenter"], presenter.as_str(), "{screen}");
    for viewer in screen["viewers"].as_array().unwrap() {
        assert_eq!(viewer["peer"], presenter.as_str(), "{screen}");
        assert!(
            viewer["label"].as_str().unwrap().ends_with("is presenting"),
            "{screen}"
        );
        // The screen's width (wider than the 640 × 360 camera the page asks for); its height
        // may be cropped to the captured frames' 16:9.
        assert_eq!(viewer["width"], screen["shared"]["width"], "{screen}");
        assert!(viewer["width"].as_u64() > Some(640), "{screen}");
        let frames = viewer["frames"].as_array().unwrap();
        assert!(
            frames[1].as_u64() > frames[0].as_u64(),
            "the screen froze: {screen}"
        );
    }
    assert_eq!(screen["stopped"], true, "{screen}");
}

/// Every page of a conference scenario (`watchEachOther` in tests/web/lib.mjs) played every
/// other member: their video decoding all along the watch (never stuck for a second, at least
/// 5 frames a second) and a second of each one's audio heard.
fn assert_each_page_plays_the_others(seen: &serde_json::Value, watch: Duration) {
    let pages = seen["pages"].as_array().unwrap();
    let others = pages.len() - 1;
    let sample = Duration::from_millis(seen["sample_ms"].as_u64().unwrap());
    let window = (Duration::from_secs(1).as_millis() / sample.as_millis()) as usize;
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page["error"], serde_json::Value::Null, "page {i}: {page}");
        assert_eq!(page["playing"], others, "page {i}: {page}");
        let videos = page["videos"].as_object().unwrap();
        let decoding: Vec<&Vec<serde_json::Value>> = videos
            .values()
            .map(|v| v.as_array().unwrap())
            .filter(|frames| frames.last().and_then(serde_json::Value::as_u64) > Some(0))
            .collect();
        assert_eq!(decoding.len(), others, "page {i} decodes {videos:?}");
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
        assert_eq!(hearing, others, "page {i} hears {audio:?}");
    }
}

/// A page connection for sending the API bad input directly.
struct RawPage {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawPage {
    async fn connect(node: &RunningNode) -> Self {
        let request = api_request(node, &page_headers(node));
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connects");
        let mut page = Self { socket };
        assert_eq!(page.next().await["type"], "hello");
        page
    }

    async fn send(&mut self, message: Message) {
        self.socket.send(message).await.expect("ws send");
    }

    /// The next JSON message from the node (skipping roster refreshes).
    async fn next(&mut self) -> serde_json::Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.socket.next())
                .await
                .expect("the node answers")
                .expect("the connection stays open")
                .expect("a frame");
            let Message::Text(text) = frame else { continue };
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "participants" && value["type"] != "slots" {
                return value;
            }
        }
    }

    /// Skips messages until one of type `kind` arrives.
    async fn until(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Sends `text` and returns the error the node answers with.
    async fn refused(&mut self, message: Message) -> String {
        self.send(message).await;
        let answer = self.next().await;
        assert_eq!(answer["type"], "error", "{answer}");
        answer["message"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_told_when_the_registry_stops_answering_and_when_it_answers_again() {
    init_tracing();
    let (chain, _room) = Chain::with_room("outage-page").await;
    let dir = tempfile::tempdir().unwrap();
    let node = chain
        .node_with(&dir.path().join("a"), 1, &[], serve_page)
        .await;
    let mut page = RawPage::connect(&node).await;
    page.send(Message::Text(
        r#"{"type":"join","room":"outage-page"}"#.into(),
    ))
    .await;
    page.until("joined").await;

    chain.proxy.cut();
    let notices = page.until("notices").await;
    let text = notices["notices"][0].as_str().unwrap_or_default();
    assert!(text.contains("registry has not answered"), "{notices}");
    chain.proxy.restore();
    let notices = page.until("notices").await;
    assert_eq!(notices["notices"], serde_json::json!([]), "{notices}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_page_api_gets_errors_and_the_node_keeps_serving() {
    init_tracing();
    let (chain, room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let node = chain
        .node_with(&dir.path().join("a"), 1, &[], serve_page)
        .await;
    let text = |s: &str| Message::Text(s.to_owned().into());

    let mut page = RawPage::connect(&node).await;
    let cases = [
        (text("not json"), "not a valid request"),
        (text(r#"{"type":"fly"}"#), "not a valid request"),
        (text(r#"{"type":"join"}"#), "not a valid request"),
        (Message::Binary(vec![1, 2, 3].into()), "binary messages"),
        (
            text(&format!(
                r#"{{"type":"chat","text":"{}"}}"#,
                "x".repeat(70_000)
            )),
            "over the limit",
        ),
        (text(r#"{"type":"chat","text":"early"}"#), "join a room"),
        (
            text(r#"{"type":"share_screen","sdp":"v=0"}"#),
            "join a room",
        ),
        (
            text(r#"{"type":"moderate","peer_id":"nobody","action":"mute"}"#),
            "join a room",
        ),
        (
            text(&format!(
                r#"{{"type":"sign_in","account":"0x{}","expires_at_unix":1,"signature":"0x00"}}"#,
                "ab".repeat(20)
            )),
            "65 bytes",
        ),
        (
            text(&format!(
                r#"{{"type":"sign_in","account":"0x{}","expires_at_unix":4000000000,"signature":"0x{}"}}"#,
                "ab".repeat(20),
                "00".repeat(65)
            )),
            "not signed in",
        ),
        (text(r#"{"type":"join","room":""}"#), "not a room name"),
        (
            text(r#"{"type":"join","room":"no-such-room"}"#),
            "there is no room",
        ),
        (
            text(r#"{"type":"playback_answer","offer":1,"sdp":"v=0"}"#),
            "no playback offer",
        ),
        (text(r#"{"type":"video_sizes","sizes":[]}"#), "join a room"),
        (
            text(r#"{"type":"video_sizes","sizes":[{"peer_id":"x","height":-1}]}"#),
            "not a valid request",
        ),
        (text(r#"{"type":"cue","cue":"raise_hand"}"#), "join a room"),
        (
            text(r#"{"type":"program","sdp":"v=0"}"#),
            "only a page that is live",
        ),
        (
            text(r#"{"type":"cue","cue":"shout"}"#),
            "not a valid request",
        ),
        (
            text(r#"{"type":"set_name","name":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}"#),
            "cannot be an account address",
        ),
        (
            text(&format!(
                r#"{{"type":"set_name","name":"{}"}}"#,
                "n".repeat(65)
            )),
            "at most 64 bytes",
        ),
    ];
    for (message, expected) in cases {
        let error = page.refused(message).await;
        assert!(
            error.contains(expected),
            "{error:?} should say {expected:?}"
        );
    }

    // The same connection still works: join, then a malformed offer is refused.
    page.send(text(r#"{"type":"join","room":"standup"}"#)).await;
    assert_eq!(page.next().await["type"], "joined");
    let offer = page.next().await;
    assert_eq!(offer["type"], "playback_offer");
    let error = page
        .refused(text(r#"{"type":"publish","sdp":"v=0\r\nnonsense"}"#))
        .await;
    assert!(error.contains("cannot send media"), "{error}");
    let error = page
        .refused(text(r#"{"type":"share_screen","sdp":"v=0\r\nnonsense"}"#))
        .await;
    assert!(error.contains("cannot send media"), "{error}");
    // A conference has no audience to compose a program for.
    let error = page
        .refused(text(r#"{"type":"program","sdp":"v=0"}"#))
        .await;
    assert!(error.contains("only a page that is live"), "{error}");
    let error = page
        .refused(text(
            r#"{"type":"cue","cue":"invite_to_stage","peer_id":"nobody"}"#,
        ))
        .await;
    assert!(error.contains("is not a PeerId"), "{error}");
    let error = page
        .refused(text(&format!(
            r#"{{"type":"playback_answer","offer":{},"sdp":"garbage"}}"#,
            offer["offer"]
        )))
        .await;
    assert!(error.contains("playback answer refused"), "{error}");
    let error = page
        .refused(text(
            r#"{"type":"video_sizes","sizes":[{"peer_id":"nobody","height":180}]}"#,
        ))
        .await;
    assert!(error.contains("is not a PeerId"), "{error}");
    let many = (0..65)
        .map(|_| r#"{"peer_id":"nobody","height":180}"#)
        .collect::<Vec<_>>()
        .join(",");
    let error = page
        .refused(text(&format!(
            r#"{{"type":"video_sizes","sizes":[{many}]}}"#
        )))
        .await;
    assert!(error.contains("at most 64"), "{error}");

    // A frame over the transport limit closes that connection only.
    let mut greedy = RawPage::connect(&node).await;
    // The node may reset the connection while the frame is still being written.
    let sent = greedy
        .socket
        .send(Message::Binary(vec![0; 2 * 1024 * 1024].into()))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        if sent.is_err() {
            return;
        }
        loop {
            match greedy.socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an oversized frame should close its connection"
    );

    // Everyone else is still served: the first page chats, a new page joins.
    page.send(text(r#"{"type":"chat","text":"still here"}"#))
        .await;
    let answer = page.next().await;
    // Alone in the room, the chat may find no gossip peer; either way the node answered.
    assert!(
        answer["type"] == "chat" || answer["type"] == "error",
        "{answer}"
    );
    let mut other = RawPage::connect(&node).await;
    other
        .send(text(r#"{"type":"join","room":"standup"}"#))
        .await;
    assert_eq!(other.next().await["type"], "joined");

    // Two pages of one node in one room: the first leaving keeps the node in the room.
    page.send(text(r#"{"type":"leave"}"#)).await;
    page.until("left").await;
    let present = node.participants(room).await.unwrap();
    assert!(present.iter().any(|p| p.is_self), "{present:?}");
    other.send(text(r#"{"type":"leave"}"#)).await;
    other.until("left").await;
    let present = node.participants(room).await.unwrap();
    assert!(present.iter().all(|p| !p.is_self), "{present:?}");

    // Another site's page cannot use the API: browsers send its origin, the node refuses
    // (even were the page's cookie to go along); so is a request with no origin at all (a
    // local program), and one without the page's key.
    let [cookie, origin] = page_headers(&node);
    let foreign = ("Origin", "http://evil.example".to_owned());
    for (headers, status) in [
        (vec![cookie.clone(), foreign.clone()], 403),
        (vec![cookie.clone()], 403),
        (vec![origin.clone()], 401),
        (vec![foreign], 401),
        (
            vec![("Cookie", "chroom_page=guess".to_owned()), origin],
            401,
        ),
    ] {
        match tokio_tungstenite::connect_async(api_request(&node, &headers)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), status, "{headers:?}");
            }
            other => panic!("{headers:?} got {other:?}"),
        }
    }
    // The page itself, by its link: the key becomes a cookie and the link loses it.
    let link = node.page_link().unwrap().replace("http://", "");
    let (host, path) = link.split_once('/').unwrap();
    let mut http = tokio::net::TcpStream::connect(host).await.unwrap();
    http.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    assert!(response.contains("set-cookie: chroom_page="), "{response}");
    assert!(response.contains("HttpOnly; SameSite=Strict"), "{response}");
    assert!(response.contains("location: /\r\n"), "{response}");
    let mut http = tokio::net::TcpStream::connect(host).await.unwrap();
    http.write_all(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 401"),
        "a page without its key: {response}"
    );

    // Unknown paths are a plain 404.
    let mut http = tokio::net::TcpStream::connect(node.web_addr().unwrap())
        .await
        .unwrap();
    http.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_space_negotiates_no_video_and_listeners_hear_speakers() {
    init_tracing();
    // Account 1 speaks, account 2 listens.
    let (chain, _room) =
        Chain::with_room_of_kind("fireside", chroom_types::RoomKind::AudioSpace).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2]).await;
    let [speaker, listener] = &nodes[..] else {
        unreachable!()
    };

    let seen = run_page_scenario(
        "audio-space.mjs",
        json!({
            "speaker": page_url(speaker),
            "listener": page_url(listener),
            "room": "fireside",
            "screenshots": screenshots(),
            // A listener's page captures nothing, so its browser offers no address of its own
            // (mDNS names at best) and sends nothing: it hears the speaker only through the
            // node's playback offer. Firefox, with its default ICE settings: Chromium
            // listeners are covered by the autoplay test.
            "listener_engine": "firefox",
        }),
        Duration::from_secs(120),
    )
    .await;
    // Audio only, both ways to the pages (the node's answer, and its playback offer).
    assert_eq!(seen["speaker_publish"], json!(["m=audio"]), "{seen}");
    let playback = seen["listener_playback"].as_array().unwrap();
    assert!(
        !playback.is_empty() && playback.iter().all(|m| m == "m=audio"),
        "{seen}"
    );
    // A listener's role does not let it send; the page does not try.
    assert_eq!(seen["listener_publishes"], false, "{seen}");
    assert_eq!(seen["listener_error"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["audience"], "1 speaking · 1 listening", "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_mutes_and_removes_a_member_and_every_node_carries_it_out() {
    init_tracing();
    // The room's owner (account 0) hosts from Firefox; account 1 speaks, account 2 listens.
    let (chain, _room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[0, 1, 2]).await;
    let seen = run_page_scenario(
        "moderation.mjs",
        json!({
            "room": "standup",
            "host": page_url(&nodes[0]),
            "speaker": page_url(&nodes[1]),
            "listener": page_url(&nodes[2]),
            "host_engine": "firefox",
        }),
        Duration::from_secs(150),
    )
    .await;

    // Only the host's page offers the controls; the listener's node refuses to moderate.
    assert_eq!(seen["host_buttons"], json!(["Mute", "Remove"]), "{seen}");
    assert_eq!(seen["listener_buttons"], 0, "{seen}");
    assert!(
        seen["listener_refusal"]
            .as_str()
            .unwrap()
            .contains("does not let you"),
        "{seen}"
    );
    // Muted, the speaker's voice reaches nobody, and its page cannot unmute it; unmuted, it
    // flows again (Opus sends 50 packets a second).
    assert!(seen["before_mute"].as_i64() > Some(25), "{seen}");
    assert_eq!(seen["speaker_mic_disabled"], true, "{seen}");
    assert_eq!(seen["while_muted"], 0, "{seen}");
    assert!(seen["after_unmute"].as_i64() > Some(25), "{seen}");
    // Removed, the speaker's page is out of the room and says who did it; the others list two,
    // say so in the chat, and still list two when the speaker comes back — which the host's node
    // answers by telling the room of the removal again, putting the speaker out again.
    let removal = seen["removal"].as_str().unwrap();
    assert!(removal.contains("removed you from standup"), "{removal}");
    assert!(
        removal.contains(&short_account(&chain.account(0).to_string())),
        "{removal}"
    );
    let notices: Vec<&str> = seen["notices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(
        notices.iter().any(|n| n.ends_with("muted 0x7099…79c8")),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.ends_with("removed 0x7099…79c8")),
        "{notices:?}"
    );
    let speaker = seen["speaker_peer"].as_str().unwrap();
    for page in ["host", "listener"] {
        let listed = seen["after_return"][page].as_array().unwrap();
        assert_eq!(listed.len(), 2, "{page}: {listed:?}");
        assert!(!listed.contains(&json!(speaker)), "{page}: {listed:?}");
    }
    assert_eq!(seen["removed_again"], true, "{seen}");
}

/// An account as the page abbreviates it: `0x7099…79c8`.
fn short_account(account: &str) -> String {
    format!("{}…{}", &account[..6], &account[account.len() - 4..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_signs_in_with_a_browser_wallet_and_its_node_acts_for_that_account() {
    init_tracing();
    let (chain, _room) = Chain::with_room("standup").await;
    let dir = tempfile::tempdir().unwrap();
    // This node has no account of its own: its user's wallet holds account 1 (a speaker).
    let accountless = chain
        .node_with(&dir.path().join("wallet"), 1, &[], |config| {
            serve_page(config);
            config.identity = None;
        })
        .await;
    assert_eq!(accountless.account(), None);
    let boot = [tcp_addr(&accountless).await];
    let other = chain
        .node_with(&dir.path().join("other"), 2, &boot, serve_page)
        .await;
    let wallet = chain.account(1).to_string();
    let seen = run_page_scenario(
        "wallet.mjs",
        json!({
            "room": "standup",
            "wallet_page": page_url(&accountless),
            "other_page": page_url(&other),
            "rpc": chain.anvil.endpoint(),
            "wallet_account": wallet,
        }),
        Duration::from_secs(120),
    )
    .await;

    let refusal = seen["refusal"].as_str().unwrap();
    assert!(refusal.contains("acts for no account"), "{refusal}");
    assert!(
        seen["who"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains(&wallet),
        "{seen}"
    );
    assert_eq!(accountless.account(), Some(chain.account(1)));
    // The other member's node proved the wallet's account from the binding and looked it up.
    let roster = seen["roster"].as_array().unwrap();
    let signed_in = roster
        .iter()
        .find(|p| p["peer"] == accountless.peer_id().to_base58().as_str())
        .unwrap_or_else(|| panic!("{roster:?}"));
    assert_eq!(signed_in["role"], "speaker", "{roster:?}");
    assert_eq!(signed_in["name"], short_account(&wallet), "{roster:?}");
    // Renewing the wallet's signature in the room is taken: the same account, a later end.
    let renewed = &seen["renewed"];
    assert_eq!(renewed["type"], "hello", "{renewed}");
    assert_eq!(
        renewed["account"].as_str().map(str::to_lowercase),
        Some(wallet)
    );
    assert!(renewed["wallet_until_unix"].as_u64().is_some(), "{renewed}");
    assert_eq!(seen["still_in_call"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_opening_an_audio_space_by_link_hears_it_after_one_click() {
    init_tracing();
    let (chain, _room) =
        Chain::with_room_of_kind("standup", chroom_types::RoomKind::AudioSpace).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2]).await;
    let seen = run_page_scenario(
        "autoplay.mjs",
        json!({
            "room": "standup",
            "first": page_url(&nodes[0]),
            "second": page_url(&nodes[1]),
        }),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(seen["paused_before"], true, "{seen}");
    assert_eq!(seen["paused_after"], false, "{seen}");
    assert_eq!(seen["prompt_after"], false, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presenter_goes_live_from_the_page_and_viewers_watch_through_the_tree() {
    init_tracing();
    let (chain, room) = Chain::with_room_of_kind("stage", chroom_types::RoomKind::Broadcast).await;
    chain.grant(room, 4, chroom_types::Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    // Account 1 presents; accounts 2 (in Chromium) and 4 (in Firefox) watch.
    let nodes = page_nodes(&chain, dir.path(), &[1, 2, 4]).await;
    let seen = run_page_scenario(
        "broadcast.mjs",
        json!({
            "room": "stage",
            "presenter": page_url(&nodes[0]),
            "viewers": [page_url(&nodes[1]), page_url(&nodes[2])],
            "viewer_engines": ["chromium", "firefox"],
            "screenshots": screenshots(),
        }),
        Duration::from_secs(150),
    )
    .await;

    assert!(
        seen["presenter_audience"]
            .as_str()
            .unwrap()
            .contains("live · 2 watching"),
        "{seen}"
    );
    for viewer in seen["viewers"].as_array().unwrap() {
        let frames = viewer["frames"].as_array().unwrap();
        assert!(
            frames[1].as_u64().unwrap() > frames[0].as_u64().unwrap() + 10,
            "the broadcast does not play: {viewer}"
        );
        assert_eq!(viewer["goLive"], false, "{viewer}");
    }
    let refusal = seen["viewers"][0]["refusal"].as_str().unwrap();
    assert!(refusal.contains("can go live"), "{refusal}");
    for after in seen["after_end"].as_array().unwrap() {
        assert!(
            after
                .as_str()
                .unwrap()
                .contains("waiting for the broadcast"),
            "{seen}"
        );
    }
    for frames in seen["again"].as_array().unwrap() {
        assert!(
            frames[1].as_u64() > frames[0].as_u64(),
            "not playing after going live again: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_offered_more_places_when_more_members_arrive_than_it_has() {
    init_tracing();
    // No registry: nine members with nothing to check, each linked to the page's node.
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::loopback(dir.path().join("page"));
    config.open_access = true;
    serve_page(&mut config);
    let node = RunningNode::start(config).await.unwrap();
    let boot = [tcp_addr(&node).await];
    let mut page = RawPage::connect(&node).await;
    page.send(Message::Text(r#"{"type":"join","room":"big"}"#.into()))
        .await;
    assert_eq!(page.until("joined").await["type"], "joined");
    let first = page.until("playback_offer").await;
    assert_eq!(first["slots"].as_array().unwrap().len(), 8);

    let room: chroom_types::RoomName = "big".parse().unwrap();
    let mut members = Vec::new();
    for i in 0..9 {
        let mut config = NodeConfig::loopback(dir.path().join(format!("member-{i}")));
        config.open_access = true;
        config.net.bootstrap = boot.to_vec();
        let member = RunningNode::start(config).await.unwrap();
        member
            .join(
                room.id(),
                Participation::Meet {
                    publish: vec![MediaKind::Audio],
                    receive: vec![MediaKind::Audio],
                },
            )
            .await
            .unwrap();
        members.push(member);
    }
    // The ninth member does not fit: the node offers a bigger link, in steps of eight.
    let bigger = tokio::time::timeout(Duration::from_secs(60), page.until("playback_offer"))
        .await
        .expect("a second playback offer");
    assert_eq!(bigger["slots"].as_array().unwrap().len(), 16, "{bigger}");
    for member in members {
        member.shutdown().await;
    }
    node.shutdown().await;
}
