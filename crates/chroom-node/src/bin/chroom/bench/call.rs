//! `chroom bench call`: browsers in a call, the join time and one node's cost.

use super::*;
/// A call between `members` node processes, each with a page in Debian's Chromium (driven by
/// `tests/web/bench-call.mjs` with playwright-core): times `runs` joins from the click to the
/// first remote frame, then measures node 0 (serving its page in the whole call) over `window`.
pub(crate) async fn call(
    members: usize,
    runs: usize,
    window: Duration,
    logs: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(members >= 2, "a call needs at least 2 members");
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
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
            .arg(dir.path().join(format!("node-{i}")));
        if let Some(addr) = &bootstrap {
            command.arg("--bootstrap").arg(addr);
        }
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
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
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
    if let Some(dir) = logs {
        let clicks = &result["clicked_at_unix_ms"];
        println!(
            "clicked at (unix ms): {clicks}; node logs in {}",
            dir.display()
        );
    }
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
