//! `chroom bench conference`: how a conference's cost grows with its size.

use chroom_node::metrics::{MediaTotals, fetch_status};

use super::*;

/// What `chroom bench conference` measures.
pub(crate) struct ConferencePlan {
    /// Conference sizes, one after the other.
    pub(crate) members: Vec<usize>,
    /// Time for the members to link before measuring.
    pub(crate) settle: Duration,
    /// The measurement window.
    pub(crate) window: Duration,
    /// Members estimate their links' bandwidth.
    pub(crate) bandwidth_estimation: bool,
    /// Smaller encodings members send as lower simulcast layers, lowest first.
    pub(crate) lower_layers: Vec<std::path::PathBuf>,
    /// The height members show each other at, if they say.
    pub(crate) show_at: Option<u32>,
}

/// For each size in `plan`, a conference of that many headless members, each a `chroom
/// publish --meet` process sending `video` and `audio` and receiving every other member (today
/// a full mesh: every member uploads one copy per other member). After the settle time,
/// measures each process over the window: CPU, RSS, media upload, and the video frames it was
/// delivered (received, decrypted, whole) against what the others sent it.
pub(crate) async fn conference(
    video: &Path,
    audio: &Path,
    plan: &ConferencePlan,
) -> anyhow::Result<()> {
    let source = MediaSource::load(Some(video), Some(audio))?;
    let fps = source.video_frame_ticks().map_or(30.0, |ticks| {
        f64::from(chroom_media::VIDEO_CLOCK_HZ) / ticks as f64
    });
    println!(
        "| members | node CPU mean / max (one core = 100 %) | node RSS mean | upload per node | video delivered per node | delivered / sent |"
    );
    println!("|---|---|---|---|---|---|");
    for &count in &plan.members {
        anyhow::ensure!(count >= 2, "a conference needs at least 2 members");
        let row = conference_once(video, audio, count, plan).await?;
        let expected = fps * (count - 1) as f64;
        println!(
            "| {count} | {:.1} % / {:.1} % | {} MiB | {:.2} Mbit/s | {:.1} frames/s | {:.1} % |",
            row.cpu_mean,
            row.cpu_max,
            row.rss_mean_kib / 1024,
            row.upload_mbps,
            row.delivered_fps,
            100.0 * row.delivered_fps / expected,
        );
    }
    Ok(())
}

/// One conference's figures, averaged over its members.
struct ConferenceFigures {
    cpu_mean: f64,
    cpu_max: f64,
    rss_mean_kib: u64,
    upload_mbps: f64,
    delivered_fps: f64,
}

/// One member process and where it serves `/status`.
struct Member {
    child: Child,
    status: std::net::SocketAddr,
}

/// What one member's process and media counters said at one moment.
struct Sample {
    cpu_ticks: u64,
    rss_kib: u64,
    media: MediaTotals,
}

async fn sample(member: &Member) -> anyhow::Result<Sample> {
    let pid = member.child.id().context("a member exited")?;
    let (cpu_ticks, rss_kib) = proc_sample(pid)?;
    let media = fetch_status(member.status).await?.media;
    Ok(Sample {
        cpu_ticks,
        rss_kib,
        media,
    })
}

async fn conference_once(
    video: &Path,
    audio: &Path,
    count: usize,
    plan: &ConferencePlan,
) -> anyhow::Result<ConferenceFigures> {
    let window = plan.window;
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("member.toml");
    std::fs::write(
        &config,
        format!(
            "{OPEN_NODE}[media]\nbandwidth_estimation = {}\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nfilter = \"chroom=warn\"\n",
            plan.bandwidth_estimation
        ),
    )?;
    let mut members = Vec::new();
    let mut bootstrap: Option<String> = None;
    for i in 0..count {
        let mut command = Command::new(&exe);
        command
            .args([
                "publish",
                "--meet",
                "--room",
                "bench-conference",
                "--config",
            ])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join(format!("member-{i}")))
            .arg("--video")
            .arg(video)
            .arg("--audio")
            .arg(audio);
        for layer in &plan.lower_layers {
            command.arg("--layer").arg(layer);
        }
        if let Some(height) = plan.show_at {
            command.arg("--show-at").arg(height.to_string());
        }
        command.stderr(Stdio::null());
        let (child, url) = spawn_announcing(command, &mut bootstrap, "metrics http://")
            .await
            .with_context(|| format!("member {i}"))?;
        let status = url.trim_end_matches("/metrics").parse()?;
        members.push(Member { child, status });
    }
    tokio::time::sleep(plan.settle).await;
    let mut before = Vec::new();
    for member in &members {
        before.push(sample(member).await?);
    }
    tokio::time::sleep(window).await;
    let mut cpu = Vec::new();
    let mut rss = 0;
    let mut upload_bytes = 0;
    let mut delivered = 0;
    for (member, before) in members.iter().zip(&before) {
        let after = sample(member).await?;
        cpu.push(cpu_percent(after.cpu_ticks - before.cpu_ticks, window));
        rss += after.rss_kib;
        upload_bytes += after.media.bytes_sent - before.media.bytes_sent;
        delivered += after.media.video_frames_received - before.media.video_frames_received;
    }
    let n = count as f64;
    let seconds = window.as_secs_f64();
    Ok(ConferenceFigures {
        cpu_mean: cpu.iter().sum::<f64>() / n,
        cpu_max: cpu.iter().copied().fold(0.0, f64::max),
        rss_mean_kib: rss / count as u64,
        upload_mbps: upload_bytes as f64 * 8.0 / 1e6 / seconds / n,
        delivered_fps: delivered as f64 / seconds / n,
    })
}
