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

use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_node::{NodeConfig, RunningNode};

mod call;
mod chain;
mod conference;
mod docs;
mod failover;
mod files;
mod flood;
mod orchestrator;
mod relay;
mod revoke;

pub(crate) use call::{Engine, call};
pub(crate) use conference::{ConferencePlan, conference};
pub(crate) use docs::docs;
pub(crate) use failover::failover;
pub(crate) use files::files;
pub(crate) use flood::{FloodPlan, flood};
pub(crate) use orchestrator::orchestrator;
pub(crate) use relay::{RelayPlan, relay};
pub(crate) use revoke::revoke;

/// Starts `members` `chroom node` processes on loopback, each serving its page, the first
/// bootstrapping the rest (logs at debug level into `logs`, if given). Returns them and their
/// page links.
async fn page_nodes(
    dir: &Path,
    members: usize,
    logs: Option<&Path>,
) -> anyhow::Result<(Vec<Child>, Vec<String>)> {
    let exe = std::env::current_exe()?;
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!("{OPEN_NODE}[web]\nlisten = \"127.0.0.1:0\"\n\n[log]\nfilter = \"chroom=warn\"\n"),
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
            .arg(dir.join(format!("node-{i}")));
        let stderr = match logs {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                if std::env::var_os("RUST_LOG").is_none() {
                    command.env("RUST_LOG", "chroom=debug");
                }
                Stdio::from(std::fs::File::create(dir.join(format!("node-{i}.log")))?)
            }
            None => Stdio::null(),
        };
        command.stderr(stderr);
        let (child, url) = spawn_announcing(command, &mut bootstrap, "web ")
            .await
            .with_context(|| format!("node {i}"))?;
        urls.push(url);
        nodes.push(child);
    }
    Ok((nodes, urls))
}

/// A loopback node that checks no registry: these benchmarks time media and files, not access
/// checks (`bench revoke` starts nodes that check).
fn open_loopback(data_dir: std::path::PathBuf) -> NodeConfig {
    let mut config = NodeConfig::loopback(data_dir);
    config.open_access = true;
    config
}

/// Config of the node processes the benchmarks start: no registry, as [`open_loopback`].
const OPEN_NODE: &str = "[node]\nopen_access = true\n\n";

/// Starts `command`, a `chroom` process that prints its listen addresses and then a line
/// starting with `marker`, bootstrapped from `bootstrap` if one is known (else its first TCP
/// listen address becomes `bootstrap`). Returns the child and what followed `marker`; the rest
/// of its output is read and let go, so it never blocks on a full pipe.
async fn spawn_announcing(
    mut command: Command,
    bootstrap: &mut Option<String>,
    marker: &str,
) -> anyhow::Result<(Child, String)> {
    if let Some(addr) = bootstrap.as_deref() {
        command.arg("--bootstrap").arg(addr);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting a chroom process")?;
    let mut lines = BufReader::new(child.stdout.take().context("its stdout")?).lines();
    let mut announced = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.strip_prefix("listen ")
            && addr.contains("/tcp/")
            && bootstrap.is_none()
        {
            *bootstrap = Some(addr.to_owned());
        }
        if let Some(value) = line.strip_prefix(marker) {
            announced = Some(value.to_owned());
            break;
        }
    }
    let announced = announced.with_context(|| format!("it printed no {marker:?} line"))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, announced))
}

/// Starts a publisher and, `runs` times, a fresh recorder node bootstrapped to it; prints the
/// time from the recorder's start to its first frame and first keyframe.
pub(crate) async fn first_frame(source: &MediaSource, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let room: RoomName = "bench-first-frame".parse()?;
    let publisher = RunningNode::start(open_loopback(dir.path().join("publisher"))).await?;
    publisher
        .join(room.id(), Participation::Publish(source.kinds()))
        .await?;
    let bootstrap = publisher.listen_addrs().await?;
    let measure = async {
        let mut first_frame = Vec::new();
        let mut first_key = Vec::new();
        for run in 0..runs {
            // Each run would otherwise start right after the previous keyframe; spread the
            // starts over the keyframe interval so the keyframe wait is sampled fairly.
            tokio::time::sleep(Duration::from_millis((run as u64 * 173) % 500)).await;
            let started = Instant::now();
            let mut config = open_loopback(dir.path().join(format!("recorder-{run}")));
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
                    && chroom_node::record::vp8_keyframe_size(&frame.frame.data).is_some()
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
    let result = while_publishing(&publisher, source, measure).await;
    publisher.shutdown().await;
    result
}

/// Runs `measure` while `publisher` plays `source` in a loop; a publisher that stops first ends
/// it with its error.
async fn while_publishing(
    publisher: &RunningNode,
    source: &MediaSource,
    measure: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let playing = publish(publisher, source, Looping::Forever, cancel.clone());
    let result = tokio::select! {
        r = measure => r,
        r = playing => r.map(|_| ()),
    };
    cancel.cancel();
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
pub(crate) async fn serve(
    video: &Path,
    audio: &Path,
    recorder_counts: &[usize],
    window: Duration,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!("{OPEN_NODE}[log]\nfilter = \"chroom=warn\"\n"),
    )?;
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
