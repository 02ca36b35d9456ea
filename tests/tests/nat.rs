//! The NAT matrix (issue 13): `chroom` processes inside lab hosts — on the public segment, in
//! homes behind a port-preserving or a symmetric NAT, and two behind one NAT — on a devnet
//! (anvil with the registry, reached through the lab). In every cell a member publishes the
//! test video into a members-only room and another member in the other place records it; the
//! recording must match the source. The test prints the path each cell's link took: direct,
//! or through the relayer. Cells run at once, sharing the lab, the chain and the public
//! bootstrap and relayer nodes (the STUN servers of the homes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;

use chroom_node::publish::MediaSource;
use chroom_tests::lab::{Home, Host, Lab, Nat};
use chroom_tests::process::NodeProcess;
use chroom_tests::{
    Chain, CuttableProxy, check_against_source, compare_with_source, eventually, fixtures,
    init_tracing,
};
use chroom_types::RoomKind;

/// Fixed ports of the public nodes (others take any free port).
const P2P_PORT: u16 = 4001;
const MEDIA_PORT: u16 = 4002;
const RPC_PORT: u16 = 8545;
/// Anvil accounts: 1 may speak in every cell's room, 2 may listen; 3 and 4 run the public
/// nodes and have no role.
const PUBLISHER: usize = 1;
const RECORDER: usize = 2;
const BOOTSTRAP: usize = 3;
const RELAYER: usize = 4;
/// The relayer's `[relay]`: room for every relayed path the cells ask for (each node behind
/// a symmetric NAT takes one).
const RELAY_SECTION: &str = "\n[relay]\nupload_budget_kbps = 100000\n";
/// Cells running at once.
const CELLS_AT_ONCE: usize = 4;
/// Frames each recorder takes (two seconds of the test video).
const FRAMES: &str = "60";
/// Frames the rebinding cell records: eight seconds, the router rebinding at about one.
const REBIND_FRAMES: &str = "240";

/// What a cell's nodes share: the lab, the chain as the lab sees it, and the public nodes.
struct World {
    lab: Lab,
    chain: Chain,
    rpc_url: String,
    stun_servers: Vec<SocketAddr>,
    bootstrap: String,
    dir: tempfile::TempDir,
    source: MediaSource,
    fixtures: (PathBuf, PathBuf),
    _rpc: CuttableProxy,
    _public_nodes: Vec<NodeProcess>,
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
        let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
        let (chain, _) = Chain::with_room("lab-unused").await;
        let chain_host = lab.public_host("chain").unwrap();
        let listener = lab.listen_tcp(&chain_host, RPC_PORT).unwrap();
        let anvil = SocketAddr::from(([127, 0, 0, 1], chain.anvil.port()));
        let rpc = CuttableProxy::serve(tokio::net::TcpListener::from_std(listener).unwrap(), anvil);
        let rpc_url = format!("http://{}:{RPC_PORT}", chain_host.addr);
        let dir = tempfile::Builder::new()
            .disable_cleanup(true)
            .tempdir()
            .unwrap();
        let fixtures = fixtures();
        let source = MediaSource::load(Some(&fixtures.0), Some(&fixtures.1)).unwrap();
        let mut world = Self {
            lab,
            chain,
            rpc_url,
            stun_servers: Vec::new(),
            bootstrap: String::new(),
            dir,
            source,
            fixtures,
            _rpc: rpc,
            _public_nodes: Vec::new(),
        };
        let boot_host = world.lab.public_host("boot").unwrap();
        let relayer_host = world.lab.public_host("relayer").unwrap();
        let mut boot = world.public_node(&boot_host, BOOTSTRAP, "boot", false);
        boot.started(Duration::from_secs(30)).await;
        world.bootstrap = format!(
            "/ip4/{}/tcp/{P2P_PORT}/p2p/{}",
            boot_host.addr,
            boot.peer_id()
        );
        let mut relayer = world.public_node(&relayer_host, RELAYER, "relayer", true);
        relayer.started(Duration::from_secs(30)).await;
        world.stun_servers = [boot_host.addr, relayer_host.addr]
            .map(|ip| SocketAddr::from((ip, MEDIA_PORT)))
            .to_vec();
        world._public_nodes = vec![boot, relayer];
        world
    }

    /// A long-lived public node on fixed ports (the bootstrap, the relayer).
    fn public_node(&self, host: &Host, account: usize, name: &str, relay: bool) -> NodeProcess {
        let dir = self.dir.path().join(name);
        let mut config = self.config(host, account, &dir, P2P_PORT, MEDIA_PORT);
        if relay {
            config.push_str(RELAY_SECTION);
        }
        NodeProcess::spawn_in(&dir, &config, Some(&host.ns), &["node"])
    }

    /// A node config for `host`: libp2p and media on every address of the host, offering the
    /// host's own address, asking the public nodes for its NAT mapping, acting for `account`
    /// and checking the registry. A node on fixed ports is a public one: it serves libp2p
    /// relay circuits (signaling for nodes behind NATs).
    fn config(&self, host: &Host, account: usize, dir: &Path, p2p: u16, media: u16) -> String {
        let key = self.chain.key_file(dir, account);
        let quote = |items: Vec<String>| {
            items
                .iter()
                .map(|item| format!("\"{item}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bootstrap = quote(
            Some(self.bootstrap.clone())
                .filter(|b| !b.is_empty())
                .into_iter()
                .collect(),
        );
        let stun = quote(self.stun_servers.iter().map(ToString::to_string).collect());
        format!(
            "[net]\nlisten = [\"/ip4/0.0.0.0/tcp/{p2p}\"]\nbootstrap = [{bootstrap}]\n\
             kad_mode = \"server\"\nsignal_timeout = \"10s\"\nrelay_service = {public}\n\n\
             [media]\nbind = \"0.0.0.0:{media}\"\nadvertise = [\"{addr}\"]\n\
             stun_servers = [{stun}]\n\n\
             [identity]\naccount_key_file = \"{key}\"\n\n\
             [registry]\nrpc_url = \"{rpc}\"\naddress = \"{registry}\"\npoll_interval = \"200ms\"\n\n\
             [log]\nfilter = \"chroom=info\"\n",
            addr = host.addr,
            public = p2p != 0,
            key = key.display(),
            rpc = self.rpc_url,
            registry = self.chain.registry.address(),
        )
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
        self.chain.add_room(&room, RoomKind::Conference).await;
        let dir = self.dir.path().join(&room);
        let (video, audio) = (
            self.fixtures.0.to_string_lossy().into_owned(),
            self.fixtures.1.to_string_lossy().into_owned(),
        );
        let publisher_dir = dir.join("publisher");
        let mut publisher = NodeProcess::spawn_in(
            &publisher_dir,
            &self.config(&from.host, PUBLISHER, &publisher_dir, 0, 0),
            Some(&from.host.ns),
            &[
                "publish", "--room", &room, "--video", &video, "--audio", &audio,
            ],
        );
        publisher.started(Duration::from_secs(30)).await;
        let recorder_dir = dir.join("recorder");
        let out = dir.join("out");
        let out_arg = out.to_string_lossy().into_owned();
        let mut recorder = NodeProcess::spawn_in(
            &recorder_dir,
            &self.config(&to.host, RECORDER, &recorder_dir, 0, 0),
            Some(&to.host.ns),
            &[
                "record",
                "--room",
                &room,
                "--out",
                &out_arg,
                "--frames",
                if rebind.is_some() {
                    REBIND_FRAMES
                } else {
                    FRAMES
                },
            ],
        );
        if let Some(home) = rebind {
            eventually(Duration::from_secs(30), "the recorder's link", || async {
                link_remote(&recorder.log_tail(usize::MAX))
            })
            .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.lab.rebind(home).unwrap();
        }
        recorder.finished(Duration::from_secs(60)).await;
        let video = std::fs::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "ivf"))
            .expect("a video file recorded");
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
        link_remote(&recorder.log_tail(usize::MAX)).unwrap_or_else(|| {
            panic!(
                "{} → {}: the recorder logged no connected link",
                from.name, to.name
            )
        })
    }
}

/// How the first connected link's handshake reached a node, from its log: from where, and
/// whether through the node's own relay allocation.
fn link_remote(log: &str) -> Option<(SocketAddr, bool)> {
    log.lines()
        .filter(|line| line.contains("link connected"))
        .find_map(|line| {
            let (_, rest) = line.split_once("remote=Some(")?;
            let remote = rest.split_once(')')?.0.parse().ok()?;
            Some((remote, line.contains("via_relay=true")))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_link_across_every_pair_of_nats() {
    init_tracing();
    let mut world = World::new().await;
    let lab = &mut world.lab;
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
    let relayer_ip = world.stun_servers[1].ip();
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
