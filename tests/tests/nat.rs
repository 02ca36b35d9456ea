//! The NAT matrix (issue 13): `chroom` processes inside lab hosts — on the public segment, in
//! homes behind a port-preserving or a symmetric NAT, and two behind one NAT — on a devnet
//! (anvil with the registry, reached through the lab). In every cell a member publishes the
//! test video into a members-only room and another member in the other place records it; the
//! recording must match the source. The test prints the path each cell's link took: direct,
//! or through the relayer. Cells run at once, sharing the lab, the chain and the public
//! bootstrap and relayer nodes (the STUN servers of the homes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;

use chroom_node::publish::MediaSource;
use chroom_tests::lab::{Home, Host, Lab, Nat};
use chroom_tests::lab_devnet::LabDevnet;
use chroom_tests::{check_against_source, compare_with_source, eventually, fixtures, init_tracing};

/// Cells running at once.
const CELLS_AT_ONCE: usize = 4;
/// Frames each recorder takes (two seconds of the test video).
const FRAMES: &str = "60";
/// Frames the rebinding cell records: eight seconds, the router rebinding at about one.
const REBIND_FRAMES: &str = "240";

/// The devnet in the lab, and the test media.
struct World {
    devnet: LabDevnet,
    source: MediaSource,
    media: (PathBuf, PathBuf),
}

/// A node's place in the lab, for the printed matrix.
#[derive(Debug, Clone)]
struct Place {
    name: &'static str,
    /// The router of its home, if it has one.
    router: Option<String>,
    host: Host,
}

impl World {
    async fn new() -> Self {
        let media = fixtures();
        let source = MediaSource::load(Some(&media.0), Some(&media.1)).unwrap();
        Self {
            devnet: LabDevnet::start().await,
            source,
            media,
        }
    }

    /// Runs one cell: a publisher at `from`, a recorder at `to`, in a room of their own; with
    /// `rebind`, that home's router forgets its mappings a second into the call. Returns where
    /// the recorder's link came from, and whether through its own relay allocation.
    async fn cell(
        &self,
        index: usize,
        from: &Place,
        to: &Place,
        rebind: Option<&Home>,
    ) -> (SocketAddr, bool) {
        let room = format!("cell-{index}");
        let frames = if rebind.is_some() {
            REBIND_FRAMES
        } else {
            FRAMES
        };
        let devnet = &self.devnet;
        let mut call = devnet
            .call(
                &room,
                &from.host,
                &to.host,
                &self.media,
                &["--frames", frames],
            )
            .await;
        if let Some(home) = rebind {
            eventually(Duration::from_secs(30), "the recorder's link", || async {
                call.path()
            })
            .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            devnet.lab.rebind(home).unwrap();
        }
        call.recorder.finished(Duration::from_secs(60)).await;
        let video = call.video().expect("a video file recorded");
        if rebind.is_some() {
            let recorded = compare_with_source(&video, &self.source);
            println!(
                "{} → {}, router rebound mid-call: longest gap {:?}, {} of {} frames",
                from.name, to.name, recorded.longest_gap, recorded.frames, recorded.span
            );
            assert!(
                recorded.longest_gap < Duration::from_secs(5),
                "frames resumed only after {:?}",
                recorded.longest_gap
            );
        } else {
            check_against_source(&video, &self.source);
        }
        call.path().unwrap_or_else(|| {
            panic!(
                "{} → {}: the recorder logged no connected link",
                from.name, to.name
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_link_across_every_pair_of_nats() {
    init_tracing();
    let mut world = World::new().await;
    let lab = &mut world.devnet.lab;
    let public = |lab: &mut Lab, name| Place {
        name: "public",
        router: None,
        host: lab.public_host(name).unwrap(),
    };
    let (public_a, public_b) = (public(lab, "pub-a"), public(lab, "pub-b"));
    let mut kept_1 = lab.home("kept-1", Nat::PortPreserving).unwrap();
    let mut kept_2 = lab.home("kept-2", Nat::PortPreserving).unwrap();
    let mut random_1 = lab.home("random-1", Nat::Symmetric).unwrap();
    let mut random_2 = lab.home("random-2", Nat::Symmetric).unwrap();
    let mut rebound = lab.home("rebound", Nat::Symmetric).unwrap();
    fn in_home(lab: &mut Lab, home: &mut Home, name: &'static str, host: &str) -> Place {
        Place {
            name,
            router: Some(home.router.clone()),
            host: lab.home_host(home, host).unwrap(),
        }
    }
    let kept_1a = in_home(lab, &mut kept_1, "port-preserving NAT", "kept-1a");
    let kept_1b = in_home(lab, &mut kept_1, "port-preserving NAT", "kept-1b");
    let kept_2a = in_home(lab, &mut kept_2, "port-preserving NAT", "kept-2a");
    let random_1a = in_home(lab, &mut random_1, "symmetric NAT", "random-1a");
    let random_1b = in_home(lab, &mut random_1, "symmetric NAT", "random-1b");
    let random_2a = in_home(lab, &mut random_2, "symmetric NAT", "random-2a");
    let rebound_a = in_home(lab, &mut rebound, "symmetric NAT", "rebound-a");
    let cells = [
        (&public_a, &public_b),
        (&public_a, &kept_1a),
        (&kept_2a, &public_b),
        (&public_b, &random_1a),
        (&random_1b, &public_a),
        (&kept_1a, &kept_2a),
        (&kept_1a, &kept_1b),
        (&random_1a, &random_1b),
        (&kept_2a, &random_2a),
        (&random_2a, &kept_1b),
        (&random_1b, &random_2a),
    ];
    let relayer_ip = world.devnet.relayer_ip();
    let world = &world;
    let rebinding = (&public_a, &rebound_a, Some(&rebound));
    let runs = cells
        .iter()
        .map(|(from, to)| (*from, *to, None))
        .chain([rebinding])
        .enumerate()
        .map(|(i, (from, to, rebind))| async move {
            (from, to, rebind, world.cell(i, from, to, rebind).await)
        });
    // A few cells at a time: two cores carry every node of the cells running.
    let mut runs: Vec<_> = futures::stream::iter(runs)
        .buffer_unordered(CELLS_AT_ONCE)
        .collect()
        .await;
    runs.sort_by_key(|(from, to, ..)| (from.name, to.name));
    for (from, to, rebind, remote) in runs {
        let (remote, own_relay) = remote;
        let path = if own_relay || remote.ip() == relayer_ip {
            "relayed"
        } else {
            "direct"
        };
        let to_name = if from.router.is_some() && from.router == to.router {
            "the same NAT"
        } else {
            to.name
        };
        let rebound = if rebind.is_some() { ", rebound" } else { "" };
        println!(
            "{:>20} → {:<20} {path} (from {remote}){rebound}",
            from.name, to_name
        );
    }
}
