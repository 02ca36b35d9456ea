//! `chroom bench relay`: one relayer's forwarding rate, its cost, its hop latency, and what
//! its viewers were delivered.
//!
//! The scenario, so another SFU can be put through the same numbers: one publisher, one
//! relayer, N viewers, all on loopback. The publisher sends synthetic VP8-sized frames (12 kB,
//! 11 RTP packets of ~1 100 bytes of payload, ~1 200-byte SRTP datagrams) at the offered rate;
//! the relayer receives them once over DTLS-SRTP and sends each packet to every viewer over its
//! own DTLS-SRTP link. The relayer is a `chroom node` process of its own (its CPU is the whole
//! process's, from `/proc`); the publisher and the viewers share this process, the publisher
//! on a thread of its own.

use chroom_media::LatencyHistogram;
use chroom_node::metrics::{MediaTotals, fetch_status};

use super::*;

/// What `chroom bench relay` measures.
pub(crate) struct RelayPlan {
    /// Viewer counts, one after the other.
    pub(crate) children: Vec<usize>,
    /// The measurement window per count.
    pub(crate) window: Duration,
    /// Packets per second the publisher sends.
    pub(crate) offered_pps: u32,
    /// Viewers let the kernel coalesce received datagrams (GRO). Off, each datagram costs
    /// their side a wake-up, as from a network card that coalesces nothing.
    pub(crate) receive_offload: bool,
    /// Every node estimates its links' bandwidth (the relayer picks each viewer's layer).
    pub(crate) bandwidth_estimation: bool,
}

/// For each count in `plan`, a relay tree of one publisher, one relayer process and that many
/// viewers; prints one table row each (see the module doc).
pub(crate) async fn relay(plan: &RelayPlan) -> anyhow::Result<()> {
    println!(
        "| viewers | forwarded pkt/s | relayer CPU | forwarded pkt/s per relayer core | hop p50 | hop p99 | packets at the viewers / relayed to them | frames delivered / sent × viewers (loss) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &count in &plan.children {
        relay_once(count, plan).await?;
    }
    Ok(())
}

/// The relayer process and where it serves `/status`.
struct Relayer {
    child: Child,
    status: std::net::SocketAddr,
}

impl Relayer {
    async fn start(
        dir: &Path,
        viewers: usize,
        plan: &RelayPlan,
        root: &str,
    ) -> anyhow::Result<Self> {
        let config = dir.join("relayer.toml");
        // Capacity is the upload budget over the stream's bitrate: `viewers` children and a
        // fifth more, so a viewer that left a slot the relayer still counts (it learns of it
        // only when the viewer's `Left` arrives) does not lock a newcomer out.
        let stream_kbps = 1000;
        std::fs::write(
            &config,
            format!(
                "{OPEN_NODE}[net]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n\n\
                 [media]\nbind = \"127.0.0.1:0\"\nmax_links = {max_links}\n\
                 bandwidth_estimation = {estimate}\n\n\
                 [relay]\nupload_budget_kbps = {budget}\nstream_kbps = {stream_kbps}\n\
                 allocation_kbps = {stream_kbps}\nrooms = [\"{ROOM}\"]\n\n\
                 [metrics]\nlisten = \"127.0.0.1:0\"\n\n[log]\nfilter = \"chroom=warn\"\n",
                max_links = viewers + 8,
                estimate = plan.bandwidth_estimation,
                budget = (viewers + viewers.div_ceil(5)) * stream_kbps,
            ),
        )?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["node", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("relayer"));
        // Its warnings and errors (a config it refuses, say) show beside the table.
        command.stderr(Stdio::inherit());
        let mut bootstrap = Some(root.to_owned());
        let (child, url) = spawn_announcing(command, &mut bootstrap, "metrics http://")
            .await
            .context("the relayer process")?;
        let status = url.trim_end_matches("/metrics").parse()?;
        Ok(Self { child, status })
    }

    /// Its CPU ticks so far and its media counters.
    async fn sample(&self) -> anyhow::Result<(u64, MediaTotals)> {
        let pid = self.child.id().context("the relayer exited")?;
        let (ticks, _) = proc_sample(pid)?;
        Ok((ticks, fetch_status(self.status).await?.media))
    }
}

const ROOM: &str = "bench-relay";

/// The publisher's own runtime, let go without waiting for its tasks however the run ends (a
/// runtime dropped the usual way inside another would block it).
struct PublisherRuntime(Option<tokio::runtime::Runtime>);

impl PublisherRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }
}

impl Drop for PublisherRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

async fn relay_once(count: usize, plan: &RelayPlan) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let room: RoomName = ROOM.parse()?;
    let node_config = |name: String| {
        let mut config = open_loopback(dir.path().join(name));
        config.media.bandwidth_estimation = plan.bandwidth_estimation;
        config
    };
    // The publisher gets a runtime (a thread) of its own: among the viewers' tasks it would wait
    // behind fifty nodes decrypting, and a relayer takes a parent silent for 300 ms for gone.
    let publisher_runtime = PublisherRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-publisher")
            .enable_all()
            .build()?,
    ));
    let root = publisher_runtime
        .handle()
        .spawn(RunningNode::start(node_config("root".into())))
        .await??;
    // The root feeds the relayer only: every viewer hangs under it.
    root.join(
        room.id(),
        Participation::Broadcast {
            kinds: vec![MediaKind::Video],
            capacity: 1,
        },
    )
    .await?;
    let bootstrap = root.listen_addrs().await?;
    let root_addr = bootstrap
        .iter()
        .map(ToString::to_string)
        .find(|addr| addr.contains("/tcp/"))
        .context("the root's TCP address")?;
    let mut relayer = Relayer::start(dir.path(), count, plan, &root_addr).await?;
    let root_id = root.peer_id();
    wait_until(Duration::from_secs(30), "relayer attached", async || {
        let children = root.tree_position(room.id()).await.ok()?.children;
        (children.len() == 1).then_some(())
    })
    .await?;
    // The broadcast runs before the viewers come: a tree whose parent sends nothing takes it
    // for gone.
    let cancel = CancellationToken::new();
    let frames_sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sender = publisher_runtime.handle().spawn(send_synthetic(
        root,
        plan.offered_pps,
        frames_sent.clone(),
        cancel.clone(),
    ));
    let mut viewers = Vec::new();
    for i in 0..count {
        let mut config = node_config(format!("viewer-{i}"));
        config.net.bootstrap = bootstrap.clone();
        config.media.receive_offload = plan.receive_offload;
        let viewer = RunningNode::start(config).await?;
        viewer
            .join(room.id(), Participation::View(vec![MediaKind::Video]))
            .await?;
        viewers.push(viewer);
    }
    let attach_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut attached = 0;
        let mut parents = std::collections::BTreeMap::new();
        let mut orphans = Vec::new();
        for viewer in &viewers {
            let parent = viewer.tree_position(room.id()).await?.parent;
            if parent.is_some_and(|parent| parent != root_id) {
                attached += 1;
            }
            if parent.is_none() {
                orphans.push(viewer.peer_id().to_string());
            }
            *parents.entry(parent.map(|p| p.to_string())).or_insert(0) += 1;
        }
        if attached == count {
            break;
        }
        anyhow::ensure!(
            Instant::now() < attach_deadline,
            "{attached} of {count} viewers under the relayer after 120 s; parents: {parents:?}; \
             without a parent: {orphans:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let links connect and the rate settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Frames each viewer's media stack received whole and decrypted: those handed to the
    // node, and those the node let go because nothing here reads them.
    let frames_delivered = async || -> anyhow::Result<u64> {
        let mut frames = 0;
        for viewer in &viewers {
            let relay = viewer.stats().await?.relay;
            frames += relay.video_frames_received + relay.frames_dropped;
        }
        Ok(frames)
    };
    let sent_before = frames_sent.load(std::sync::atomic::Ordering::Relaxed);
    let delivered_before = frames_delivered().await?;
    let (ticks_before, before) = relayer.sample().await?;
    let started = Instant::now();
    tokio::time::sleep(plan.window).await;
    let (ticks_after, after) = relayer.sample().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let sent_frames = frames_sent.load(std::sync::atomic::Ordering::Relaxed) - sent_before;
    // Frames in flight at the window's edges make this exact only to a frame or two each.
    let delivered_frames = frames_delivered().await? - delivered_before;
    cancel.cancel();
    let _ = sender.await;
    // Every packet in flight arrives, and every link reports its count (once a second): the
    // packet counts are totals over the whole run, each viewer's from its link's start.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, total) = relayer.sample().await?;
    let mut delivered_packets = 0;
    for viewer in &viewers {
        delivered_packets += viewer.stats().await?.relay.rtp_packets_received;
    }

    let packets = after.packets_forwarded - before.packets_forwarded;
    let cpu_seconds = (ticks_after - ticks_before) as f64 / 100.0;
    let hops = LatencyHistogram::from_buckets(&after.hop_buckets)
        .since(&LatencyHistogram::from_buckets(&before.hop_buckets));
    let micros = |p| {
        hops.percentile(p)
            .map_or_else(|| "-".to_owned(), |d| format!("{} µs", d.as_micros()))
    };
    let per_core = if cpu_seconds > 0.0 {
        format!("{:.0}", packets as f64 / cpu_seconds)
    } else {
        "-".to_owned()
    };
    // Packets the viewers' stacks received and decrypted (str0m counts retransmissions too,
    // so more than the relayer sent first-hand means resends) against what it relayed.
    let relayed = total.packets_forwarded;
    let packet_share = 100.0 * delivered_packets as f64 / relayed.max(1) as f64;
    // Frames whole at the viewers against what the publisher sent, once per viewer: the loss
    // a viewer sees.
    let owed_frames = sent_frames * count as u64;
    let frame_share = 100.0 * delivered_frames as f64 / owed_frames.max(1) as f64;
    println!(
        "| 1 → {count} | {:.0} | {:.0} % | {per_core} | {} | {} | {delivered_packets} / {relayed} ({packet_share:.2} %) | {delivered_frames} / {owed_frames} ({:.3} % lost) |",
        packets as f64 / elapsed,
        cpu_seconds / elapsed * 100.0,
        micros(50.0),
        micros(99.0),
        (100.0 - frame_share).max(0.0),
    );
    let teardown = async {
        for viewer in viewers {
            viewer.shutdown().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), teardown)
        .await
        .is_err()
    {
        eprintln!("viewers took over 20 s to stop");
    }
    relayer.child.kill().await?;
    Ok(())
}

/// Sends VP8-sized synthetic frames (about 11 packets each) at `pps` packets per second, in
/// bursts once a millisecond: tokio's timers are no finer, so one frame per tick would cap the
/// rate near 1 000 frames per second.
async fn send_synthetic(
    root: RunningNode,
    pps: u32,
    frames_sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cancel: CancellationToken,
) {
    const FRAME_BYTES: usize = 12_000;
    const PACKETS_PER_FRAME: u32 = 11;
    const TICK: Duration = Duration::from_millis(1);
    let frames_per_second = (pps / PACKETS_PER_FRAME).max(1);
    let frame: std::sync::Arc<[u8]> = vec![0x10; FRAME_BYTES].into();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut rtp_time = 0u64;
    let step = u64::from(
        chroom_media::VIDEO_CLOCK_HZ / frames_per_second.min(chroom_media::VIDEO_CLOCK_HZ),
    );
    'sending: while !cancel.is_cancelled() {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(frames_per_second)) as u64;
        while sent < due {
            sent += 1;
            rtp_time += step;
            if root
                .send_frame(MediaKind::Video, rtp_time, frame.clone(), None)
                .await
                .is_err()
            {
                break 'sending;
            }
            frames_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    root.shutdown().await;
}
