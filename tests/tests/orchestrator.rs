//! The orchestrator across nodes: a room whose policy makes the first joiner host while no
//! on-chain host is present. Four members on their own nodes' pages; the on-chain host's node
//! is a `chroom` process, killed with `kill -9` and started again.

use std::time::Duration;

use chroom_node::RunningNode;
use chroom_tests::pages::page_nodes;
use chroom_tests::process::{NodeProcess, chroom_binary};
use chroom_tests::*;
use chroom_types::{HostFallback, Role, RoomPolicy};
use serde_json::json;

const ROOM: &str = "town-hall";

/// The page link of each of `nodes`.
fn page_links(nodes: &[RunningNode]) -> Vec<String> {
    nodes
        .iter()
        .map(|node| node.page_link().expect("the page is served").to_owned())
        .collect()
}

/// The config of the host's node process: the page, its account, the registry.
fn host_config(chain: &Chain, dir: &std::path::Path, boot: &libp2p::Multiaddr) -> String {
    let key = chain.key_file(dir, 0);
    format!(
        r#"[net]
listen = ["/ip4/127.0.0.1/tcp/0"]
bootstrap = ["{boot}"]

[media]
bind = "0.0.0.0:0"

[web]
listen = "127.0.0.1:0"

[identity]
account_key_file = "{key}"

[registry]
rpc_url = "{rpc}"
address = "{registry}"
poll_interval = "200ms"
"#,
        key = key.display(),
        rpc = chain.proxy.url(),
        registry = chain.registry.address(),
    )
}

/// The page link a node process printed (`web http://…`).
async fn page_link(process: &NodeProcess) -> String {
    eventually(Duration::from_secs(20), "the host's page link", || async {
        let log = std::fs::read_to_string(process.log_path()).ok()?;
        log.lines()
            .find_map(|line| line.strip_prefix("web "))
            .map(str::to_owned)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hosts_place_is_taken_by_the_policys_acting_host_and_reclaimed_on_return() {
    init_tracing();
    // Account 0 owns the room (an on-chain host); 1 speaks, 2 and 3 listen.
    let (chain, room) = Chain::with_room(ROOM).await;
    chain.grant(room, 3, Role::Listener).await;
    let policy = RoomPolicy {
        host_fallback: HostFallback::FirstJoiner,
        ..RoomPolicy::default()
    };
    chain.registry.set_room_policy(room, policy).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let members = page_nodes(&chain, dir.path(), &[1, 2, 3]).await;
    let boot = [tcp_addr(&members[0]).await];
    let host_dir = dir.path().join("host");
    let mut host = NodeProcess::spawn(&host_dir, &host_config(&chain, &host_dir, &boot[0]));
    host.started(Duration::from_secs(20)).await;
    let host_link = page_link(&host).await;
    let member_links = page_links(&members);

    let seen = run_page_scenario(
        "host-failover.mjs",
        json!({
            "room": ROOM,
            "host": {
                "url": host_link,
                "pid": host.pid(),
                "command": chroom_binary(),
                "args": ["node", "--config", host_dir.join("node.toml"), "--data-dir", &host_dir],
            },
            "members": member_links,
        }),
        Duration::from_secs(120),
    )
    .await;
    println!("{seen}");

    // Before the kill, members saw no host controls: only the on-chain host had them.
    assert_eq!(seen["controls_before"], json!([0, 0, 0]), "{seen}");
    // After it, every remaining page showed one acting host, the same one (the scenario
    // checks they agree), a member and not the dead host, within 5 s of the kill.
    let acting = seen["acting"].as_str().unwrap();
    assert!(
        seen["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == acting),
        "{seen}"
    );
    for waited in seen["failover_ms"].as_array().unwrap() {
        let waited = waited.as_u64().unwrap();
        assert!(
            waited <= 5_000,
            "a page showed the acting host {waited} ms after the kill"
        );
    }
    // The host came back and hosts again on every page, the returning node's own included.
    let host_peer = seen["host"].as_str().unwrap();
    for view in seen["after"].as_array().unwrap() {
        let hosts: Vec<&str> = view["participants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["hosting"] == true)
            .map(|p| p["peer"].as_str().unwrap())
            .collect();
        assert_eq!(hosts, [host_peer], "{seen}");
    }
    for member in members {
        member.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hands_queue_alike_a_listener_invited_on_stage_is_heard_until_taken_off_and_names_show() {
    init_tracing();
    // An audio space: account 0 owns it (hosts), 2 and 3 listen (3 from Firefox).
    let (chain, room) =
        Chain::with_room_of_kind("q-and-a", chroom_types::RoomKind::AudioSpace).await;
    chain.grant(room, 3, Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[0, 2, 3]).await;
    let links = page_links(&nodes);
    let seen = run_page_scenario(
        "hands.mjs",
        json!({ "room": "q-and-a", "host": links[0], "first": links[1], "second": links[2] }),
        Duration::from_secs(120),
    )
    .await;

    // A figure for docs/ORCHESTRATION.md, not a check (it depends on the machine's load).
    eprintln!(
        "invitation on stage → first packet heard by the host's page: {} ms",
        seen["grant_to_heard_ms"]
    );
    // Every page showed the same queue, first raised first (the scenario waits for it).
    let (first, second) = (&seen["first"], &seen["second"]);
    for view in seen["queued"].as_array().unwrap() {
        assert_eq!(view["hands"], json!([first, second]), "{seen}");
    }
    // The host's page offers the stage; a listener's offers nothing, and its node refuses.
    assert_eq!(
        seen["host_buttons"],
        json!(["Invite on stage", "Lower hand"]),
        "{seen}"
    );
    assert_eq!(seen["listener_buttons"], 0, "{seen}");
    assert!(
        seen["refusal"].as_str().unwrap().contains("only a host"),
        "{seen}"
    );
    for view in seen["invited"].as_array().unwrap() {
        assert_eq!(view["stage"], json!([first]), "{seen}");
        assert_eq!(view["hands"], json!([second]), "{seen}");
    }
    // Each listener's page highlighted the host, the one who speaks, as the active speaker,
    // and nobody who does not.
    for seen_by in seen["speakers_seen"].as_array().unwrap() {
        assert_eq!(seen_by, &json!([seen["host"]]), "{seen}");
    }
    // On stage, the listener was heard by the host and the other listener; off it, by nobody
    // (Opus sends 50 packets a second: over 2 s, tens).
    for heard in seen["heard_on_stage"].as_array().unwrap() {
        assert!(heard.as_i64() > Some(20), "{seen}");
    }
    assert_eq!(seen["heard_off_stage"], json!([0, 0]), "{seen}");
    // A display name shows beside the account on every page; an address is no name.
    for name in seen["names"].as_array().unwrap() {
        assert!(name.as_str().unwrap().starts_with("Ada · 0x"), "{seen}");
    }
    assert!(
        seen["name_refusal"]
            .as_str()
            .unwrap()
            .contains("cannot be an account address"),
        "{seen}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_presents_at_a_time_and_the_host_hands_the_presentation_over() {
    init_tracing();
    // A conference: account 0 owns it (hosts), 1 and 2 are members.
    let (chain, _room) = Chain::with_room("review").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[0, 1, 2]).await;
    let links = page_links(&nodes);
    let seen = run_page_scenario(
        "presenting.mjs",
        json!({ "room": "review", "host": links[0], "first": links[1], "second": links[2] }),
        Duration::from_secs(120),
    )
    .await;

    let (first, second) = (&seen["first"], &seen["second"]);
    for view in seen["first_presents"].as_array().unwrap() {
        assert_eq!(view["presenting"], json!([first]), "{seen}");
    }
    // Asking while another presents puts a member in line without capturing its screen, and
    // its node refuses a screen offer meanwhile.
    for view in seen["in_line"].as_array().unwrap() {
        assert_eq!(view["presenting"], json!([first]), "{seen}");
        assert_eq!(view["asking"], json!([second]), "{seen}");
    }
    assert_eq!(seen["second_sharing_while_in_line"], false, "{seen}");
    assert!(
        seen["refusal"]
            .as_str()
            .unwrap()
            .contains("in line to present"),
        "{seen}"
    );
    // Handed over: every page shows the second presenting, then its screen.
    for view in seen["handed_over"].as_array().unwrap() {
        assert_eq!(view["presenting"], json!([second]), "{seen}");
    }
    for view in seen["second_shown"].as_array().unwrap() {
        assert_eq!(view["shown"], *second, "{seen}");
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webinars_viewers_ask_the_hosts_within_a_rate() {
    init_tracing();
    // A broadcast: account 0 owns it (hosts), 2 and 3 watch.
    let (chain, room) =
        Chain::with_room_of_kind("webinar", chroom_types::RoomKind::Broadcast).await;
    chain.grant(room, 3, Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[0, 2, 3]).await;
    let links = page_links(&nodes);
    let seen = run_page_scenario(
        "questions.mjs",
        json!({ "room": "webinar", "host": links[0], "asker": links[1], "other": links[2] }),
        Duration::from_secs(120),
    )
    .await;

    let asked = json!([
        "Will the slides be shared?",
        "Is there a recording?",
        "Which chain is it on?"
    ]);
    assert_eq!(seen["ask_button"], true, "{seen}");
    // The host's page lists the three questions; the other viewer's shows none.
    assert_eq!(seen["host"], asked, "{seen}");
    assert_eq!(seen["asker"], asked, "{seen}");
    assert_eq!(seen["other"], json!([]), "{seen}");
    // The fourth at once is refused by the asker's own node.
    assert!(
        seen["refusal"].as_str().unwrap().contains("too often"),
        "{seen}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_going_live_at_once_leave_one_broadcast_and_the_other_page_watches_it() {
    init_tracing();
    // A broadcast: account 0 owns it and account 1 presents (both may go live); 2 watches.
    let (chain, _room) =
        Chain::with_room_of_kind("launch", chroom_types::RoomKind::Broadcast).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[0, 1, 2]).await;
    let links = page_links(&nodes);
    let seen = run_page_scenario(
        "two-live.mjs",
        json!({ "room": "launch", "first": links[0], "second": links[1], "viewer": links[2] }),
        Duration::from_secs(180),
    )
    .await;

    eprintln!("two go-live claims: {seen}");
    // One broadcast. Either both nodes went live and the same claim won on every node (the
    // lower node id's), or the second node already knew of the first and refused its page.
    let peers: Vec<String> = serde_json::from_value(seen["peers"].clone()).unwrap();
    let live: Vec<bool> = serde_json::from_value(seen["live"].clone()).unwrap();
    assert_eq!(live.iter().filter(|l| **l).count(), 1, "{seen}");
    let winner = &peers[live.iter().position(|l| *l).unwrap()];
    assert_eq!(seen["still_live"], true, "{seen}");
    let told = seen["told"].as_str().unwrap();
    if told.contains("went live at the same moment") {
        assert_eq!(winner, peers.iter().min().unwrap(), "{seen}");
    } else {
        assert!(told.contains("is live in this room"), "{seen}");
    }
    assert!(
        seen["audience"]
            .as_str()
            .unwrap()
            .contains("live · 2 watching"),
        "{seen}"
    );
    // The other page and the viewer play the winner's broadcast, and nothing else.
    for frames in ["loser_frames", "viewer_frames"] {
        let frames: Vec<u64> = serde_json::from_value(seen[frames].clone()).unwrap();
        assert!(frames[1] > frames[0] + 10, "{seen}");
    }
    assert_eq!(seen["viewer_shows"], json!([winner]), "{seen}");
    assert!(
        seen["again"]
            .as_str()
            .unwrap()
            .contains("is live in this room"),
        "{seen}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_invited_on_a_broadcasts_stage_is_in_the_program_its_audience_watches() {
    init_tracing();
    // A broadcast: account 0 owns it (hosts, goes live, from Firefox), 2 and 3 watch.
    let (chain, room) = Chain::with_room_of_kind("studio", chroom_types::RoomKind::Broadcast).await;
    chain.grant(room, 3, Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[0, 2, 3]).await;
    let links = page_links(&nodes);
    let seen = run_page_scenario(
        "broadcast-stage.mjs",
        json!({ "room": "studio", "host": links[0], "guest": links[1], "viewer": links[2] }),
        Duration::from_secs(180),
    )
    .await;

    eprintln!("a broadcast's stage: {seen}");
    let (host, guest) = (&seen["host"], &seen["guest"]);
    assert!(
        seen["audience"].as_str().unwrap().contains("on stage"),
        "{seen}"
    );
    // On stage, the guest's camera and microphone reach the broadcaster's page (Opus sends
    // 50 packets a second, the fake cameras tens of frames: over 2 s, both well above 10),
    // and the guest sees and hears the broadcaster over the studio's link.
    for got in ["host_from_guest", "guest_from_host"] {
        assert!(seen[got]["frames"].as_i64() > Some(10), "{got}: {seen}");
        assert!(seen[got]["audio"].as_i64() > Some(20), "{got}: {seen}");
    }
    // A picture's shape says how many 16:9 cameras it holds side by side (a browser short of
    // bandwidth may scale it down, never reshape it).
    let tiles = |got: &serde_json::Value| {
        let (width, height) = (
            got["width"].as_f64().unwrap(),
            got["height"].as_f64().unwrap(),
        );
        (width / height * 9.0 / 16.0).round()
    };
    // The guest gets the broadcaster's own camera, never the program that holds its own
    // picture and voice.
    assert_eq!(tiles(&seen["guest_from_host"]), 1.0, "{seen}");
    // The other viewer watches the program through the tree: both cameras side by side,
    // frames and sound flowing.
    assert_eq!(tiles(&seen["viewer_from_host"]), 2.0, "{seen}");
    assert_eq!(
        seen["mixed_voices"], 2,
        "the host's and the guest's: {seen}"
    );
    assert!(
        seen["viewer_from_host"]["frames"].as_i64() > Some(10),
        "{seen}"
    );
    assert!(
        seen["viewer_from_host"]["audio"].as_i64() > Some(20),
        "{seen}"
    );
    assert_eq!(seen["viewer_shows"], json!([host]), "{seen}");
    // Off stage: the host's page shows nobody but itself, the guest watches again, and the
    // audience gets the host's own camera again.
    assert_eq!(seen["host_shows_after"], json!([host]), "{seen}");
    assert!(
        seen["guest_watches_after"]["frames"].as_i64() > Some(10),
        "{seen}"
    );
    assert_eq!(tiles(&seen["viewer_after"]), 1.0, "{seen}");
    assert!(seen["viewer_after"]["frames"].as_i64() > Some(10), "{seen}");
    assert!(seen["viewer_after"]["audio"].as_i64() > Some(20), "{seen}");
    // Figures for docs/ORCHESTRATION.md, not checks (they depend on the machine's load).
    eprintln!(
        "invitation on stage → guest's page in the studio, host's page composing, program \
         decoded by the other viewer (ms): {}",
        seen["invite_ms"]
    );
    assert_ne!(host, guest);
    for node in nodes {
        node.shutdown().await;
    }
}
