//! `chroom`: run a node, publish files into a room, record a room, run benchmarks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chroom_node::admin;
use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_node::record::{Recorder, StopAfter};
use chroom_node::{NodeConfig, Overrides, RunningNode};
use chroom_room::Participation;
use chroom_types::{MediaKind, RoomName};
use clap::{Args, Parser, Subcommand};

mod bench;
mod room;
use room::RoomCommand;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "chroom",
    version,
    about = "Decentralized real-time rooms: run a node, publish, record"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node until Ctrl-C.
    Node(NodeArgs),
    /// Publish VP8 (IVF) and/or Opus (Ogg) files into a room, live, looping.
    Publish {
        #[command(flatten)]
        node: NodeArgs,
        /// Room name.
        #[arg(long)]
        room: RoomName,
        /// VP8 video in an IVF file.
        #[arg(long)]
        video: Option<PathBuf>,
        /// A smaller encoding of the same video, sent as a lower simulcast layer (repeatable,
        /// lowest first; `--video` is the top layer): each link gets the layer it carries.
        #[arg(long = "layer", value_name = "IVF", requires = "video")]
        layers: Vec<PathBuf>,
        /// Opus audio in an Ogg file.
        #[arg(long)]
        audio: Option<PathBuf>,
        /// Play the files once and exit instead of looping.
        #[arg(long)]
        once: bool,
        /// Broadcast: be the root of the room's relay tree, feeding this many children
        /// directly (relayers carry it further).
        #[arg(long, value_name = "CHILDREN", conflicts_with = "meet")]
        broadcast: Option<u32>,
        /// Meet: receive every other member too (a headless conference member; what it
        /// receives is counted in `/metrics`, not kept).
        #[arg(long)]
        meet: bool,
        /// With --meet: tell every other member its video is shown this many pixels tall, as
        /// a page's gallery tile would (they send no taller layer than that needs).
        #[arg(long, value_name = "PIXELS", requires = "meet")]
        show_at: Option<u32>,
    },
    /// Record every publisher in a room to IVF and Ogg files.
    Record {
        #[command(flatten)]
        node: NodeArgs,
        /// Room name.
        #[arg(long)]
        room: RoomName,
        /// Directory for the files (one .ivf and one .ogg per publisher).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many video frames from a publisher.
        #[arg(long)]
        frames: Option<u64>,
        /// Watch a broadcast through its relay tree instead of linking to every publisher.
        #[arg(long)]
        broadcast: bool,
        /// Stop after this long (e.g. `30s`).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Print a running node's rooms, links and health, read from its `[metrics] listen`.
    /// Exits non-zero when it reports a problem.
    Status {
        /// The running node's config file: its `[metrics] listen` is asked.
        #[arg(long, default_value = "node-config/dev.toml")]
        config: PathBuf,
        /// Ask this address (`ip:port`) instead of the config's `[metrics] listen`.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Benchmarks (figures for docs/PERFORMANCE.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A local chain with the registry deployed, for development.
    #[command(subcommand)]
    Devnet(DevnetCommand),
    /// Create and manage rooms in the registry (signs with the config's `[identity]`).
    Room {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: RoomCommand,
    },
    /// Manage this node's entry in the relayer directory.
    Relayer {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: RelayerCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DevnetCommand {
    /// Start anvil, deploy the registry, write dev account keys and node configs; run until
    /// Ctrl-C.
    Up {
        /// RPC port.
        #[arg(long, default_value_t = 8545)]
        port: u16,
        /// Where keys and configs go.
        #[arg(long, default_value = ".chroom/devnet")]
        dir: PathBuf,
        /// The anvil binary.
        #[arg(
            long,
            default_value = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
        )]
        anvil: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RelayerCommand {
    /// Register this node (PeerId from the data dir) as a relayer of the config's account.
    Register {
        /// Children this relayer can feed.
        #[arg(long)]
        capacity: u32,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Time from `chroom record` start to its first frame, on loopback.
    FirstFrame {
        /// VP8 IVF file to publish.
        #[arg(long, default_value = "fixtures/generated/video.ivf")]
        video: PathBuf,
        /// Opus Ogg file to publish.
        #[arg(long, default_value = "fixtures/generated/audio.ogg")]
        audio: PathBuf,
        /// Recorder starts to time.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// A flood of fresh accounts asking a node to join a members-only room, on a local anvil:
    /// the chain RPC rate and memory it causes, and an honest member's join time meanwhile.
    Flood {
        /// VP8 IVF file to publish.
        #[arg(long, default_value = "fixtures/generated/video.ivf")]
        video: PathBuf,
        /// Opus Ogg file to publish.
        #[arg(long, default_value = "fixtures/generated/audio.ogg")]
        audio: PathBuf,
        /// The anvil binary.
        #[arg(
            long,
            default_value = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
        )]
        anvil: PathBuf,
        /// Fresh accounts, one request each.
        #[arg(long, default_value_t = 10_000)]
        accounts: usize,
        /// Spread over this long.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        over: Duration,
        /// Connections they come over (each its own PeerId).
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// `[registry] new_accounts_per_second` values to run the flood against, one run each
        /// (the default's high one stands for a node without the limit).
        #[arg(long, value_delimiter = ',', default_value = "20,1000000")]
        limits: Vec<u32>,
    },
    /// Time from a ban being mined to the banned member's link closing, on a local anvil.
    Revoke {
        /// VP8 IVF file to publish.
        #[arg(long, default_value = "fixtures/generated/video.ivf")]
        video: PathBuf,
        /// Opus Ogg file to publish.
        #[arg(long, default_value = "fixtures/generated/audio.ogg")]
        audio: PathBuf,
        /// The anvil binary.
        #[arg(
            long,
            default_value = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
        )]
        anvil: PathBuf,
        /// Bans to time (one fresh member each, at most 8).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// From `kill -9` of a room's host to every member naming the same acting host, and from
    /// its return to every member naming it host again, on a local anvil.
    Failover {
        /// Opus Ogg file the host publishes.
        #[arg(long, default_value = "fixtures/generated/audio.ogg")]
        audio: PathBuf,
        /// The anvil binary.
        #[arg(
            long,
            default_value = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
        )]
        anvil: PathBuf,
        /// Failovers to time.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Shared notes between loopback nodes: keystroke latency node to node, bytes per
    /// keystroke, a newcomer catching up on a large note, memory per open note.
    Docs {
        /// Keystrokes to time.
        #[arg(long, default_value_t = 500)]
        keys: usize,
        /// Size of the note a newcomer catches up on, in bytes of text.
        #[arg(long, default_value_t = 1_000_000)]
        note_bytes: usize,
        /// Newcomers to time.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Also time keystrokes page to page, in Chromium (run from the repository after
        /// scripts/setup.sh).
        #[arg(long)]
        pages: bool,
    },
    /// What a member arriving or leaving costs the orchestrator core (run by every node).
    Orchestrator {
        /// Room sizes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        members: Vec<u32>,
        /// Arrivals and departures to time per size.
        #[arg(long, default_value_t = 2000)]
        changes: usize,
    },
    /// Forwarding throughput and hop latency of one relayer feeding N viewers, on loopback.
    Relay {
        /// Children counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
        children: Vec<usize>,
        /// Measurement window per count.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Packets per second the broadcaster sends.
        #[arg(long, default_value_t = 4000)]
        packets_per_second: u32,
        /// Viewers take every datagram on its own (no UDP GRO): loopback coalesces what a
        /// network card would not.
        #[arg(long)]
        no_receive_offload: bool,
        /// Nodes estimate no link's bandwidth (no transport-wide congestion feedback): its
        /// cost on the relayer is the difference.
        #[arg(long)]
        no_bandwidth_estimation: bool,
    },
    /// A call of browser pages between `members` node processes: time from clicking Join to
    /// the first remote video frame, and CPU and RSS of one node serving its page in the call.
    Call {
        /// Browser engines of the joining page, measured one after the other in one run (the
        /// other members' pages are Chromium).
        #[arg(long, value_delimiter = ',', default_value = "chromium")]
        engines: Vec<bench::Engine>,
        /// Members in the call (each a node process and a page).
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Joins to time.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// CPU and RSS are measured over this window of the whole call.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Writes each node's log (at `chroom=debug` unless RUST_LOG says otherwise) to
        /// `<DIR>/node-<i>.log`, to see where a join's time goes.
        #[arg(long)]
        logs: Option<PathBuf>,
    },
    /// Time for a file shared in a room to reach every receiver whole and checked, on
    /// loopback.
    Files {
        /// File size in bytes.
        #[arg(long, default_value_t = 5_000_000)]
        size: usize,
        /// Members receiving it.
        #[arg(long, default_value_t = 2)]
        receivers: usize,
        /// Files to share.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The sharer's `[files] serve_kbps`.
        #[arg(long, default_value_t = chroom_node::config::DEFAULT_FILE_SERVE_KBPS)]
        serve_kbps: u32,
    },
    /// CPU and RSS of a publisher node serving N recorder processes.
    Serve {
        /// VP8 IVF file to publish.
        #[arg(long, default_value = "fixtures/generated/video.ivf")]
        video: PathBuf,
        /// Opus Ogg file to publish.
        #[arg(long, default_value = "fixtures/generated/audio.ogg")]
        audio: PathBuf,
        /// Recorder counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,10")]
        recorders: Vec<usize>,
        /// Measurement window per count.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// A conference of headless members (node processes publishing the test media and
    /// receiving everyone): per-node CPU, RSS, upload and video frames delivered, by size.
    Conference {
        /// VP8 IVF file every member publishes.
        #[arg(long, default_value = "fixtures/generated/video.ivf")]
        video: PathBuf,
        /// Opus Ogg file every member publishes.
        #[arg(long, default_value = "fixtures/generated/audio.ogg")]
        audio: PathBuf,
        /// Conference sizes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "4,8,16,24")]
        members: Vec<usize>,
        /// Time for the members to find and link each other before measuring.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Measurement window per size.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Members do not estimate their links' bandwidth (`[media] bandwidth_estimation =
        /// false`), to see what estimating costs.
        #[arg(long)]
        no_bandwidth_estimation: bool,
        /// Members send this smaller encoding as a lower simulcast layer too (repeatable,
        /// lowest first), as pages send their camera.
        #[arg(long = "layer", value_name = "IVF")]
        layers: Vec<PathBuf>,
        /// Members show each other this many pixels tall (a gallery's tiles): with layers,
        /// each sends the others the smallest layer that tall.
        #[arg(long, value_name = "PIXELS")]
        show_at: Option<u32>,
    },
}

/// Options every node-running command shares.
#[derive(Debug, Args)]
struct NodeArgs {
    /// Node config file.
    #[arg(long, default_value = "node-config/dev.toml")]
    config: PathBuf,
    /// Overrides `node.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `net.listen` (repeatable).
    #[arg(long)]
    listen: Vec<String>,
    /// Adds a bootstrap peer multiaddr (repeatable).
    #[arg(long)]
    bootstrap: Vec<String>,
}

impl NodeArgs {
    fn load(&self) -> anyhow::Result<NodeConfig> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            bootstrap: self.bootstrap.clone(),
        };
        Ok(NodeConfig::load(&self.config, &overrides)?)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // Logs go to stderr so stdout stays for machine-readable lines (peer id, addresses, counts).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn start(args: &NodeArgs) -> anyhow::Result<RunningNode> {
    let config = args.load()?;
    init_tracing(&config.log_filter);
    let node = RunningNode::start(config).await?;
    println!("peer_id {}", node.peer_id());
    for addr in node.listen_addrs().await? {
        println!("listen {addr}");
    }
    if let Some(link) = node.page_link() {
        println!("web {link}");
    }
    if let Some(token) = node.whip_token() {
        println!("whip_token {token}");
    }
    if let Some(addr) = node.metrics_addr() {
        println!("metrics http://{addr}/metrics");
    }
    Ok(node)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(args) => {
            let node = start(&args).await?;
            tokio::signal::ctrl_c()
                .await
                .context("waiting for ctrl-c")?;
            node.shutdown().await;
        }
        Command::Publish {
            node,
            room,
            video,
            layers,
            audio,
            once,
            broadcast,
            meet,
            show_at,
        } => {
            let source = MediaSource::load(video.as_deref(), audio.as_deref())?
                .with_lower_layers(&layers)?;
            let mut node = start(&node).await?;
            let participation = match broadcast {
                Some(capacity) => Participation::Broadcast {
                    kinds: source.kinds(),
                    capacity,
                },
                None if meet => {
                    // Read and let go of what arrives: counted by the media actor, kept by
                    // nobody (an unread channel would drop frames instead).
                    if let Some(mut frames) = node.take_frames() {
                        tokio::spawn(async move { while frames.recv().await.is_some() {} });
                    }
                    Participation::Meet {
                        publish: source.kinds(),
                        receive: vec![MediaKind::Audio, MediaKind::Video],
                    }
                }
                None => Participation::Publish(source.kinds()),
            };
            node.join(room.id(), participation).await?;
            if let Some(height) = show_at {
                tokio::spawn(chroom_node::publish::show_members_at(
                    (*node).clone(),
                    room.id(),
                    height,
                ));
            }
            println!("publishing in room {room:?}");
            let cancel = CancellationToken::new();
            let looping = if once {
                Looping::Once
            } else {
                Looping::Forever
            };
            let stats = tokio::select! {
                stats = publish(&node, &source, looping, cancel.clone()) => stats?,
                _ = tokio::signal::ctrl_c() => {
                    cancel.cancel();
                    Default::default()
                }
            };
            println!(
                "published {} video frames, {} audio packets",
                stats.video_frames, stats.audio_packets
            );
            node.shutdown().await;
        }
        Command::Record {
            node,
            room,
            out,
            frames,
            broadcast,
            duration,
        } => {
            let started = Instant::now();
            let mut node = start(&node).await?;
            let mut received = node.take_frames().context("frames already taken")?;
            let kinds = vec![MediaKind::Audio, MediaKind::Video];
            let participation = if broadcast {
                Participation::View(kinds)
            } else {
                Participation::Receive(kinds)
            };
            node.join(room.id(), participation).await?;
            println!("recording room {room:?} into {}", out.display());
            let stop = StopAfter {
                video_frames: frames,
                duration,
            };
            let mut recorder = Recorder::new(&out, started)?;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
            let mut last_refusal = None;
            while !recorder.is_done(&stop) {
                tokio::select! {
                    Some(frame) = received.recv() => recorder.write(&frame)?,
                    _ = tick.tick() => {
                        print_progress(&recorder);
                        // Say why nothing arrives, when a publisher refused us.
                        let refusal = node.stats().await?.last_refusal;
                        if refusal.is_some() && refusal != last_refusal {
                            println!("refused: {}", refusal.as_deref().unwrap_or_default());
                            last_refusal = refusal;
                        }
                    }
                    _ = &mut ctrl_c => break,
                }
            }
            let stats = recorder.finish()?;
            if let Some(first) = stats.first_frame_after {
                println!("first_frame_ms {}", first.as_millis());
            }
            for p in &stats.publishers {
                println!(
                    "done {} video_frames {} audio_packets {}",
                    p.peer, p.video_frames, p.audio_packets
                );
            }
            node.shutdown().await;
        }
        Command::Status { config, addr } => {
            let addr = match addr {
                Some(addr) => addr,
                None => NodeConfig::load(&config, &Overrides::default())?
                    .metrics
                    .with_context(|| {
                        format!(
                            "{} has no [metrics] section: the node serves no status (or pass \
                             --addr)",
                            config.display()
                        )
                    })?,
            };
            let report = chroom_node::metrics::fetch_status(addr).await?;
            print!("{}", report.to_text());
            anyhow::ensure!(
                report.problems.is_empty(),
                "the node reports {} problem(s)",
                report.problems.len()
            );
        }
        Command::Devnet(DevnetCommand::Up { port, dir, anvil }) => {
            init_tracing("chroom=info");
            admin::devnet_up(&anvil, port, &dir).await?;
        }
        Command::Room { node, action } => {
            let config = node.load()?;
            init_tracing("chroom=warn");
            admin::room(&config, action.into_action()?).await?;
        }
        Command::Relayer {
            node,
            action: RelayerCommand::Register { capacity },
        } => {
            let config = node.load()?;
            init_tracing("chroom=warn");
            admin::register_relayer(&config, capacity).await?;
        }
        Command::Bench(BenchCommand::FirstFrame { video, audio, runs }) => {
            init_tracing("chroom=warn");
            let source = MediaSource::load(Some(&video), Some(&audio))?;
            bench::first_frame(&source, runs).await?;
        }
        Command::Bench(BenchCommand::Flood {
            video,
            audio,
            anvil,
            accounts,
            over,
            clients,
            limits,
        }) => {
            init_tracing("chroom=error");
            let source = MediaSource::load(Some(&video), Some(&audio))?;
            let plan = bench::FloodPlan {
                accounts,
                over,
                clients,
            };
            bench::flood(&anvil, &source, plan, &limits).await?;
        }
        Command::Bench(BenchCommand::Failover { audio, anvil, runs }) => {
            init_tracing("chroom=warn");
            bench::failover(&anvil, &audio, runs).await?;
        }
        Command::Bench(BenchCommand::Docs {
            keys,
            note_bytes,
            runs,
            pages,
        }) => {
            init_tracing("chroom=warn");
            bench::docs(keys, note_bytes, runs, pages).await?;
        }
        Command::Bench(BenchCommand::Orchestrator { members, changes }) => {
            bench::orchestrator(&members, changes);
        }
        Command::Bench(BenchCommand::Revoke {
            video,
            audio,
            anvil,
            runs,
        }) => {
            init_tracing("chroom=warn");
            let source = MediaSource::load(Some(&video), Some(&audio))?;
            bench::revoke(&anvil, &source, runs).await?;
        }
        Command::Bench(BenchCommand::Relay {
            children,
            window,
            packets_per_second,
            no_receive_offload,
            no_bandwidth_estimation,
        }) => {
            init_tracing("chroom=warn");
            let plan = bench::RelayPlan {
                children,
                window,
                offered_pps: packets_per_second,
                receive_offload: !no_receive_offload,
                bandwidth_estimation: !no_bandwidth_estimation,
            };
            bench::relay(&plan).await?;
        }
        Command::Bench(BenchCommand::Call {
            engines,
            members,
            runs,
            window,
            logs,
        }) => {
            init_tracing("chroom=warn");
            bench::call(&engines, members, runs, window, logs.as_deref()).await?;
        }
        Command::Bench(BenchCommand::Files {
            size,
            receivers,
            runs,
            serve_kbps,
        }) => {
            bench::files(size, receivers, runs, serve_kbps).await?;
        }
        Command::Bench(BenchCommand::Conference {
            video,
            audio,
            members,
            settle,
            window,
            no_bandwidth_estimation,
            layers,
            show_at,
        }) => {
            init_tracing("chroom=warn");
            let plan = bench::ConferencePlan {
                members,
                settle,
                window,
                bandwidth_estimation: !no_bandwidth_estimation,
                lower_layers: layers,
                show_at,
            };
            bench::conference(&video, &audio, &plan).await?;
        }
        Command::Bench(BenchCommand::Serve {
            video,
            audio,
            recorders,
            window,
        }) => {
            init_tracing("chroom=warn");
            bench::serve(&video, &audio, &recorders, window).await?;
        }
    }
    Ok(())
}

fn print_progress(recorder: &Recorder) {
    for p in &recorder.stats().publishers {
        println!(
            "frames {} video {} audio {}",
            chroom_net::fmt_short(&p.peer),
            p.video_frames,
            p.audio_packets
        );
    }
}
