//! `chroom bench files`: sharing a file with the room's members.

use super::*;
/// A member shares a `size`-byte file with `receivers` others (each a node on loopback, no
/// registry), `runs` times; prints the time from sharing to each receiver holding it whole and
/// checked, and the rate, with the sharer serving at `serve_kbps`.
pub(crate) async fn files(
    size: usize,
    receivers: usize,
    runs: usize,
    serve_kbps: u32,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let room: RoomName = "bench-files".parse()?;
    let mut config = open_loopback(dir.path().join("sharer"));
    config.file_serve_kbps = serve_kbps;
    let sharer = RunningNode::start(config).await?;
    let bootstrap = sharer.listen_addrs().await?;
    let mut members = Vec::new();
    for i in 0..receivers {
        let mut config = open_loopback(dir.path().join(format!("receiver-{i}")));
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
