//! Benchmarks behind `chroom bench`: figures for `docs/PERFORMANCE.md`, never assertions.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use chroom_room::Participation;
use chroom_types::{MediaKind, RoomName};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::NodeConfig;
use crate::RunningNode;
use crate::publish::{Looping, MediaSource, publish};

/// Starts a publisher and, `runs` times, a fresh recorder node bootstrapped to it; prints the
/// time from the recorder's start to its first frame and first keyframe.
pub async fn first_frame(source: &MediaSource, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let room: RoomName = "bench-first-frame".parse()?;
    let publisher = RunningNode::start(NodeConfig::loopback(dir.path().join("publisher"))).await?;
    publisher
        .join(room.id(), Participation::Publish(source.kinds()))
        .await?;
    let bootstrap = publisher.listen_addrs().await?;
    let cancel = CancellationToken::new();
    let playing = {
        let cancel = cancel.clone();
        let source = source.clone();
        let publisher = &publisher;
        async move { publish(publisher, &source, Looping::Forever, cancel).await }
    };
    let measure = async {
        let mut first_frame = Vec::new();
        let mut first_key = Vec::new();
        for run in 0..runs {
            // Each run would otherwise start right after the previous keyframe; spread the
            // starts over the keyframe interval so the keyframe wait is sampled fairly.
            tokio::time::sleep(Duration::from_millis((run as u64 * 173) % 500)).await;
            let started = Instant::now();
            let mut config = NodeConfig::loopback(dir.path().join(format!("recorder-{run}")));
            config.net.bootstrap = bootstrap.clone();
            let mut recorder = RunningNode::start(config).await?;
            let mut frames = recorder.take_frames().context("frames")?;
            recorder
                .join(
                    room.id(),
                    Participation::Receive(vec![MediaKind::Audio, MediaKind::Video]),
                )
                .await?;
            let mut got_first = None;
            let deadline = started + Duration::from_secs(20);
            let key = loop {
                let frame = tokio::time::timeout_at(deadline.into(), frames.recv())
                    .await
                    .context("no keyframe within 20 s")?
                    .context("recorder stopped")?;
                got_first.get_or_insert(frame.frame.received_at - started);
                if frame.frame.kind == MediaKind::Video
                    && crate::record::vp8_keyframe_size(&frame.frame.data).is_some()
                {
                    break frame.frame.received_at - started;
                }
            };
            let first = got_first.unwrap_or(key);
            println!(
                "run {run}: first frame {} ms, first keyframe {} ms",
                first.as_millis(),
                key.as_millis()
            );
            first_frame.push(first);
            first_key.push(key);
            recorder.shutdown().await;
        }
        report("first frame", &mut first_frame);
        report("first keyframe", &mut first_key);
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = measure => r,
        r = playing => r.map(|_| ()),
    };
    cancel.cancel();
    publisher.shutdown().await;
    result
}

fn report(what: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let p50 = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    println!(
        "{what}: p50 {} ms, max {} ms over {} runs",
        p50.as_millis(),
        max.as_millis(),
        samples.len()
    );
}

/// Runs `chroom publish` as a child process and, for each count in `recorder_counts`, that many
/// `chroom record` processes; samples the publisher's CPU time and RSS from /proc over `window`
/// once every recorder receives.
pub async fn serve(
    video: &Path,
    audio: &Path,
    recorder_counts: &[usize],
    window: Duration,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(&config, "[log]\nfilter = \"chroom=warn\"\n")?;
    let mut publisher = Command::new(&exe)
        .args(["publish", "--room", "bench-serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("publisher"))
        .arg("--video")
        .arg(video)
        .arg("--audio")
        .arg(audio)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the publisher")?;
    let pid = publisher.id().context("publisher pid")?;
    let stdout = publisher.stdout.take().context("publisher stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut bootstrap = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.strip_prefix("listen ")
            && addr.contains("/tcp/")
        {
            bootstrap = Some(addr.to_owned());
        }
        if line.starts_with("publishing") {
            break;
        }
    }
    let bootstrap = bootstrap.context("publisher printed no tcp listen address")?;
    println!("publisher pid {pid}, window {} s", window.as_secs());
    let (cpu0, _) = proc_sample(pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu1, rss_idle) = proc_sample(pid)?;
    println!(
        "0 recorders: cpu {:.1}% rss {} MiB",
        cpu_percent(cpu1 - cpu0, Duration::from_secs(2)),
        rss_idle / 1024
    );
    for &count in recorder_counts {
        let mut recorders: Vec<Child> = Vec::new();
        for i in 0..count {
            let out = dir.path().join(format!("rec-{count}-{i}"));
            let child = Command::new(&exe)
                .args(["record", "--room", "bench-serve", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.path().join(format!("recorder-{count}-{i}")))
                .arg("--bootstrap")
                .arg(&bootstrap)
                .arg("--out")
                .arg(&out)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting a recorder")?;
            recorders.push(child);
        }
        // Let every recorder discover, link and reach steady state before measuring.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (before, _) = proc_sample(pid)?;
        let mut peak_rss = 0;
        let start = Instant::now();
        while start.elapsed() < window {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peak_rss = peak_rss.max(proc_sample(pid)?.1);
        }
        let (after, rss) = proc_sample(pid)?;
        println!(
            "{count} recorders: cpu {:.1}% of one core, rss {} MiB (peak {} MiB)",
            cpu_percent(after - before, start.elapsed()),
            rss / 1024,
            peak_rss / 1024
        );
        let frames = stop_recorders(recorders).await?;
        let min = frames.iter().min().copied().unwrap_or(0);
        let max = frames.iter().max().copied().unwrap_or(0);
        println!(
            "{count} recorders: each received {min}..={max} video frames ({} of {count} received any)",
            frames.iter().filter(|f| **f > 0).count()
        );
    }
    let _ = publisher.kill().await;
    Ok(())
}

/// Stops recorders with SIGINT (so they finish their files) and returns the video frames each
/// reported.
async fn stop_recorders(recorders: Vec<Child>) -> anyhow::Result<Vec<u64>> {
    let mut frames = Vec::new();
    for mut child in recorders {
        let pid = child.id().context("recorder pid")?;
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        let stdout = child.stdout.take().context("recorder stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut video = 0;
        let read = async {
            while let Some(line) = lines.next_line().await? {
                // "done <peer> video_frames N audio_packets M"
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.first() == Some(&"done")
                    && let Some(n) = fields.get(3).and_then(|n| n.parse::<u64>().ok())
                {
                    video += n;
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .context("recorder did not stop")??;
        let _ = child.wait().await;
        frames.push(video);
    }
    Ok(frames)
}

/// A call between `members` node processes, each with a page in Debian's Chromium (driven by
/// `tests/web/bench-call.mjs` with playwright-core): times `runs` joins from the click to the
/// first remote frame, then measures node 0 (serving its page in the whole call) over `window`.
pub async fn call(members: usize, runs: usize, window: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(members >= 2, "a call needs at least 2 members");
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        "[web]\nlisten = \"127.0.0.1:0\"\n\n[log]\nfilter = \"chroom=warn\"\n",
    )?;
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    let mut bootstrap: Option<String> = None;
    for i in 0..members {
        let mut command = Command::new(&exe);
        command
            .args(["node", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join(format!("node-{i}")));
        if let Some(addr) = &bootstrap {
            command.arg("--bootstrap").arg(addr);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a node")?;
        let mut lines = BufReader::new(child.stdout.take().context("node stdout")?).lines();
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("listen ")
                && addr.contains("/tcp/")
                && bootstrap.is_none()
            {
                bootstrap = Some(addr.to_owned());
            }
            if let Some(url) = line.strip_prefix("web ") {
                urls.push(url.to_owned());
                break;
            }
        }
        anyhow::ensure!(urls.len() == i + 1, "node {i} printed no web address");
        nodes.push(child);
    }
    let measured = nodes[0].id().context("node pid")?;
    let input = serde_json::json!({
        "urls": urls,
        "room": "bench-call",
        "runs": runs,
        "hold_ms": (window + Duration::from_secs(2)).as_millis() as u64,
    });
    let mut scenario = Command::new("node")
        .arg("tests/web/bench-call.mjs")
        .arg(input.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (Node.js) with tests/web/bench-call.mjs: run from the repository after scripts/setup.sh")?;
    let mut lines = BufReader::new(scenario.stdout.take().context("scenario stdout")?).lines();
    let mut sample = None;
    let mut result = None;
    while let Some(line) = lines.next_line().await? {
        if line == "steady" {
            let (cpu0, _) = proc_sample(measured)?;
            tokio::time::sleep(window).await;
            let (cpu1, rss) = proc_sample(measured)?;
            sample = Some((cpu_percent(cpu1 - cpu0, window), rss));
        } else if line.starts_with('{') {
            result = Some(line);
        }
    }
    anyhow::ensure!(scenario.wait().await?.success(), "the page scenario failed");
    let result = result.context("the page scenario printed no result")?;
    let (cpu, rss) = sample.context("the call never became whole")?;
    let result: serde_json::Value = serde_json::from_str(&result)?;
    let mut joins: Vec<f64> = result["join_to_first_frame_ms"]
        .as_array()
        .map(|list| list.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    println!("joins, in order (ms): {joins:.0?}");
    joins.sort_by(f64::total_cmp);
    anyhow::ensure!(!joins.is_empty(), "no join was timed: {result}");
    let median = joins[joins.len() / 2];
    println!(
        "| members | joins | join → first remote frame p50 | max | node CPU (one core = 100 %) | node RSS |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {members} | {} | {median:.0} ms | {:.0} ms | {cpu:.1} % | {} MiB |",
        joins.len(),
        joins[joins.len() - 1],
        rss / 1024
    );
    Ok(())
}

/// (CPU ticks used, RSS in KiB) of a process.
fn proc_sample(pid: u32) -> anyhow::Result<(u64, u64)> {
    let ticks = cpu_ticks(&format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks, rss))
}

fn cpu_percent(ticks: u64, over: Duration) -> f64 {
    // Linux reports CPU time in USER_HZ ticks, 100 per second on every mainstream platform.
    ticks as f64 / 100.0 / over.as_secs_f64() * 100.0
}

/// Times, on a local anvil, how long after a ban's transaction is mined the publisher closes
/// the banned member's link. Each run uses a fresh member account.
pub async fn revoke(anvil_path: &Path, source: &MediaSource, runs: usize) -> anyhow::Result<()> {
    use alloy::node_bindings::Anvil;
    use alloy::signers::local::PrivateKeySigner;
    use chroom_registry::RegistryClient;
    use chroom_registry::client::JoinPolicy;
    use chroom_types::{Account, Role, RoomKind};

    use crate::config::{AccountKeySource, IdentityConfig, RegistryConfig};

    let anvil = Anvil::at(anvil_path)
        .try_spawn()
        .context("starting anvil")?;
    let keys = anvil.keys().to_vec();
    anyhow::ensure!(runs + 2 <= keys.len(), "at most {} runs", keys.len() - 2);
    let signer = |i: usize| PrivateKeySigner::from(keys[i].clone());
    let account = |i: usize| Account::from_bytes(signer(i).address().into_array());
    let registry = RegistryClient::deploy(&anvil.endpoint(), signer(0)).await?;
    let name: RoomName = "bench-revoke".parse()?;
    let room = name.id();
    registry
        .create_room(&name, RoomKind::Conference, JoinPolicy::Allowlist, "")
        .await?;
    registry
        .set_role(room, account(1), Some(Role::Speaker))
        .await?;

    let dir = tempfile::tempdir()?;
    let node_config = |i: usize, name: &str| -> anyhow::Result<NodeConfig> {
        let data_dir = dir.path().join(name);
        std::fs::create_dir_all(&data_dir)?;
        let key_file = data_dir.join("account.key");
        std::fs::write(&key_file, alloy::hex::encode(keys[i].to_bytes()))?;
        let mut config = NodeConfig::loopback(data_dir);
        config.identity = Some(IdentityConfig {
            key: AccountKeySource::File(key_file),
            binding_ttl: Duration::from_secs(3600),
        });
        config.registry = Some(RegistryConfig {
            rpc_url: anvil.endpoint(),
            address: registry.address(),
            poll_interval: Duration::from_millis(200),
        });
        Ok(config)
    };
    let publisher = RunningNode::start(node_config(1, "publisher")?).await?;
    publisher
        .join(room, Participation::Publish(source.kinds()))
        .await?;
    let bootstrap = publisher.listen_addrs().await?;
    let cancel = CancellationToken::new();
    let playing = publish(&publisher, source, Looping::Forever, cancel.clone());
    let measure = async {
        let mut samples = Vec::new();
        for run in 0..runs {
            let member_index = run + 2;
            registry
                .set_role(room, account(member_index), Some(Role::Listener))
                .await?;
            let mut config = node_config(member_index, &format!("member-{run}"))?;
            config.net.bootstrap = bootstrap.clone();
            let mut member = RunningNode::start(config).await?;
            let mut frames = member.take_frames().context("frames")?;
            member
                .join(room, Participation::Receive(vec![MediaKind::Video]))
                .await?;
            tokio::time::timeout(Duration::from_secs(20), frames.recv())
                .await
                .context("member received nothing")?;
            registry.ban(room, account(member_index)).await?;
            let mined = Instant::now();
            loop {
                if publisher.stats().await?.sending_links == 0 {
                    break;
                }
                anyhow::ensure!(
                    mined.elapsed() < Duration::from_secs(10),
                    "link never closed"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let took = mined.elapsed();
            println!(
                "run {run}: link closed {} ms after the ban was mined",
                took.as_millis()
            );
            samples.push(took);
            member.shutdown().await;
        }
        report("ban mined -> link closed", &mut samples);
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = measure => r,
        r = playing => r.map(|_| ()),
    };
    cancel.cancel();
    publisher.shutdown().await;
    result
}

/// Forwarding throughput and hop latency of one relayer feeding `children` viewers, for each
/// count given. The relayer runs alone on its own thread (a single-threaded runtime), so its
/// CPU time is that thread's; the broadcaster sends synthetic VP8-sized frames at
/// `offered_pps` packets per second.
pub async fn relay(children: &[usize], window: Duration, offered_pps: u32) -> anyhow::Result<()> {
    println!(
        "| children | forwarded pkt/s | payload Mbit/s | relayer CPU | pkt/s per core | hop p50 | hop p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
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
    let root = RunningNode::start(NodeConfig::loopback(dir.path().join("root"))).await?;
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
    let mut relayer_config = NodeConfig::loopback(dir.path().join("relayer"));
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
    let sender = tokio::spawn(send_synthetic(root, offered_pps, cancel.clone()));
    let mut viewers = Vec::new();
    for i in 0..count {
        let mut config = NodeConfig::loopback(dir.path().join(format!("viewer-{i}")));
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
    let before = relayer.node.stats().await?.relay;
    let cpu_before = relayer.cpu_nanos().await?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = relayer.node.stats().await?.relay;
    let cpu_after = relayer.cpu_nanos().await?;
    let elapsed = started.elapsed().as_secs_f64();
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
        "| 1 → {count} | {:.0} | {:.1} | {:.0} % | {per_core} | {} | {} |",
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
async fn send_synthetic(root: RunningNode, pps: u32, cancel: CancellationToken) {
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
                .send_frame(MediaKind::Video, rtp_time, frame.clone())
                .await
                .is_err()
            {
                break 'sending;
            }
        }
    }
    root.shutdown().await;
}

async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// CPU ticks (utime + stime) from a `/proc/.../stat` file.
fn cpu_ticks(stat_path: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(stat_path)?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// A member shares a `size`-byte file with `receivers` others (each a node on loopback, no
/// registry), `runs` times; prints the time from sharing to each receiver holding it whole and
/// checked, and the rate, with the sharer serving at `serve_kbps`.
pub async fn files(
    size: usize,
    receivers: usize,
    runs: usize,
    serve_kbps: u32,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let room: RoomName = "bench-files".parse()?;
    let mut config = NodeConfig::loopback(dir.path().join("sharer"));
    config.file_serve_kbps = serve_kbps;
    let sharer = RunningNode::start(config).await?;
    let bootstrap = sharer.listen_addrs().await?;
    let mut members = Vec::new();
    for i in 0..receivers {
        let mut config = NodeConfig::loopback(dir.path().join(format!("receiver-{i}")));
        config.net.bootstrap = bootstrap.clone();
        members.push(RunningNode::start(config).await?);
    }
    let talk = || Participation::Receive(vec![MediaKind::Audio]);
    sharer.join(room.id(), talk()).await?;
    for member in &members {
        member.join(room.id(), talk()).await?;
    }
    let everyone_present = async {
        loop {
            let present = sharer.participants(room.id()).await?.len();
            if present == receivers + 1 {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), everyone_present)
        .await
        .context("members did not see each other within 30 s")??;

    let mut times = Vec::new();
    for run in 0..runs {
        // Different bytes each run: a file already held would complete at once.
        let bytes: Vec<u8> = (0..size)
            .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8 ^ run as u8)
            .collect();
        let mut statuses: Vec<_> = members.iter().map(|m| m.files().subscribe()).collect();
        let started = Instant::now();
        let hash = sharer
            .share_file(room.id(), format!("bench-{run}.bin"), bytes.into())
            .await?;
        let mut slowest = Duration::ZERO;
        for status in &mut statuses {
            let wait = async {
                loop {
                    let status = status.recv().await?;
                    if status.hash == hash && status.complete {
                        return anyhow::Ok(started.elapsed());
                    }
                }
            };
            let took = tokio::time::timeout(Duration::from_secs(120), wait)
                .await
                .context("a receiver did not complete within 120 s")??;
            slowest = slowest.max(took);
        }
        let megabits = (size * receivers) as f64 * 8.0 / 1e6 / slowest.as_secs_f64();
        println!(
            "run {run}: {size} bytes to {receivers} receivers in {} ms ({megabits:.0} Mbit/s served)",
            slowest.as_millis()
        );
        times.push(slowest);
    }
    report("all receivers holding the file, checked", &mut times);
    for member in members {
        member.shutdown().await;
    }
    sharer.shutdown().await;
    Ok(())
}
