//! `chroom bench relay`: one relayer's forwarding rate and hop latency.

use super::*;
/// Forwarding throughput and hop latency of one relayer feeding `children` viewers, for each
/// count given, and what the viewers were delivered: frames received whole and decrypted,
/// against the frames the broadcaster sent (the loss is the rest). The relayer runs alone on
/// its own thread (a single-threaded runtime), so its CPU time is that thread's; the
/// broadcaster sends synthetic VP8-sized frames at `offered_pps` packets per second.
pub(crate) async fn relay(
    children: &[usize],
    window: Duration,
    offered_pps: u32,
) -> anyhow::Result<()> {
    println!(
        "| children | forwarded pkt/s | payload Mbit/s | relayer CPU | pkt/s per core | hop p50 | hop p99 | frames delivered / sent × viewers |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &count in children {
        relay_once(count, window, offered_pps).await?;
    }
    Ok(())
}

/// The relayer's thread: its node, and its CPU time (ns) on request.
struct RelayerThread {
    node: RunningNode,
    cpu: std::sync::mpsc::SyncSender<tokio::sync::oneshot::Sender<u64>>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl RelayerThread {
    fn start(config: NodeConfig, room: RoomName, capacity: u32) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (cpu_tx, cpu_rx) =
            std::sync::mpsc::sync_channel::<tokio::sync::oneshot::Sender<u64>>(4);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("relayer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("relayer runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let node = match RunningNode::start(config).await {
                        Ok(node) => node,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Err(e) = node
                        .join(room.id(), Participation::Relay { capacity })
                        .await
                    {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    let _ = ready_tx.send(Ok(node));
                    let mut stop = std::pin::pin!(stop_rx);
                    loop {
                        // CPU requests come from another runtime: poll for them between ticks.
                        tokio::select! {
                            _ = &mut stop => break,
                            () = tokio::time::sleep(Duration::from_millis(20)) => {
                                while let Ok(reply) = cpu_rx.try_recv() {
                                    let _ = reply.send(thread_cpu_nanos().unwrap_or(0));
                                }
                            }
                        }
                    }
                });
            })?;
        let node = ready_rx.recv().context("relayer thread died")??;
        Ok(Self {
            node,
            cpu: cpu_tx,
            stop: stop_tx,
            thread,
        })
    }

    async fn cpu_nanos(&self) -> anyhow::Result<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cpu.send(tx).context("relayer thread stopped")?;
        rx.await.context("relayer thread stopped")
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        drop(self.node);
    }
}

async fn relay_once(count: usize, window: Duration, offered_pps: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let room: RoomName = "bench-relay".parse()?;
    let root = RunningNode::start(open_loopback(dir.path().join("root"))).await?;
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
    let mut relayer_config = open_loopback(dir.path().join("relayer"));
    relayer_config.net.bootstrap = bootstrap.clone();
    relayer_config.media.max_links = count + 8;
    let relayer = RelayerThread::start(relayer_config, room.clone(), u32::try_from(count)?)?;
    let relayer_id = relayer.node.peer_id();
    wait_until(Duration::from_secs(30), "relayer attached", async || {
        relayer
            .node
            .tree_position(room.id())
            .await
            .ok()?
            .parent
            .map(|_| ())
    })
    .await?;

    let cancel = CancellationToken::new();
    let frames_sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sender = tokio::spawn(send_synthetic(
        root,
        offered_pps,
        frames_sent.clone(),
        cancel.clone(),
    ));
    let mut viewers = Vec::new();
    for i in 0..count {
        let mut config = open_loopback(dir.path().join(format!("viewer-{i}")));
        config.net.bootstrap = bootstrap.clone();
        let viewer = RunningNode::start(config).await?;
        viewer
            .join(room.id(), Participation::View(vec![MediaKind::Video]))
            .await?;
        viewers.push(viewer);
    }
    for viewer in &viewers {
        wait_until(Duration::from_secs(60), "viewer attached", async || {
            let parent = viewer.tree_position(room.id()).await.ok()?.parent?;
            (parent == relayer_id).then_some(())
        })
        .await?;
    }
    // Let links connect and the rate settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Frames each viewer's media stack received whole and decrypted: those handed to the
    // node, and those the node let go because nothing here reads them (reading them all would
    // cost this process, which runs every viewer, more than the relayer it measures).
    let delivered = async || -> anyhow::Result<u64> {
        let mut frames = 0;
        for viewer in &viewers {
            let relay = viewer.stats().await?.relay;
            frames += relay.video_frames_received + relay.frames_dropped;
        }
        Ok(frames)
    };
    let sent_before = frames_sent.load(std::sync::atomic::Ordering::Relaxed);
    let delivered_before = delivered().await?;
    let before = relayer.node.stats().await?.relay;
    let cpu_before = relayer.cpu_nanos().await?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = relayer.node.stats().await?.relay;
    let cpu_after = relayer.cpu_nanos().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let sent = frames_sent.load(std::sync::atomic::Ordering::Relaxed) - sent_before;
    // Frames in flight at the window's edges make this exact only to a frame or two each.
    let delivered = delivered().await? - delivered_before;
    let delivered_share = 100.0 * delivered as f64 / (sent as f64 * count as f64).max(1.0);
    cancel.cancel();
    let _ = sender.await;

    let packets = after.packets_forwarded - before.packets_forwarded;
    let bytes = after.bytes_forwarded - before.bytes_forwarded;
    let cpu_seconds = (cpu_after - cpu_before) as f64 / 1e9;
    let hops = after.hop_latency.since(&before.hop_latency);
    let micros = |p| {
        hops.percentile(p)
            .map_or_else(|| "-".to_owned(), |d| format!("{} µs", d.as_micros()))
    };
    let per_core = if cpu_seconds > 0.0 {
        format!("{:.0}", packets as f64 / cpu_seconds)
    } else {
        "-".to_owned()
    };
    let row = format!(
        "| 1 → {count} | {:.0} | {:.1} | {:.0} % | {per_core} | {} | {} | {delivered_share:.2} % |",
        packets as f64 / elapsed,
        bytes as f64 * 8.0 / elapsed / 1e6,
        cpu_seconds / elapsed * 100.0,
        micros(50.0),
        micros(99.0),
    );
    println!("{row}");
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
    tokio::task::spawn_blocking(move || relayer.stop()).await?;
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

/// CPU time of the calling thread, in nanoseconds (scheduler accounting: finer than the
/// 10 ms ticks of `stat`, which matters for a thread using a few percent of a core).
fn thread_cpu_nanos() -> anyhow::Result<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    Ok(schedstat
        .split_whitespace()
        .next()
        .context("schedstat format")?
        .parse()?)
}
