//! `chroom-sim`: runs a broadcast-tree scenario, prints the report, writes plots, and exits
//! non-zero if an invariant broke or an acceptance target was missed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chroom_sim::plot::{Series, bar_chart, cdf, line_chart};
use chroom_sim::{Scenario, SimReport, run};
use clap::{Parser, ValueEnum};

/// Which run to start from (the other options change it).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Base {
    /// Issue 4: 100 000 viewers, 2 000 relayers, an idealised network (messages only).
    Ideal,
    /// Issue 13: 1 000 000 viewers, 20 000 relayers, with the real node's costs (registry
    /// lookups, link setup per NAT pair, one tree message in flight per peer, crashes noticed
    /// by media silence).
    Measured,
}

#[derive(Debug, Parser)]
#[command(about = "Simulate a Chroom broadcast tree with the real overlay core")]
struct Args {
    /// Seed of the run (also from CHROOM_SIM_SEED).
    #[arg(long, env = "CHROOM_SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// The run to start from.
    #[arg(long, value_enum, default_value_t = Base::Ideal)]
    scenario: Base,
    /// Scale the run down by this factor in members (20: 1/20 of the viewers and relayers).
    #[arg(long, default_value_t = 1)]
    scale_down: u32,
    /// Viewers (after scaling).
    #[arg(long)]
    viewers: Option<u32>,
    /// Relayers (after scaling).
    #[arg(long)]
    relayers: Option<u32>,
    /// Share of relayers that crash, in percent.
    #[arg(long)]
    crash_percent: Option<f64>,
    /// Median round-trip time in milliseconds.
    #[arg(long)]
    median_rtt_ms: Option<u64>,
    /// Log every message to and from this member.
    #[arg(long)]
    trace: Option<u32>,
    /// Where to write the plots (SVG) and the report; nothing is written without it.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let base = match args.scenario {
        Base::Ideal => Scenario::acceptance(args.seed),
        Base::Measured => Scenario::measured(args.seed),
    };
    let mut scenario = base.scaled(args.scale_down);
    if let Some(viewers) = args.viewers {
        scenario.viewers = viewers;
    }
    if let Some(relayers) = args.relayers {
        scenario.relayers = relayers;
    }
    if let Some(percent) = args.crash_percent {
        scenario.crash_fraction = percent / 100.0;
    }
    if let Some(ms) = args.median_rtt_ms {
        scenario.median_rtt = Duration::from_millis(ms);
    }
    scenario.trace = args.trace;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "chroom_sim=info".into()),
        )
        .init();
    let started = Instant::now();
    let report = run(&scenario);
    let wall = started.elapsed();
    let mut summary = report.summary();
    summary.push_str(&format!(
        "wall time {:.1} s | peak memory {} MiB\n",
        wall.as_secs_f64(),
        peak_rss_mib().map_or_else(|| "?".to_owned(), |m| m.to_string())
    ));
    let verdict = |failures: Vec<String>| {
        if failures.is_empty() {
            "pass".to_owned()
        } else {
            format!("FAIL ({})", failures.join("; "))
        }
    };
    summary.push_str(&format!(
        "tree shape: {}\neveryone fed at the end: {}\ntime targets (join p99 < {:?}, repair p99 < {:?}, no orphan > 10 s): {}\n",
        verdict(report.tree_failures()),
        verdict(report.left_out()),
        scenario.join_target,
        scenario.repair_target,
        verdict(report.time_failures())
    ));
    let failures = report.acceptance_failures();
    print!("{summary}");
    if let Some(dir) = &args.out
        && let Err(e) = write_outputs(dir, &report, &summary)
    {
        eprintln!("cannot write to {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "seed {} failed: rerun with CHROOM_SIM_SEED={}",
            args.seed, args.seed
        );
        ExitCode::FAILURE
    }
}

fn write_outputs(dir: &PathBuf, report: &SimReport, summary: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.txt"), summary)?;
    let bars: Vec<(String, f64)> = report
        .depth_histogram
        .iter()
        .enumerate()
        .map(|(d, n)| (d.to_string(), *n as f64))
        .collect();
    std::fs::write(
        dir.join("depth.svg"),
        bar_chart("Depth of fed members at the end", "depth", "members", &bars),
    )?;
    let ms = |v: &[Duration]| -> Vec<f64> { v.iter().map(|d| d.as_secs_f64() * 1e3).collect() };
    let cdfs = [
        Series {
            name: "join".into(),
            points: cdf(&ms(&report.join_times)),
        },
        Series {
            name: "repair after crash".into(),
            points: cdf(&ms(&report.repair_times)),
        },
        Series {
            name: "handover".into(),
            points: cdf(&ms(&report.handover_times)),
        },
    ];
    std::fs::write(
        dir.join("times-cdf.svg"),
        line_chart(
            "Join, repair and handover times (CDF)",
            "milliseconds",
            "share",
            &cdfs,
        ),
    )?;
    let over_time = |f: fn(&chroom_sim::Sample) -> f64| -> Vec<(f64, f64)> {
        report
            .samples
            .iter()
            .map(|s| (s.at.as_secs_f64(), f(s)))
            .collect()
    };
    let series = [
        Series {
            name: "fan-out use".into(),
            points: over_time(|s| s.fanout_use),
        },
        Series {
            name: "connected share".into(),
            points: over_time(|s| s.connected),
        },
    ];
    std::fs::write(
        dir.join("fanout.svg"),
        line_chart(
            "Fan-out use and connected share over time",
            "seconds",
            "share",
            &series,
        ),
    )?;
    Ok(())
}

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
