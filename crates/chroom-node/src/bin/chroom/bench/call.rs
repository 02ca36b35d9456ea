//! `chroom bench call`: browsers in a call, the join time and one node's cost.

use super::*;
/// The browser engine of the page whose joins are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Engine {
    /// Debian's Chromium, driven by playwright-core.
    Chromium,
    /// Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi.
    Firefox,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Self::Chromium => "chromium",
            Self::Firefox => "firefox",
        }
    }
}

/// What one engine's call measured.
struct CallFigures {
    engine: Engine,
    /// Join → first remote frame, sorted.
    joins: Vec<f64>,
    cpu_percent: f64,
    rss_kib: u64,
}

/// For each of `engines` in turn, a call between `members` node processes, each with a page
/// (driven by `tests/web/bench-call.mjs`; the joining page in that engine, the others in
/// Chromium): times `runs` joins from the click to the first remote frame, then measures node 0
/// (serving its page in the whole call) over `window`. One table compares the engines.
pub(crate) async fn call(
    engines: &[Engine],
    members: usize,
    runs: usize,
    window: Duration,
    logs: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(members >= 2, "a call needs at least 2 members");
    let mut rows = Vec::new();
    for &engine in engines {
        let logs = logs.map(|dir| dir.join(engine.name()));
        rows.push(call_in(engine, members, runs, window, logs.as_deref()).await?);
    }
    println!(
        "| engine | members | joins | join → first remote frame p50 | max | node CPU (one core = 100 %) | node RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let joins = &row.joins;
        println!(
            "| {} | {members} | {} | {:.0} ms | {:.0} ms | {:.1} % | {} MiB |",
            row.engine.name(),
            joins.len(),
            joins[joins.len() / 2],
            joins[joins.len() - 1],
            row.cpu_percent,
            row.rss_kib / 1024
        );
    }
    Ok(())
}

async fn call_in(
    engine: Engine,
    members: usize,
    runs: usize,
    window: Duration,
    logs: Option<&Path>,
) -> anyhow::Result<CallFigures> {
    let dir = tempfile::tempdir()?;
    let (nodes, urls) = page_nodes(dir.path(), members, logs).await?;
    let measured = nodes[0].id().context("node pid")?;
    let input = serde_json::json!({
        "urls": urls,
        "room": "bench-call",
        "runs": runs,
        "hold_ms": (window + Duration::from_secs(2)).as_millis() as u64,
        "engine": engine.name(),
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
    println!("{}: joins, in order (ms): {joins:.0?}", engine.name());
    if let Some(dir) = logs {
        let clicks = &result["clicked_at_unix_ms"];
        println!(
            "clicked at (unix ms): {clicks}; node logs in {}",
            dir.display()
        );
    }
    joins.sort_by(f64::total_cmp);
    anyhow::ensure!(!joins.is_empty(), "no join was timed: {result}");
    Ok(CallFigures {
        engine,
        joins,
        cpu_percent: cpu,
        rss_kib: rss,
    })
}
