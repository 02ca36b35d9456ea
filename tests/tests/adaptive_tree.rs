//! Adaptive quality in a relay tree (issue 15) in the network lab: a headless broadcaster sends
//! its camera as two simulcast layers (640×360 at 1.5 Mbit/s and 320×180 at 400 kbit/s) to a
//! relayer, which feeds two viewers, each in a home of its own. One viewer's downlink is shaped
//! with `tbf`: 4 Mbit/s → 1 Mbit/s → 4 Mbit/s.
//!
//! The relayer picks each child's layer by its link's bandwidth estimate, so at 1 Mbit/s the
//! shaped viewer gets the lower layer while its sibling keeps the top one, and once the limit
//! lifts it is back on top. Both are checked twice: in the relayer's `/metrics` (the layer it
//! forwards to each child, beside the link's estimate) and in what each viewer recorded (the
//! keyframes it got: their heights say which layer reached it, and the frame counts say it
//! kept receiving).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chroom_media::container::ivf;
use chroom_media::vp8_keyframe_size;
use chroom_registry::RegistryClient;
use chroom_tests::lab_devnet::LabDevnet;
use chroom_tests::process::NodeProcess;
use chroom_tests::{eventually, fixtures, init_tracing, ops, small_video_fixture};
use chroom_types::{Role, RoomKind};

const ROOM: &str = "shaped-show";
/// Anvil accounts: 1 broadcasts (a speaker), 5 relays (a registered relayer), 6 and 7 watch.
const BROADCASTER: usize = 1;
const RELAYER: usize = 5;
const VIEWERS: [usize; 2] = [6, 7];
const METRICS: &str = "127.0.0.1:9464";
/// The layers' heights: the lower fixture's and the top one's.
const LOW_HEIGHT: u16 = 180;
const TOP_HEIGHT: u16 = 360;
/// The shaped viewer's downlink: both layers fit in the first, only the lower one in the second.
const OPEN_KBIT: u32 = 4000;
const SHAPED_KBIT: u32 = 1000;
/// How long each phase may take to show its layers (the layer choice waits for a keyframe, and
/// for a higher estimate to hold before it moves up).
const SETTLE: Duration = Duration::from_secs(25);
/// How long both viewers stay on the top layer before the shaping starts.
const STEADY: Duration = Duration::from_secs(4);
/// How long the shaped viewer may take to be back on top once the limit lifts: its estimate
/// has to grow back past the top layer's need and hold there, then a keyframe of the top layer
/// is waited for. 5.8–7.1 s on this machine (printed; the issue asks for 10 s): the bound
/// leaves room for a loaded CI machine.
const BACK_ON_TOP: Duration = Duration::from_secs(20);

/// The layer the relayer (its metrics in namespace `ns`) forwards to each viewer (by the order
/// of `viewers`; -1 none, -2 no link). Blocks on a thread in the relayer's namespace.
fn layers(devnet: &LabDevnet, ns: &str, viewers: &[String]) -> Vec<i64> {
    let addr: SocketAddr = METRICS.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    devnet
        .lab
        .spawn_in(ns, move || async move {
            let _ = tx.send(ops::scrape(addr).await);
        })
        .join()
        .expect("scrape thread");
    let scrape = rx.recv().expect("a scrape");
    let estimates: Vec<f64> = viewers
        .iter()
        .map(|peer| {
            ops::sample(
                &scrape,
                "chroom_link_bandwidth_estimate_bits_per_second",
                &[("peer", peer)],
            )
            .unwrap_or(0.0)
                / 1e6
        })
        .collect();
    eprintln!("estimates (Mbit/s) {estimates:.2?}");
    viewers
        .iter()
        .map(|peer| {
            ops::sample(&scrape, "chroom_link_camera_layer", &[("peer", peer)])
                .map_or(-2, |layer| layer as i64)
        })
        .collect()
}

/// Stops a recorder as Ctrl-C would, so it closes its files.
async fn stop(recorder: &mut NodeProcess) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &recorder.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    recorder.finished(Duration::from_secs(20)).await;
}

/// The heights of the keyframes in a recording, in order, and its frame count.
fn recorded(dir: &std::path::Path) -> (Vec<u16>, usize) {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "ivf"))
        .unwrap_or_else(|| panic!("no recording in {}", dir.display()));
    let (_, frames) = ivf::read_all(std::fs::File::open(&file).unwrap()).unwrap();
    let heights = frames
        .iter()
        .filter_map(|frame| vp8_keyframe_size(&frame.data).map(|(_, height)| height))
        .collect();
    (heights, frames.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayer_gives_a_shaped_viewer_the_lower_layer_and_its_sibling_the_top() {
    init_tracing();
    let mut devnet = LabDevnet::start().await;
    let room = devnet.chain.add_room(ROOM, RoomKind::Broadcast).await;
    for account in VIEWERS {
        devnet.chain.grant(room, account, Role::Listener).await;
    }
    let root_host = devnet.lab.public_host("root").unwrap();
    let relay_host = devnet.lab.public_host("tree-relay").unwrap();
    let (video, audio) = fixtures();
    let small = small_video_fixture();
    let args = |path: &std::path::Path| path.to_string_lossy().into_owned();
    let (video, small, audio) = (args(&video), args(&small), args(&audio));
    // The root feeds only the relayer; the viewers must ask it.
    let mut root = devnet.node(
        &root_host,
        BROADCASTER,
        "root",
        &[
            "publish",
            "--room",
            ROOM,
            "--broadcast",
            "1",
            "--video",
            &video,
            "--layer",
            &small,
            "--audio",
            &audio,
        ],
        "",
    );
    root.started(Duration::from_secs(30)).await;
    let relay_section = format!(
        "\n[relay]\nupload_budget_kbps = 8000\nstream_kbps = 2000\nrooms = [\"{ROOM}\"]\n\n\
         [metrics]\nlisten = \"{METRICS}\"\n"
    );
    let relay_ns = relay_host.ns.clone();
    let mut relayer = devnet.node(
        &relay_host,
        RELAYER,
        "tree-relay",
        &["node"],
        &relay_section,
    );
    relayer.started(Duration::from_secs(30)).await;
    RegistryClient::connect(
        &devnet.chain.anvil.endpoint(),
        devnet.chain.registry.address(),
        Some(devnet.chain.key(RELAYER)),
    )
    .unwrap()
    .register_relayer(&relayer.peer_id().to_bytes(), 4)
    .await
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "the relayer fed by the root",
        || async {
            relayer
                .log_tail(usize::MAX)
                .contains("fed by a new parent")
                .then_some(())
        },
    )
    .await;

    let mut homes = Vec::new();
    let mut viewers = Vec::new();
    for (i, account) in VIEWERS.into_iter().enumerate() {
        let name = format!("viewer-{i}");
        let lab = &mut devnet.lab;
        let mut home = lab.home(&name, chroom_tests::lab::Nat::None).unwrap();
        let host = lab.home_host(&mut home, &format!("{name}-pc")).unwrap();
        let out = devnet.dir().join(&name).join("out");
        let out_arg = out.to_string_lossy().into_owned();
        let mut viewer = devnet.node(
            &host,
            account,
            &name,
            &[
                "record",
                "--broadcast",
                "--room",
                ROOM,
                "--out",
                &out_arg,
                "--duration",
                "90s",
            ],
            "",
        );
        viewer.started(Duration::from_secs(30)).await;
        homes.push(home);
        viewers.push((viewer, out));
    }
    let peers: Vec<String> = viewers
        .iter()
        .map(|(v, _)| v.peer_id().to_base58())
        .collect();
    let shaped_router = homes[1].router.clone();
    let shape = |kbit: u32| {
        devnet
            .lab
            .shape(&shaped_router, "lan", Some(kbit), 0)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    shape(OPEN_KBIT);
    eprintln!("viewers {peers:?}; the second one's downlink is shaped");

    // Open: both children on the top layer, and staying there (a link's estimate starts at
    // 1 Mbit/s and grows: the first seconds may take a child down and up again).
    let mut on_top_since = None;
    let open_at = Instant::now();
    while on_top_since.is_none_or(|since: Instant| since.elapsed() < STEADY) {
        assert!(
            open_at.elapsed() < SETTLE + STEADY,
            "the viewers never settled on the top layer: {:?}",
            layers(&devnet, &relay_ns, &peers)
        );
        if layers(&devnet, &relay_ns, &peers) == [1, 1] {
            on_top_since.get_or_insert_with(Instant::now);
        } else {
            on_top_since = None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Shaped: the shaped child moves down; its sibling stays on top all along.
    shape(SHAPED_KBIT);
    eprintln!("shaped to {SHAPED_KBIT} kbit/s");
    let shaped_at = Instant::now();
    let mut sibling_samples = Vec::new();
    let down = loop {
        let now = layers(&devnet, &relay_ns, &peers);
        sibling_samples.push(now[0]);
        if now[1] == 0 {
            break shaped_at.elapsed();
        }
        assert!(
            shaped_at.elapsed() < SETTLE,
            "the shaped viewer never got the lower layer: {now:?}\n{}",
            relayer.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Hold the limit a while: the shaped viewer stays below, its sibling on top.
    let hold_until = Instant::now() + Duration::from_secs(8);
    let mut shaped_samples = Vec::new();
    while Instant::now() < hold_until {
        let now = layers(&devnet, &relay_ns, &peers);
        sibling_samples.push(now[0]);
        shaped_samples.push(now[1]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Open again: back on top.
    shape(OPEN_KBIT);
    let opened_at = Instant::now();
    let mut up = None;
    while opened_at.elapsed() < BACK_ON_TOP {
        let now = layers(&devnet, &relay_ns, &peers);
        sibling_samples.push(now[0]);
        if now[1] == 1 {
            up = Some(opened_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sibling_on_top = sibling_samples.iter().filter(|l| **l == 1).count();
    println!(
        "shaped viewer: lower layer {down:?} into {SHAPED_KBIT} kbit/s, top again {up:?} after \
         the limit lifted; its layers while shaped {shaped_samples:?}; sibling on top in \
         {sibling_on_top} of {} samples",
        sibling_samples.len()
    );
    let targets: Vec<String> = relayer
        .log_tail(usize::MAX)
        .lines()
        .filter(|line| line.contains("simulcast layer target"))
        .map(str::to_owned)
        .collect();
    println!("the relayer's layer targets:\n{}", targets.join("\n"));
    assert!(
        up.is_some(),
        "the shaped viewer was not back on the top layer within {BACK_ON_TOP:?}"
    );
    assert!(
        shaped_samples.iter().all(|l| *l <= 0),
        "the shaped viewer went above the lower layer at {SHAPED_KBIT} kbit/s: {shaped_samples:?}"
    );
    assert!(
        sibling_on_top * 10 >= sibling_samples.len() * 9,
        "the unshaped sibling left the top layer: {sibling_samples:?}"
    );

    // What the viewers recorded says the same: the shaped one decoded keyframes of both
    // layers, its sibling only top ones after its first, and both kept receiving.
    for (viewer, _) in &mut viewers {
        stop(viewer).await;
    }
    let ((shaped_heights, shaped_frames), (sibling_heights, sibling_frames)) =
        (recorded(&viewers[1].1), recorded(&viewers[0].1));
    println!(
        "recorded: sibling {sibling_frames} frames, keyframe heights {sibling_heights:?}; \
         shaped {shaped_frames} frames, keyframe heights {shaped_heights:?}"
    );
    // The shaping took the recordings' second halves (the first is the links' start, where an
    // estimate may begin below the top layer, and the steady part before the shaping).
    let second_half = |heights: &[u16]| heights[heights.len() / 2..].to_vec();
    assert!(
        second_half(&shaped_heights).contains(&LOW_HEIGHT) && shaped_heights.contains(&TOP_HEIGHT),
        "{shaped_heights:?}"
    );
    assert!(
        second_half(&sibling_heights)
            .iter()
            .all(|h| *h == TOP_HEIGHT),
        "{sibling_heights:?}"
    );
    assert!(
        shaped_frames * 10 >= sibling_frames * 8,
        "the shaped viewer missed frames: {shaped_frames} against {sibling_frames}"
    );
}
