//! Helpers for Chroom's loopback integration tests: real nodes (libp2p over TCP/QUIC, WebRTC
//! over UDP) on 127.0.0.1, in one process.

pub mod lab;
pub mod lab_devnet;
pub mod ops;
pub mod pages;
pub mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::signers::local::PrivateKeySigner;
use chroom_net::Multiaddr;
use chroom_node::config::{AccountKeySource, IdentityConfig, RegistryConfig};
use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_node::{NodeConfig, RunningNode};
use chroom_registry::RegistryClient;
use chroom_registry::client::JoinPolicy;
use chroom_room::Participation;
use chroom_types::{Account, MediaKind, Role, RoomId, RoomKind, RoomName};
use tokio_util::sync::CancellationToken;

/// Installs a test tracing subscriber once (`RUST_LOG` overrides the default `chroom=info`).
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("chroom=info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Paths of the generated VP8 and Opus fixtures, generating them with ffmpeg if missing.
pub fn fixtures() -> (PathBuf, PathBuf) {
    static GENERATE: Once = Once::new();
    let dir = workspace_root().join("fixtures/generated");
    let video = dir.join("video.ivf");
    let audio = dir.join("audio.ogg");
    GENERATE.call_once(|| {
        if video.exists() && audio.exists() && dir.join(SMALL_VIDEO).exists() {
            return;
        }
        let status = Command::new("bash")
            .arg(workspace_root().join("scripts/fixtures.sh"))
            .arg(&dir)
            .status()
            .expect("running scripts/fixtures.sh (needs ffmpeg: scripts/setup.sh installs it)");
        assert!(status.success(), "scripts/fixtures.sh failed");
    });
    (video, audio)
}

/// The second test camera (`scripts/fixtures.sh`): the fixture video at 320 × 180, to tell two
/// publishers apart by what a receiver decodes.
pub fn small_video_fixture() -> PathBuf {
    let (video, _) = fixtures();
    video.with_file_name(SMALL_VIDEO)
}

const SMALL_VIDEO: &str = "video-small.ivf";

/// Starts a loopback node with its state in `dir`, bootstrapping from `bootstrap`. It checks no
/// registry: every peer may do everything ([`Chain::node`] starts one that checks).
pub async fn start_node(dir: &Path, bootstrap: &[Multiaddr]) -> RunningNode {
    let mut config = NodeConfig::loopback(dir.to_path_buf());
    config.open_access = true;
    config.net.bootstrap = bootstrap.to_vec();
    RunningNode::start(config).await.expect("node starts")
}

/// The node's TCP listen address (with `/p2p/`).
pub async fn tcp_addr(node: &RunningNode) -> Multiaddr {
    node.listen_addrs()
        .await
        .expect("listen addrs")
        .into_iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .expect("a tcp listen address")
}

/// Has `node` take part in `room` as a person (present, listening): enough to chat, share
/// files and be moderated.
pub async fn take_part(node: &RunningNode, room: RoomId) {
    node.join(room, Participation::Receive(vec![MediaKind::Audio]))
        .await
        .expect("joins the room");
}

/// Waits until `node` lists `count` members of `room` (itself included).
pub async fn until_present(node: &RunningNode, room: RoomId, count: usize) {
    eventually(
        Duration::from_secs(30),
        "members see each other",
        || async { (node.participants(room).await.ok()?.len() == count).then_some(()) },
    )
    .await;
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node publishing the fixtures in a room.
#[derive(Debug)]
pub struct Publisher {
    /// The node.
    pub node: RunningNode,
    /// What it publishes.
    pub source: MediaSource,
}

impl Publisher {
    /// Starts a node in `dir` that publishes the fixture video and audio in `room`.
    pub async fn start(dir: &Path, room: RoomId) -> Self {
        Self::start_as(dir, room, Participation::Publish).await
    }

    /// Starts a node in `dir` that broadcasts the fixtures in `room` as the root of its relay
    /// tree, feeding `capacity` children directly.
    pub async fn broadcast(dir: &Path, room: RoomId, capacity: u32) -> Self {
        Self::start_as(dir, room, |kinds| Participation::Broadcast {
            kinds,
            capacity,
        })
        .await
    }

    async fn start_as(
        dir: &Path,
        room: RoomId,
        participation: impl FnOnce(Vec<MediaKind>) -> Participation,
    ) -> Self {
        let (video, audio) = fixtures();
        let source = MediaSource::load(Some(&video), Some(&audio)).expect("fixtures load");
        let node = start_node(dir, &[]).await;
        node.join(room, participation(source.kinds()))
            .await
            .expect("publisher joins");
        Self { node, source }
    }

    /// Runs `work` while the fixtures play (looping) into the room.
    pub async fn while_publishing<T>(&self, work: impl Future<Output = T>) -> T {
        let cancel = CancellationToken::new();
        let playing = publish(&self.node, &self.source, Looping::Forever, cancel.clone());
        let result = tokio::select! {
            result = work => result,
            stopped = playing => panic!("publisher stopped: {stopped:?}"),
        };
        cancel.cancel();
        result
    }
}

/// A TCP proxy in front of a server (the chain RPC) that a test can cut and restore, to play an
/// outage without losing the server's state.
#[derive(Debug)]
pub struct CuttableProxy {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bumped on every cut so connections from before it close.
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    /// Proxies a loopback port to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        Self::serve(listener, upstream)
    }

    /// Proxies what `listener` accepts to `upstream`.
    pub fn serve(listener: tokio::net::TcpListener, upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let addr = listener.local_addr().expect("proxy addr");
        let up = std::sync::Arc::new(AtomicBool::new(true));
        let epoch = std::sync::Arc::new(AtomicU64::new(0));
        let (task_up, task_epoch) = (up.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !task_up.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is reset
                }
                let (up, epoch) = (task_up.clone(), task_epoch.clone());
                let born = epoch.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while up.load(Ordering::SeqCst) && epoch.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            epoch,
            task,
        }
    }

    /// The proxy's URL, for an HTTP RPC client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A bare libp2p client that speaks only the signaling protocol, with no chroom logic: the
/// tests' stand-in for a misbehaving or forging peer.
#[allow(missing_debug_implementations)]
pub struct RawSignalClient {
    swarm: libp2p::Swarm<libp2p::request_response::Behaviour<chroom_net::signal::SignalCodec>>,
}

impl RawSignalClient {
    /// A client with a fresh identity.
    pub fn new() -> Self {
        use libp2p::{noise, request_response, tcp, yamux};
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| {
                request_response::Behaviour::new(
                    [(
                        chroom_net::signal::PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(10)),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build();
        Self { swarm }
    }

    /// The client's PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        *self.swarm.local_peer_id()
    }

    /// Dials a node.
    pub fn dial(&mut self, addr: Multiaddr) {
        self.swarm.dial(addr).expect("dial");
    }

    /// Sends one raw frame and returns the decoded response.
    pub async fn ask(
        &mut self,
        peer: libp2p::PeerId,
        frame: chroom_net::signal::Frame,
    ) -> chroom_proto::SignalResponse {
        use chroom_net::signal::Frame;
        use futures::StreamExt;
        use libp2p::request_response::{Event, Message};
        use libp2p::swarm::SwarmEvent;
        let id = self.swarm.behaviour_mut().send_request(&peer, frame);
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response: Frame::Payload(bytes),
                        },
                    ..
                }) if request_id == id => {
                    return chroom_proto::decode_response(&bytes).expect("a valid response");
                }
                SwarmEvent::Behaviour(Event::OutboundFailure { error, .. }) => {
                    panic!("request failed: {error}")
                }
                _ => {}
            }
        }
    }
}

impl Default for RawSignalClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh anvil from the npm package `scripts/setup.sh` installs.
pub fn anvil() -> AnvilInstance {
    let path: PathBuf =
        workspace_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        path.exists(),
        "anvil missing at {}: run scripts/setup.sh",
        path.display()
    );
    Anvil::at(path).spawn()
}

/// A local chain with the registry deployed.
#[derive(Debug)]
pub struct Chain {
    /// The chain.
    pub anvil: AnvilInstance,
    /// The registry, as its deployer (account 0).
    pub registry: RegistryClient,
    /// Nodes reach the chain through this, so a test can cut them off.
    pub proxy: CuttableProxy,
}

impl Chain {
    /// A fresh chain with the registry and an allowlist conference `name` in which account 1
    /// may speak and account 2 may listen (account 0 owns it).
    pub async fn with_room(name: &str) -> (Self, RoomId) {
        Self::with_room_of_kind(name, RoomKind::Conference).await
    }

    /// Like [`Self::with_room`], for a room of `kind`.
    pub async fn with_room_of_kind(name: &str, kind: RoomKind) -> (Self, RoomId) {
        let anvil = anvil();
        let owner = PrivateKeySigner::from(anvil.keys()[0].clone());
        let registry = RegistryClient::deploy(&anvil.endpoint(), owner)
            .await
            .unwrap();
        let proxy = CuttableProxy::start(([127, 0, 0, 1], anvil.port()).into()).await;
        let chain = Self {
            anvil,
            registry,
            proxy,
        };
        let room = chain.add_room(name, kind).await;
        (chain, room)
    }

    /// Gives anvil account `i` `role` in `room` (as the registry's deployer, its owner).
    pub async fn grant(&self, room: RoomId, i: usize, role: Role) {
        self.registry
            .set_role(room, self.account(i), Some(role))
            .await
            .unwrap();
    }

    /// Anvil account `i`'s key.
    pub fn key(&self, i: usize) -> PrivateKeySigner {
        PrivateKeySigner::from(self.anvil.keys()[i].clone())
    }

    /// Anvil account `i`.
    pub fn account(&self, i: usize) -> Account {
        Account::from_bytes(self.key(i).address().into_array())
    }

    /// Writes anvil account `i`'s key to `<dir>/account.key` (mode 0600, as a node demands)
    /// and returns its path.
    pub fn key_file(&self, dir: &Path, i: usize) -> PathBuf {
        let key_file = dir.join("account.key");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            &key_file,
            alloy::hex::encode(self.anvil.keys()[i].to_bytes()),
        )
        .unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        key_file
    }

    /// Registers the allowlist room `name` of `kind`, in which account 1 may speak and account
    /// 2 may listen (account 0 owns it).
    pub async fn add_room(&self, name: &str, kind: RoomKind) -> RoomId {
        let name: RoomName = name.parse().unwrap();
        self.registry
            .create_room(&name, kind, JoinPolicy::Allowlist, "")
            .await
            .unwrap();
        let room = name.id();
        for (account, role) in [(1, Role::Speaker), (2, Role::Listener)] {
            self.grant(room, account, role).await;
        }
        room
    }

    /// A loopback node acting for anvil account `i`, checking rooms against the registry.
    pub async fn node(&self, dir: &Path, i: usize, bootstrap: &[Multiaddr]) -> RunningNode {
        self.node_with(dir, i, bootstrap, |_| {}).await
    }

    /// Like [`Self::node`], with `adjust` applied to the config first.
    pub async fn node_with(
        &self,
        dir: &Path,
        i: usize,
        bootstrap: &[Multiaddr],
        adjust: impl FnOnce(&mut NodeConfig),
    ) -> RunningNode {
        let key_file = self.key_file(dir, i);
        let mut config = NodeConfig::loopback(dir.to_path_buf());
        config.net.bootstrap = bootstrap.to_vec();
        config.identity = Some(IdentityConfig {
            key: AccountKeySource::File(key_file),
            binding_ttl: Duration::from_secs(3600),
        });
        config.registry = Some(RegistryConfig {
            rpc_url: self.proxy.url(),
            address: self.registry.address(),
            poll_interval: Duration::from_millis(200),
            max_staleness: chroom_node::config::DEFAULT_MAX_STALENESS,
            link_check_timeout: chroom_node::config::DEFAULT_LINK_CHECK_TIMEOUT,
            new_accounts_per_second: chroom_node::config::DEFAULT_NEW_ACCOUNTS_PER_SECOND,
        });
        adjust(&mut config);
        RunningNode::start(config).await.expect("node starts")
    }
}

/// Runs the page scenario `tests/web/<script>` in Debian's Chromium (playwright-core from
/// `node_modules`; Firefox through puppeteer-core for pages the scenario opens there) with
/// `input`, and returns the JSON it prints. Panics with the script's
/// error output if it fails or takes over `timeout`.
pub async fn run_page_scenario(
    script: &str,
    input: serde_json::Value,
    timeout: Duration,
) -> serde_json::Value {
    run_page_scenario_in(None, script, input, timeout).await
}

/// Like [`run_page_scenario`], with Node.js and its Chromium inside the network namespace
/// `netns`, if given (a lab host): the page then reaches that host's loopback, as a browser
/// in a home reaches the node running beside it.
pub async fn run_page_scenario_in(
    netns: Option<&str>,
    script: &str,
    input: serde_json::Value,
    timeout: Duration,
) -> serde_json::Value {
    let launcher: Vec<&str> = match netns {
        Some(netns) => vec!["ip", "netns", "exec", netns],
        None => vec![],
    };
    run_page_scenario_with(&launcher, script, input, timeout).await
}

/// Like [`run_page_scenario`], on a virtual X display (Xvfb): its Firefox then runs with a
/// window (`lib.mjs` launches it headless only without a display), so it has a screen to
/// share, which headless Firefox has not. Chromium stays headless with its fake screen.
pub async fn run_page_scenario_on_a_display(
    script: &str,
    input: serde_json::Value,
    timeout: Duration,
) -> serde_json::Value {
    run_page_scenario_with(&["xvfb-run", "--auto-servernum"], script, input, timeout).await
}

/// Runs `node tests/web/<script> <input>` behind `launcher` (a command and its arguments that
/// run the rest, or nothing).
async fn run_page_scenario_with(
    launcher: &[&str],
    script: &str,
    input: serde_json::Value,
    timeout: Duration,
) -> serde_json::Value {
    let root = workspace_root();
    let (program, args) = launcher
        .split_first()
        .map_or(("node", &[][..]), |(program, rest)| (*program, rest));
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    if !launcher.is_empty() {
        command.arg("node");
    }
    command
        .arg(root.join("tests/web").join(script))
        .arg(input.to_string());
    run_json_client(command, script, timeout).await
}

/// Runs `tests/interop/aiortc_page.py` (aiortc, a WebRTC stack that is no browser, driving
/// the page API of the node whose page link is `page_link`) in `room` for `seconds`, and
/// returns the JSON it prints.
pub async fn run_aiortc_page(page_link: &str, room: &str, seconds: u64) -> serde_json::Value {
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(workspace_root().join("tests/interop/aiortc_page.py"))
        .args([page_link, room, &seconds.to_string()]);
    run_json_client(command, "aiortc_page.py", Duration::from_secs(seconds + 60)).await
}

/// Runs `tests/interop/aiortc_whip.py` (aiortc as a WHIP publisher) against the WHIP endpoint
/// `url` with `token`, sending `frames` video frames, and returns the JSON it prints.
pub async fn run_aiortc_whip(url: &str, token: &str, frames: u64) -> serde_json::Value {
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(workspace_root().join("tests/interop/aiortc_whip.py"))
        .args([url, token, &frames.to_string()]);
    let timeout = Duration::from_secs(frames / 30 + 90);
    run_json_client(command, "aiortc_whip.py", timeout).await
}

/// Runs `tests/interop/aiortc_whep.py` (aiortc as a WHEP player) against the WHEP endpoint
/// `url` with `token` for `seconds`, and returns the JSON it prints.
pub async fn run_aiortc_whep(url: &str, token: &str, seconds: u64) -> serde_json::Value {
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(workspace_root().join("tests/interop/aiortc_whep.py"))
        .args([url, token, &seconds.to_string()]);
    run_json_client(command, "aiortc_whep.py", Duration::from_secs(seconds + 60)).await
}

/// Runs `command` (a test client printing one JSON line) from the workspace root and returns
/// what it printed. Panics with its error output if it fails or takes over `timeout`.
async fn run_json_client(
    mut command: tokio::process::Command,
    script: &str,
    timeout: Duration,
) -> serde_json::Value {
    let mut child = command
        .current_dir(workspace_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{script} does not start ({e}): run scripts/setup.sh"));
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let read_all = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text)
            .await
            .ok();
        text
    };
    let run = async {
        let (out, err, status) = tokio::join!(
            read_all(Box::new(stdout)),
            read_all(Box::new(stderr)),
            child.wait()
        );
        (out, err, status.expect("waiting for the client"))
    };
    let (out, err, status) = tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| panic!("{script} took over {timeout:?}"));
    assert!(status.success(), "{script} failed ({status}):\n{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{script} printed {out:?}: {e}"))
}

/// Checks a recorded IVF against the source: in order, ≥ 99 % of the frames in the recorded
/// span, every one byte-identical to the source frame at its position.
pub fn check_against_source(recorded: &Path, source: &MediaSource) {
    let got = compare_with_source(recorded, source);
    let ratio = got.frames as f64 / got.span as f64;
    assert!(
        ratio >= 0.99,
        "only {} of {} frames arrived",
        got.frames,
        got.span
    );
}

/// What [`compare_with_source`] found.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    /// Frames recorded.
    pub frames: usize,
    /// Frames the source sent from the first recorded one to the last.
    pub span: usize,
    /// The longest time between two recorded frames (by their timestamps).
    pub longest_gap: Duration,
}

/// Compares a recorded IVF with the source: panics unless the frames are in order and every
/// one is byte-identical to the source frame at its position; says how many arrived.
pub fn compare_with_source(recorded: &Path, source: &MediaSource) -> Recorded {
    let frames: Vec<&[u8]> = source.video_frames().collect();
    let ticks = source.video_frame_ticks().unwrap();
    let (header, got) =
        chroom_media::container::ivf::read_all(std::fs::File::open(recorded).unwrap()).unwrap();
    assert_eq!(&header.fourcc, b"VP80");
    assert_eq!(header.frame_count as usize, got.len());
    // The first recorded frame is a keyframe; find where it sits in the (looping) source.
    let start = frames
        .iter()
        .position(|f| *f == got[0].data.as_slice())
        .expect("first recorded frame is a source frame");
    let mut previous_pts = None;
    let mut longest_gap = 0;
    for frame in &got {
        if let Some(previous) = previous_pts {
            assert!(frame.pts > previous, "frames out of order");
            longest_gap = longest_gap.max(frame.pts - previous);
        }
        previous_pts = Some(frame.pts);
        assert_eq!(
            frame.pts % ticks,
            0,
            "pts {} is not on a frame boundary",
            frame.pts
        );
        let index = (start + (frame.pts / ticks) as usize) % frames.len();
        assert!(
            frame.data == frames[index],
            "recorded frame at pts {} differs from source frame {index}",
            frame.pts
        );
    }
    let timebase = Duration::from_secs(u64::from(header.timebase_num));
    Recorded {
        frames: got.len(),
        span: (got.last().unwrap().pts / ticks) as usize + 1,
        longest_gap: timebase * u32::try_from(longest_gap).unwrap_or(u32::MAX)
            / header.timebase_den,
    }
}

/// The codec ffprobe reads in the recorded file at `path`, asserting ffprobe accepts the file
/// without a complaint (a valid container, not just bytes).
pub fn ffprobe_codec(path: &Path) -> String {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/setup.sh installs ffmpeg)");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "ffprobe rejected {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
