//! `cargo run --release -p chroom-tests --bin adapt-bench` (as root, after `cargo build
//! --release -p chroom-node`): Chroom's adaptive quality against the anchor, side by side in
//! one run, in the network lab.
//!
//! Two calls run at once, each between two homes: a direct Chromium-to-Chromium call (the
//! anchor: libwebrtc's own adaptation, no node; `tests/web/direct-call.mjs`) and the same call
//! through two Chroom nodes (each page sends its node simulcast, the node picks the layer the
//! other's link carries; `tests/web/adaptive.mjs`). Both cameras are Chromium's fake 640×360 at
//! 10 fps. The second home of each call has its downlink shaped with `tbf` on the same
//! schedule, at the same moments: 4 Mbit/s → 250 kbit/s → 100 kbit/s → 4 Mbit/s.
//!
//! Per phase and call, from what the shaped side's page decoded (sampled every 200 ms): the
//! widths it showed, the total time its video stood still, what it received (video and audio)
//! as a share of the limit, and how long after each change it took to show a smaller picture
//! (down) and the full one again (up).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use chroom_tests::lab::Nat;
use chroom_tests::lab_devnet::{LabDevnet, page_link};
use chroom_tests::{eventually, run_page_scenario_in};
use chroom_types::{Role, RoomKind};

const ROOM: &str = "anchored-call";
const WEB_SECTION: &str = "\n[web]\nlisten = \"127.0.0.1:7800\"\n";
const SAMPLE_MS: u64 = 200;
const TOP_WIDTH: u64 = 640;
/// The homes: the call through Chroom's two, then the direct call's two (the second of each
/// pair is shaped).
const HOMES: [&str; 4] = ["chroom-a", "chroom-b", "anchor-a", "anchor-b"];

/// (name, downlink kbit/s, seconds). Chromium's fake camera is easy to encode: at 10 fps its
/// 640×360 takes about 140 kbit/s, so the limits that make either call adapt are low ones.
const SCHEDULE: [(&str, u32, u64); 4] = [
    ("4 Mbit/s", 4000, 10),
    ("250 kbit/s", 250, 15),
    ("100 kbit/s", 100, 15),
    ("4 Mbit/s again", 4000, 25),
];

/// One sample of what the shaped page decoded.
#[derive(Debug, Clone, Copy)]
struct Seen {
    t: u64,
    frames: u64,
    width: u64,
    bytes: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn seen(sample: &Value) -> Seen {
    let number = |key: &str| sample[key].as_u64().unwrap_or(0);
    Seen {
        t: number("t"),
        frames: number("frames"),
        width: number("width"),
        bytes: number("bytes"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut devnet = LabDevnet::start().await;
    let room = devnet.chain.add_room(ROOM, RoomKind::Conference).await;
    devnet.chain.grant(room, 2, Role::Speaker).await;
    let mut hosts = Vec::new();
    let mut routers = Vec::new();
    for name in HOMES {
        let lab = &mut devnet.lab;
        let mut home = lab.home(name, Nat::None).unwrap();
        hosts.push(lab.home_host(&mut home, &format!("{name}-pc")).unwrap());
        routers.push(home.router);
    }
    let mut nodes = Vec::new();
    for (i, account) in [1, 2].into_iter().enumerate() {
        let name = format!("chroom-{i}");
        let mut node = devnet.node(&hosts[i], account, &name, &["node"], WEB_SECTION);
        node.started(Duration::from_secs(30)).await;
        nodes.push(node);
    }
    let mut urls = Vec::new();
    for node in &nodes {
        urls.push(
            eventually(Duration::from_secs(10), "a page link", || async {
                page_link(&node.log_tail(usize::MAX))
            })
            .await,
        );
    }
    let peers: Vec<String> = nodes.iter().map(|n| n.peer_id().to_base58()).collect();
    let dir = devnet.dir().to_path_buf();
    let stop = dir.join("stop");
    let ready = |name: &str| dir.join(format!("ready-{name}"));
    let timeout = Duration::from_secs(300);
    let shape = |kbit: u32| {
        for router in [&routers[1], &routers[3]] {
            devnet
                .lab
                .shape(router, "lan", Some(kbit), 0)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    shape(SCHEDULE[0].1);
    // Each home's page: its script, and what it needs beyond the shared input.
    let scripts = [
        (
            "adaptive.mjs",
            json!({ "url": urls[0], "room": ROOM, "peers": [peers[1]] }),
        ),
        (
            "adaptive.mjs",
            json!({ "url": urls[1], "room": ROOM, "peers": [peers[0]] }),
        ),
        ("direct-call.mjs", json!({ "role": "caller", "dir": &dir })),
        ("direct-call.mjs", json!({ "role": "callee", "dir": &dir })),
    ];
    let pages = futures::future::join_all(scripts.into_iter().zip(&hosts).zip(HOMES).map(
        |(((script, mut input), host), home)| {
            input["ready"] = json!(ready(home));
            input["stop"] = json!(&stop);
            input["sample_ms"] = json!(SAMPLE_MS);
            input["timeout_ms"] = json!(timeout.as_millis() as u64);
            run_page_scenario_in(Some(&host.ns), script, input, timeout)
        },
    ));
    let schedule = async {
        for name in HOMES {
            let ready = ready(name);
            eventually(Duration::from_secs(120), "every page decoding", || async {
                ready.exists().then_some(())
            })
            .await;
        }
        let mut began = Vec::new();
        for (_, kbit, seconds) in SCHEDULE {
            shape(kbit);
            began.push(unix_ms());
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
        std::fs::write(&stop, "").unwrap();
        (began, unix_ms())
    };
    let (pages, (began, ended)) = tokio::join!(pages, schedule);
    let (chroom_b, anchor_b) = (&pages[1], &pages[3]);
    let through_chroom: Vec<Seen> = chroom_b["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut seen = seen(&s["peers"][&peers[0]]);
            seen.t = s["t"].as_u64().unwrap();
            seen
        })
        .collect();
    let direct: Vec<Seen> = anchor_b["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(seen)
        .collect();

    println!(
        "| call | phase | widths shown | video still (total) | received / limit | smaller picture after | full picture after |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, series) in [
        ("direct (libwebrtc)", &direct),
        ("through Chroom", &through_chroom),
    ] {
        for (phase, (label, kbit, _)) in SCHEDULE.iter().enumerate() {
            let from = began[phase];
            let to = began.get(phase + 1).copied().unwrap_or(ended);
            let s: Vec<Seen> = series
                .iter()
                .copied()
                .filter(|s| s.t >= from && s.t < to)
                .collect();
            println!(
                "| {name} | {label} | {} | {} ms | {} | {} | {} |",
                widths(&s),
                still_ms(&s),
                share_of_limit(&s, *kbit),
                first_after(&s, from, |s| s.width > 0 && s.width < TOP_WIDTH),
                first_after(&s, from, |s| s.width == TOP_WIDTH),
            );
        }
    }
}

/// The widths shown, in order, each once per run.
fn widths(s: &[Seen]) -> String {
    let mut runs: Vec<u64> = Vec::new();
    for seen in s {
        if runs.last() != Some(&seen.width) {
            runs.push(seen.width);
        }
    }
    format!("{runs:?}")
}

/// Total time between samples over which no frame was decoded.
fn still_ms(s: &[Seen]) -> u64 {
    s.windows(2)
        .filter(|w| w[1].frames == w[0].frames)
        .map(|w| w[1].t - w[0].t)
        .sum()
}

/// What arrived (video and audio) as a share of `kbit`.
fn share_of_limit(s: &[Seen], kbit: u32) -> String {
    let (Some(first), Some(last)) = (s.first(), s.last()) else {
        return "-".into();
    };
    let seconds = (last.t - first.t) as f64 / 1000.0;
    let kbps = (last.bytes.saturating_sub(first.bytes)) as f64 * 8.0 / 1000.0 / seconds.max(0.001);
    format!("{kbps:.0} kbit/s ({:.0} %)", 100.0 * kbps / f64::from(kbit))
}

/// Seconds from `from` to the first sample that `matches`.
fn first_after(s: &[Seen], from: u64, matches: impl Fn(&Seen) -> bool) -> String {
    s.iter().find(|s| matches(s)).map_or_else(
        || "never".into(),
        |s| format!("{:.1} s", (s.t - from) as f64 / 1000.0),
    )
}
