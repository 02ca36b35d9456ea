//! Pages behind NATs (issue 13): a Chromium page inside a NATed home joins a conference with a
//! page in another home. Each home (a lab router translating for its LAN) has one host running
//! a `chroom node` that serves its page, and Debian's Chromium beside it in the same namespace,
//! opening the page on that host's loopback as a user at home does. The nodes only meet
//! through the devnet's public bootstrap node and relayer; the pages send their fake cameras
//! and microphones, and each must decode the other member's video and audio. Each test prints
//! the path the nodes' link took and checks it is the one the NATs allow: direct (hole
//! punched) between two port-preserving NATs, through the relayer when one home is behind a
//! symmetric NAT.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use chroom_tests::lab::{Host, Nat};
use chroom_tests::lab_devnet::{LabDevnet, link_remote, page_link};
use chroom_tests::process::NodeProcess;
use chroom_tests::{eventually, init_tracing, run_page_scenario_in};
use chroom_types::{Role, RoomKind};

/// The conference both pages join.
const ROOM: &str = "across-homes";
/// Anvil accounts of the two members: both speak (account 2 is granted it; `add_room` makes it
/// a listener).
const MEMBERS: [usize; 2] = [1, 2];
/// The page server of each node, on its own host's loopback.
const WEB_SECTION: &str = "\n[web]\nlisten = \"127.0.0.1:7800\"\n";
/// Video frames each page must decode of the other's camera: a second of it at 30 fps.
const FRAMES: u64 = 30;
/// Audio samples each page must receive of the other's microphone: half a second at 48 kHz.
const AUDIO_SAMPLES: u64 = 24_000;
/// How long a page may take from opening to having decoded enough, and waited for the other.
/// Two Chromiums, four nodes and the chain share two cores.
const PAGE_TIMEOUT: Duration = Duration::from_secs(70);

/// One member: a node in a home and the page its scenario drives.
struct Member {
    host: Host,
    node: NodeProcess,
    url: String,
}

/// The path the media of a call takes between the two homes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaPath {
    /// Straight between the homes' routers, through the holes the nodes punched.
    Direct,
    /// Through the relayer's allocation for a node no peer can reach.
    Relayed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_two_homes_behind_port_preserving_nats_call_directly() {
    call_across(
        [Nat::PortPreserving, Nat::PortPreserving],
        MediaPath::Direct,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_behind_a_symmetric_nat_calls_a_page_in_another_home_through_the_relayer() {
    // A symmetric NAT maps each destination to a new port, which the other home's NAT (which
    // filters replies by the address they came from) never lets in: no hole can be punched.
    call_across([Nat::PortPreserving, Nat::Symmetric], MediaPath::Relayed).await;
}

/// Two pages in homes behind `nats` call each other (see the module docs); the nodes' link
/// must take `expected`.
async fn call_across(nats: [Nat; 2], expected: MediaPath) {
    init_tracing();
    let began = Instant::now();
    let mut devnet = LabDevnet::start().await;
    let room = devnet.chain.add_room(ROOM, RoomKind::Conference).await;
    devnet.chain.grant(room, MEMBERS[1], Role::Speaker).await;
    let lab = &mut devnet.lab;
    let mut hosts = Vec::new();
    for (name, nat) in ["home-a", "home-b"].into_iter().zip(nats) {
        let mut home = lab.home(name, nat).unwrap();
        hosts.push(lab.home_host(&mut home, &format!("{name}-pc")).unwrap());
    }
    let mut members = Vec::new();
    for (host, account) in hosts.into_iter().zip(MEMBERS) {
        let name = format!("member-{account}");
        let mut node = devnet.node(&host, account, &name, &["node"], WEB_SECTION);
        node.started(Duration::from_secs(30)).await;
        // The node prints its page's link (with the page's key) after its peer id.
        let url = eventually(Duration::from_secs(10), "the page link", || async {
            page_link(&node.log_tail(usize::MAX))
        })
        .await;
        members.push(Member { host, node, url });
    }

    let (a, b) = (&members[0], &members[1]);
    let (seen_a, seen_b) =
        tokio::join!(page_call(a, b, devnet.dir()), page_call(b, a, devnet.dir()));

    for (me, other, seen) in [(a, b, &seen_a), (b, a, &seen_b)] {
        assert_eq!(seen["self"], me.node.peer_id().to_base58(), "{seen}");
        let frames = seen["video_frames"].as_u64().unwrap();
        let audio = seen["audio_samples"].as_u64().unwrap();
        assert!(frames >= FRAMES, "{}: {seen}", me.host.ns);
        assert!(audio >= AUDIO_SAMPLES, "{}: {seen}", me.host.ns);
        println!(
            "page at {} decoded {frames} frames and {audio} audio samples of the page at {}: \
             joined at {} ms, first frame at {} ms, enough at {} ms",
            me.host.addr,
            other.host.addr,
            seen["joined_ms"],
            seen["first_frame_ms"],
            seen["decoded_ms"],
        );
    }
    for (member, nat) in members.iter().zip(nats) {
        // The node's links to its own page come from its own host: the other is the one to
        // the other member.
        let log = member.node.log_tail(usize::MAX);
        let (remote, own_relay) = log
            .lines()
            .filter_map(link_remote)
            .find(|(remote, _)| {
                !remote.ip().is_loopback() && remote.ip() != IpAddr::from(member.host.addr)
            })
            .unwrap_or_else(|| panic!("{}: no link to the other member logged", member.host.ns));
        let path = if own_relay || remote.ip() == devnet.relayer_ip() {
            MediaPath::Relayed
        } else {
            MediaPath::Direct
        };
        println!(
            "node at {} ({nat:?} NAT): link {path:?} (from {remote}{})",
            member.host.addr,
            if own_relay {
                ", through its own allocation"
            } else {
                ""
            },
        );
        assert_eq!(path, expected, "{}", member.host.ns);
    }
    println!("took {:?}", began.elapsed());
}

/// Runs `me`'s page in its home until it has decoded enough of `other`, and `other`'s page
/// has of it; returns what the scenario printed. The pages signal that through files in `dir`.
async fn page_call(me: &Member, other: &Member, dir: &Path) -> serde_json::Value {
    let done = |member: &Member| dir.join(format!("{}.done", member.node.peer_id()));
    run_page_scenario_in(
        Some(&me.host.ns),
        "nat-call.mjs",
        json!({
            "url": me.url,
            "room": ROOM,
            "peer": other.node.peer_id().to_base58(),
            "frames": FRAMES,
            "audio_samples": AUDIO_SAMPLES,
            "done": done(me),
            "others_done": [done(other)],
            "timeout_ms": PAGE_TIMEOUT.as_millis() as u64,
        }),
        // The scenario's own deadline fails first, with what the page shows.
        PAGE_TIMEOUT + Duration::from_secs(15),
    )
    .await
}
