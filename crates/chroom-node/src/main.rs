//! `chroom`: run a node, publish files into a room, record a room, run benchmarks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chroom_node::bench;
use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_node::record::{Recorder, StopAfter};
use chroom_node::{NodeConfig, Overrides, RunningNode};
use chroom_room::Participation;
use chroom_types::{MediaKind, RoomName};
use clap::{Args, Parser, Subcommand};
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
        /// Opus audio in an Ogg file.
        #[arg(long)]
        audio: Option<PathBuf>,
        /// Play the files once and exit instead of looping.
        #[arg(long)]
        once: bool,
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
        /// Stop after this long (e.g. `30s`).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Benchmarks (figures for docs/PERFORMANCE.md).
    #[command(subcommand)]
    Bench(BenchCommand),
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
            audio,
            once,
        } => {
            let source = MediaSource::load(video.as_deref(), audio.as_deref())?;
            let node = start(&node).await?;
            node.join(room.id(), Participation::Publish(source.kinds()))
                .await?;
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
            duration,
        } => {
            let started = Instant::now();
            let mut node = start(&node).await?;
            let mut received = node.take_frames().context("frames already taken")?;
            node.join(
                room.id(),
                Participation::Receive(vec![MediaKind::Audio, MediaKind::Video]),
            )
            .await?;
            println!("recording room {room:?} into {}", out.display());
            let stop = StopAfter {
                video_frames: frames,
                duration,
            };
            let mut recorder = Recorder::new(&out, started)?;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
            while !recorder.is_done(&stop) {
                tokio::select! {
                    Some(frame) = received.recv() => recorder.write(&frame)?,
                    _ = tick.tick() => print_progress(&recorder),
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
        Command::Bench(BenchCommand::FirstFrame { video, audio, runs }) => {
            init_tracing("chroom=warn");
            let source = MediaSource::load(Some(&video), Some(&audio))?;
            bench::first_frame(&source, runs).await?;
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
            chroom_node::node::short(&p.peer),
            p.video_frames,
            p.audio_packets
        );
    }
}
