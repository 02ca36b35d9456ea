//! WHIP ingest (RFC 9725) on a node's web server: aiortc (a WebRTC stack that is no browser)
//! streams a test pattern into a registry conference through its user's node, trickling its
//! candidates; a recorder node records the frames and ffprobe reads the files; the client's
//! DELETE takes the node out of the room. Bad WHIP requests get RFC 9725's status codes and the
//! node keeps serving. WHEP players (aiortc, Chromium) watch a broadcast through a viewer's
//! node, and a conference's active speaker. (Debian's `whip-client` cannot be used here: the
//! README says why.)

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chroom_node::RunningNode;
use chroom_node::publish::{AudioLevel, Looping, MediaSource, publish};
use chroom_node::record::{RecordStats, Recorder};
use chroom_room::Participation;
use chroom_tests::pages::serve_page;
use chroom_tests::{
    Chain, eventually, ffprobe_codec, fixtures, init_tracing, run_aiortc_whep, run_aiortc_whip,
    run_page_scenario, small_video_fixture, tcp_addr,
};
use chroom_types::{MediaKind, Role, RoomId, RoomKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Video frames the test pattern runs for (30 per second).
const STREAM_FRAMES: u64 = 360;
/// The RTP clock ticks between two of its frames (90 kHz at 30 fps).
const FRAME_TICKS: u64 = 3000;

/// An answer: status, headers (lowercase names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// One HTTP/1.1 request to `addr` (its own connection).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an http answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A WHIP offer to send VP8 video, as a client makes it (DTLS fingerprint and ICE
/// credentials made up: nothing connects, the session is only set up and torn down).
const OFFER: &str = "v=0\r\n\
o=- 4215775240449105457 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:whipT\r\n\
a=ice-pwd:whiptestpasswordwhiptest\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=ssrc:1111 cname:whiptest\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_streams_into_a_conference_and_a_recorder_records_it() {
    init_tracing();
    // Account 1 may speak in the conference: its node takes the WHIP stream. Account 2's
    // node records the room.
    let (chain, room) = Chain::with_room("whip-studio").await;
    let dir = tempfile::tempdir().unwrap();
    let studio = chain
        .node_with(&dir.path().join("studio"), 1, &[], serve_page)
        .await;
    let boot = [tcp_addr(&studio).await];
    let mut recorder = chain.node(&dir.path().join("recorder"), 2, &boot).await;
    let mut frames = recorder.take_frames().unwrap();
    recorder
        .join(
            room,
            Participation::Receive(vec![MediaKind::Audio, MediaKind::Video]),
        )
        .await
        .unwrap();

    let url = format!("http://{}/whip/whip-studio", studio.web_addr().unwrap());
    let token = studio.whip_token().expect("the page is served").to_owned();
    let client = run_aiortc_whip(&url, &token, STREAM_FRAMES);

    let out = dir.path().join("out");
    let record = async {
        let mut writer = Recorder::new(&out, Instant::now()).unwrap();
        let mut video_times = BTreeSet::new();
        let mut audio_frames = 0u64;
        let mut first_frame_at = None;
        // Until the stream ends: once frames flow, a pause of 3 s means it did.
        let mut quiet = Duration::from_secs(40);
        while let Ok(Some(frame)) = tokio::time::timeout(quiet, frames.recv()).await {
            assert_eq!(frame.peer, studio.peer_id());
            first_frame_at.get_or_insert_with(SystemTime::now);
            quiet = Duration::from_secs(3);
            match frame.frame.kind {
                MediaKind::Video => {
                    video_times.insert(frame.frame.rtp_time);
                }
                MediaKind::Audio => audio_frames += 1,
            }
            writer.write(&frame).unwrap();
        }
        (
            writer.finish().unwrap(),
            video_times,
            audio_frames,
            first_frame_at,
        )
    };
    let (seen, (stats, video_times, audio_frames, first_frame_at)) = tokio::join!(client, record);

    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["post"], 201, "{seen}");
    assert_eq!(seen["patch"], 204, "{seen}");
    assert_eq!(seen["delete"], 200, "{seen}");
    assert_eq!(seen["delete_again"], 404, "{seen}");
    let first_frame_at = first_frame_at.expect("frames arrived from the whip publisher");
    let posted_at = UNIX_EPOCH + Duration::from_millis(seen["posted_at_unix_ms"].as_u64().unwrap());
    let post_to_first_frame = first_frame_at.duration_since(posted_at).unwrap_or_default();
    println!("whip POST to the recorder's first frame: {post_to_first_frame:?}");

    // Every frame sent from the first the recorder saw to the last, less 1 %.
    let sent_total = seen["sent_video"].as_u64().unwrap();
    let (first, last) = (
        *video_times.first().expect("video arrived"),
        *video_times.last().unwrap(),
    );
    let sent = (last - first) / FRAME_TICKS + 1;
    let received = video_times.len() as u64;
    println!(
        "video frames: {received} of the {sent} sent since the recorder's first \
         ({sent_total} sent in all); audio frames: {audio_frames}"
    );
    assert_eq!(sent_total, STREAM_FRAMES, "{seen}");
    assert!(
        received * 100 >= sent * 99,
        "the recorder got {received} of the {sent} frames sent since its first"
    );
    // What was sent before the studio's link to the recorder was up is gone; little was.
    assert!(
        received * 10 >= sent_total * 9,
        "only {received} of {sent_total} frames"
    );
    assert!(audio_frames > 200, "audio frames: {audio_frames}");
    check_files(&stats);

    // The DELETE took the studio out of the room (no page of its user is in it).
    left_room(&recorder, room, &studio).await;
    recorder.shutdown().await;
    studio.shutdown().await;
}

fn check_files(stats: &RecordStats) {
    assert_eq!(stats.publishers.len(), 1, "{stats:?}");
    let recording = &stats.publishers[0];
    for (path, codec) in [
        (&recording.video_path, "vp8"),
        (&recording.audio_path, "opus"),
    ] {
        let path = path
            .as_ref()
            .unwrap_or_else(|| panic!("no {codec} recorded: {stats:?}"));
        ffprobe_reads(path, codec);
    }
}

fn ffprobe_reads(path: &Path, codec: &str) {
    assert_eq!(ffprobe_codec(path), codec, "{}", path.display());
}

/// Waits until `node` no longer lists `gone` in `room`.
async fn left_room(node: &RunningNode, room: RoomId, gone: &RunningNode) {
    let gone = gone.peer_id();
    eventually(
        Duration::from_secs(30),
        "the studio leaves the room",
        || async {
            let present = node.participants(room).await.unwrap();
            (!present.iter().any(|p| p.peer == gone)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whip_requests_get_rfc_status_codes_and_the_node_keeps_serving() {
    init_tracing();
    let (chain, _room) = Chain::with_room("whip-desk").await;
    let dir = tempfile::tempdir().unwrap();
    let node = chain
        .node_with(&dir.path().join("speaker"), 1, &[], serve_page)
        .await;
    let addr = node.web_addr().unwrap();
    let token = node.whip_token().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());
    let sdp = ("Content-Type", "application/sdp");
    let frag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let path = "/whip/whip-desk";

    // A client that goes away without a DELETE: its link never connects, and when it times
    // out the session ends by itself (checked last).
    let abandoned = http(addr, "POST", path, &[auth, sdp], OFFER).await;
    assert_eq!(abandoned.status, 201, "{abandoned:?}");
    let abandoned = abandoned.headers["location"].clone();

    // A browser's preflight needs no token and learns what it may send.
    let answer = http(
        addr,
        "OPTIONS",
        path,
        &[("Origin", "https://studio.example")],
        "",
    )
    .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert!(answer.headers["access-control-allow-headers"].contains("Authorization"));
    assert_eq!(answer.headers["accept-post"], "application/sdp");

    // No token, another token, the page's key instead: 401 with a Bearer challenge.
    let page_key = node
        .page_link()
        .unwrap()
        .split_once("token=")
        .unwrap()
        .1
        .to_owned();
    for headers in [
        vec![sdp],
        vec![sdp, ("Authorization", "Bearer 00")],
        vec![sdp, ("Authorization", &*format!("Bearer {page_key}"))],
        vec![sdp, ("Authorization", &*token)],
    ] {
        let answer = http(addr, "POST", path, &headers, OFFER).await;
        assert_eq!(answer.status, 401, "{headers:?}: {answer:?}");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
    }
    // Not SDP: 415. SDP that is not an offer: 400.
    for content_type in ["text/plain", "application/json"] {
        let answer = http(
            addr,
            "POST",
            path,
            &[auth, ("Content-Type", content_type)],
            OFFER,
        )
        .await;
        assert_eq!(answer.status, 415, "{content_type}: {answer:?}");
    }
    let answer = http(addr, "POST", path, &[auth], OFFER).await;
    assert_eq!(answer.status, 415, "no content type: {answer:?}");
    for body in [
        "",
        "hello",
        "v=0\r\nm=video 9 nonsense\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n",
    ] {
        let answer = http(addr, "POST", path, &[auth, sdp], body).await;
        assert_eq!(answer.status, 400, "{body:?}: {answer:?}");
    }
    // Sessions that do not exist: 404.
    for method in ["PATCH", "DELETE"] {
        let headers: &[(&str, &str)] = if method == "PATCH" {
            &[auth, frag]
        } else {
            &[auth]
        };
        let answer = http(
            addr,
            method,
            "/whip/whip-desk/0123abcd",
            headers,
            "a=end-of-candidates\r\n",
        )
        .await;
        assert_eq!(answer.status, 404, "{method}: {answer:?}");
    }

    // The node still serves: a good offer gets its session.
    let answer = http(addr, "POST", path, &[auth, sdp], OFFER).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.headers["content-type"], "application/sdp");
    assert!(answer.body.starts_with("v=0"), "{answer:?}");
    assert!(
        answer.body.contains("a=candidate:"),
        "the answer names the node's addresses"
    );
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    let location = answer.headers["location"].clone();
    assert!(location.starts_with("/whip/whip-desk/"), "{location}");

    // Trickle: its candidates 204; a wrong type 415; a broken candidate 400; another
    // ufrag (an ICE restart) 422; PATCH without the token 401.
    let candidates = "a=ice-ufrag:whipT\r\na=ice-pwd:whiptestpasswordwhiptest\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n";
    let answer = http(addr, "PATCH", &location, &[auth, frag], candidates).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let answer = http(addr, "PATCH", &location, &[auth, sdp], candidates).await;
    assert_eq!(answer.status, 415, "{answer:?}");
    let answer = http(
        addr,
        "PATCH",
        &location,
        &[auth, frag],
        "a=candidate:1 1 udp nonsense\r\n",
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let answer = http(
        addr,
        "PATCH",
        &location,
        &[auth, frag],
        "a=ice-ufrag:other\r\na=ice-pwd:otherotherotherotherother\r\n",
    )
    .await;
    assert_eq!(answer.status, 422, "{answer:?}");
    let answer = http(addr, "PATCH", &location, &[frag], candidates).await;
    assert_eq!(answer.status, 401, "{answer:?}");

    // DELETE ends it: 200, then it is unknown.
    let answer = http(addr, "DELETE", &location, &[], "").await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = http(addr, "DELETE", &location, &[auth], "").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = http(addr, "DELETE", &location, &[auth], "").await;
    assert_eq!(answer.status, 404, "{answer:?}");
    let answer = http(addr, "PATCH", &location, &[auth, frag], candidates).await;
    assert_eq!(answer.status, 404, "{answer:?}");

    eventually(
        Duration::from_secs(40),
        "the abandoned session to end",
        || async {
            let end = "a=end-of-candidates\r\n";
            let answer = http(addr, "PATCH", &abandoned, &[auth, frag], end).await;
            assert!([204, 404].contains(&answer.status), "{answer:?}");
            (answer.status == 404).then_some(())
        },
    )
    .await;

    // WHEP takes the same token and gets the same checks; a player must offer to receive
    // audio (the offer above only sends video).
    let answer = http(addr, "POST", "/whep/whip-desk", &[sdp], OFFER).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = http(addr, "POST", "/whep/whip-desk", &[auth, frag], OFFER).await;
    assert_eq!(answer.status, 415, "{answer:?}");
    let answer = http(addr, "POST", "/whep/whip-desk", &[auth, sdp], OFFER).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let answer = http(addr, "DELETE", "/whep/whip-desk/0123abcd", &[auth], "").await;
    assert_eq!(answer.status, 404, "{answer:?}");

    // The registry decides: a stranger's node (account 3 has no role in the room) may not
    // publish there with its own token.
    let stranger = chain
        .node_with(&dir.path().join("stranger"), 3, &[], serve_page)
        .await;
    let bearer = format!("Bearer {}", stranger.whip_token().unwrap());
    let answer = http(
        stranger.web_addr().unwrap(),
        "POST",
        path,
        &[("Authorization", &bearer), sdp],
        OFFER,
    )
    .await;
    assert_eq!(answer.status, 403, "{answer:?}");
    stranger.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_watches_a_broadcast_through_a_viewers_node() {
    init_tracing();
    // Account 1 broadcasts the fixtures; account 2 may only watch: its node serves a WHEP
    // player (aiortc), which sees the broadcast through the node's place in the tree.
    let (chain, room) = Chain::with_room_of_kind("whep-show", RoomKind::Broadcast).await;
    let dir = tempfile::tempdir().unwrap();
    let root = chain.node(&dir.path().join("root"), 1, &[]).await;
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    root.join(
        room,
        Participation::Broadcast {
            kinds: source.kinds(),
            capacity: 4,
        },
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let playing = publish(&root, &source, Looping::Forever, cancel.clone());
    let boot = [tcp_addr(&root).await];
    let viewer = chain
        .node_with(&dir.path().join("viewer"), 2, &boot, serve_page)
        .await;
    let url = format!("http://{}/whep/whep-show", viewer.web_addr().unwrap());
    let token = viewer.whip_token().unwrap().to_owned();

    // A listener's node may watch but not publish into the broadcast.
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/sdp"),
    ];
    let refused = http(
        viewer.web_addr().unwrap(),
        "POST",
        "/whip/whep-show",
        &headers,
        OFFER,
    )
    .await;
    assert_eq!(refused.status, 403, "{refused:?}");

    // aiortc, then Chromium on a page of another origin (`localhost` is not `127.0.0.1`):
    // its fetches pass the CORS preflight.
    let web = viewer.web_addr().unwrap();
    let chromium_input = serde_json::json!({
        "origin": format!("http://localhost:{}/", web.port()),
        "url": url,
        "token": token,
        "seconds": 8,
    });
    let players = async {
        let aiortc = run_aiortc_whep(&url, &token, 12).await;
        let chromium = run_page_scenario("whep.mjs", chromium_input, Duration::from_secs(90)).await;
        (aiortc, chromium)
    };
    let (seen, chromium) = tokio::select! {
        seen = players => seen,
        stopped = playing => panic!("the broadcaster stopped: {stopped:?}"),
    };
    cancel.cancel();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["post"], 201, "{seen}");
    assert_eq!(seen["delete"], 200, "{seen}");
    assert!(seen["decoded"]["video"].as_u64() > Some(100), "{seen}");
    assert!(seen["decoded"]["audio"].as_u64() > Some(200), "{seen}");
    assert_eq!(chromium["post"], 201, "{chromium}");
    assert_eq!(chromium["state"], "connected", "{chromium}");
    assert_eq!(chromium["delete"], 200, "{chromium}");
    assert!(chromium["video_frames"].as_u64() > Some(100), "{chromium}");
    assert!(chromium["audio_packets"].as_u64() > Some(200), "{chromium}");
    // The DELETE took the viewer's node out of the broadcast (no page of its user is in it).
    left_room(&root, room, &viewer).await;
    viewer.shutdown().await;
    root.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_watches_a_conferences_active_speaker() {
    init_tracing();
    // Accounts 1 and 3 speak in a conference, each a headless publisher whose audio packets
    // carry a level; 1's camera is 640 × 360, 3's 320 × 180, so the player tells them apart.
    // Account 2's node serves a WHEP player (aiortc): it must show whoever speaks.
    let (chain, room) = Chain::with_room("whep-call").await;
    chain.grant(room, 3, Role::Speaker).await;
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let first_level = AudioLevel::new(-20);
    let second_level = AudioLevel::new(-127);
    let first_source = MediaSource::load(Some(&video), Some(&audio))
        .unwrap()
        .with_audio_level(first_level.clone());
    let second_source = MediaSource::load(Some(&small_video_fixture()), Some(&audio))
        .unwrap()
        .with_audio_level(second_level.clone());
    let first = chain.node(&dir.path().join("first"), 1, &[]).await;
    let boot = [tcp_addr(&first).await];
    let second = chain.node(&dir.path().join("second"), 3, &boot).await;
    for (node, source) in [(&first, &first_source), (&second, &second_source)] {
        node.join(room, Participation::Publish(source.kinds()))
            .await
            .unwrap();
    }
    let cancel = CancellationToken::new();
    let playing = async {
        tokio::try_join!(
            publish(&first, &first_source, Looping::Forever, cancel.clone()),
            publish(&second, &second_source, Looping::Forever, cancel.clone()),
        )
    };
    let viewer = chain
        .node_with(&dir.path().join("viewer"), 2, &boot, serve_page)
        .await;
    let url = format!("http://{}/whep/whep-call", viewer.web_addr().unwrap());
    let token = viewer.whip_token().unwrap().to_owned();
    let watch = async {
        // The viewer's user is in the room already (as a page would have it), receiving both,
        // so the player's first picture is the speaker's, not whoever linked first.
        viewer
            .join(
                room,
                Participation::Meet {
                    publish: vec![],
                    receive: vec![MediaKind::Audio, MediaKind::Video],
                },
            )
            .await
            .unwrap();
        eventually(
            Duration::from_secs(30),
            "both publishers received",
            || async { (viewer.receiving_from(room).await.ok()?.len() == 2).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The first speaks; 8 s into the session it falls silent and the second speaks.
        let switch = async {
            tokio::time::sleep(Duration::from_secs(8)).await;
            first_level.set(-127);
            second_level.set(-20);
            unix_ms()
        };
        tokio::join!(run_aiortc_whep(&url, &token, 14), switch)
    };
    let (seen, switched_at) = tokio::select! {
        seen = watch => seen,
        stopped = playing => panic!("a publisher stopped: {stopped:?}"),
    };
    cancel.cancel();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(
        (&seen["post"], &seen["delete"]),
        (&201.into(), &200.into()),
        "{seen}"
    );
    // It showed the first speaker, then the second once the first fell silent, and nothing in
    // between: no flapping, no black.
    let shown: Vec<(u64, u64)> = seen["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[1].as_u64().unwrap(), s[2].as_u64().unwrap()))
        .collect();
    assert_eq!(shown, vec![(640, 360), (320, 180)], "{seen}");
    // How long the floor took to change hands, to the first frame of the new speaker: the
    // detector's smoothing and hold, the player's next check, the new speaker's keyframe.
    let shown_at =
        seen["started_unix_ms"].as_u64().unwrap() + seen["sizes"][1][0].as_u64().unwrap();
    let took = shown_at.saturating_sub(switched_at);
    println!("the player showed the new speaker {took} ms after the speakers changed");
    assert!(took < 5_000, "{took} ms: {seen}");
    assert!(seen["decoded"]["audio"].as_u64() > Some(200), "{seen}");
    viewer.shutdown().await;
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_in_a_broadcast_room_goes_live_as_the_root_of_its_tree() {
    init_tracing();
    // Account 1 may broadcast: the WHIP stream makes its node the root. Account 2's node
    // watches as a viewer, fed through the tree.
    let (chain, room) = Chain::with_room_of_kind("whip-live", RoomKind::Broadcast).await;
    let dir = tempfile::tempdir().unwrap();
    let studio = chain
        .node_with(&dir.path().join("studio"), 1, &[], serve_page)
        .await;
    let boot = [tcp_addr(&studio).await];
    let mut viewer = chain.node(&dir.path().join("viewer"), 2, &boot).await;
    let mut frames = viewer.take_frames().unwrap();
    viewer
        .join(
            room,
            Participation::View(vec![MediaKind::Audio, MediaKind::Video]),
        )
        .await
        .unwrap();
    let url = format!("http://{}/whip/whip-live", studio.web_addr().unwrap());
    let token = studio.whip_token().unwrap().to_owned();
    let client = run_aiortc_whip(&url, &token, 240);
    let watched = async {
        let mut video = BTreeSet::new();
        let mut quiet = Duration::from_secs(40);
        while let Ok(Some(frame)) = tokio::time::timeout(quiet, frames.recv()).await {
            assert_eq!(frame.peer, studio.peer_id());
            quiet = Duration::from_secs(3);
            if frame.frame.kind == MediaKind::Video {
                video.insert(frame.frame.rtp_time);
            }
        }
        video
    };
    let (seen, video) = tokio::join!(client, watched);
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["post"], 201, "{seen}");
    assert_eq!(seen["delete"], 200, "{seen}");
    let (first, last) = (
        *video.first().expect("video arrived"),
        *video.last().unwrap(),
    );
    let sent = (last - first) / FRAME_TICKS + 1;
    let received = video.len() as u64;
    println!("broadcast viewer: {received} of the {sent} frames sent since its first");
    assert!(received * 100 >= sent * 99, "{received} of {sent}");
    assert!(received >= 200, "only {received} of 240 frames");
    viewer.shutdown().await;
    studio.shutdown().await;
}

/// Now, in milliseconds since the Unix epoch (to compare with a client's clock).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}
