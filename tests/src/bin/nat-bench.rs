//! `cargo run --release -p chroom-tests --bin nat-bench -- [RUNS] [RELAY_SECONDS] [CELL]` (as
//! root; CELL keeps only the cells whose name contains it, and skips the relayer's load):
//! what crossing NATs costs, measured in the network lab on a devnet.
//!
//! - **Connect time** per matrix cell: from starting a recorder (a `chroom record` process
//!   that joins the room, finds the publisher, signals and links) to its first video frame
//!   on disk, RUNS times (default 5) one cell at a time; p50 and max, and the path taken.
//! - **Relayer CPU per relayed Mbit/s**: four calls between homes behind symmetric NATs, all
//!   relayed by the one relayer, for RELAY_SECONDS (default 20); the relayer process's CPU
//!   time over that window against the media the recorders wrote (what was delivered through
//!   it, counted once even though each stream crosses the relayer twice: in through the
//!   publisher's allocation, out through the recorder's).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chroom_tests::fixtures;
use chroom_tests::lab::{Host, Nat};
use chroom_tests::lab_devnet::LabDevnet;

/// Bytes of an IVF file header: a larger file holds a frame.
const IVF_HEADER: u64 = 32;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args
        .next()
        .map_or(5, |a| a.parse().expect("RUNS: a number"));
    let relay_seconds: u64 = args
        .next()
        .map_or(20, |a| a.parse().expect("RELAY_SECONDS: a number"));
    let only = args.next();
    let media = fixtures();
    let mut devnet = LabDevnet::start().await;
    let lab = &mut devnet.lab;
    let public = [
        lab.public_host("pub-a").unwrap(),
        lab.public_host("pub-b").unwrap(),
    ];
    let mut homes = Vec::new();
    for (name, nat) in [
        ("kept-1", Nat::PortPreserving),
        ("kept-2", Nat::PortPreserving),
        ("random-1", Nat::Symmetric),
        ("random-2", Nat::Symmetric),
    ] {
        let mut home = lab.home(name, nat).unwrap();
        let hosts: Vec<Host> = (0..4)
            .map(|i| lab.home_host(&mut home, &format!("{name}-{i}")).unwrap())
            .collect();
        homes.push(hosts);
    }
    let [kept_1, kept_2, random_1, random_2] = &homes[..] else {
        unreachable!()
    };
    let cells: [(&str, &Host, &Host); 11] = [
        ("public → public", &public[0], &public[1]),
        ("public → port-preserving", &public[0], &kept_1[0]),
        ("port-preserving → public", &kept_2[0], &public[1]),
        ("public → symmetric", &public[1], &random_1[0]),
        ("symmetric → public", &random_1[1], &public[0]),
        ("port-preserving → port-preserving", &kept_1[0], &kept_2[0]),
        ("port-preserving → same NAT", &kept_1[0], &kept_1[1]),
        ("symmetric → same NAT", &random_1[0], &random_1[1]),
        ("port-preserving → symmetric", &kept_2[0], &random_2[0]),
        ("symmetric → port-preserving", &random_2[0], &kept_1[1]),
        ("symmetric → symmetric", &random_1[1], &random_2[0]),
    ];

    println!("connect time, recorder start → first video frame, {runs} runs per cell:");
    println!("{:<36} {:>8} {:>8}  path", "cell", "p50", "max");
    let (mut direct, mut relayed) = (0, 0);
    let chosen = cells.iter().enumerate().filter(|(_, (name, ..))| {
        only.as_ref()
            .is_none_or(|only| name.contains(only.as_str()))
    });
    for (c, (name, from, to)) in chosen {
        let mut times = Vec::new();
        let mut path = "";
        for run in 0..runs {
            let room = format!("bench-{c}-{run}");
            let mut call = devnet
                .call(&room, from, to, &media, &["--frames", "30"])
                .await;
            let started = Instant::now();
            let first_frame = loop {
                let written = call
                    .video()
                    .and_then(|v| std::fs::metadata(v).ok())
                    .map_or(0, |m| m.len());
                if written > IVF_HEADER {
                    break started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{name}: no frame in 60 s:\n{}",
                    call.recorder.log_tail(30)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            times.push(first_frame);
            call.recorder.finished(Duration::from_secs(60)).await;
            if let Ok(keep) = std::env::var("NAT_BENCH_LOGS") {
                // For a person looking into a slow cell: both nodes' logs of every run.
                let to = PathBuf::from(keep).join(&room);
                std::fs::create_dir_all(&to).unwrap();
                for (who, node) in [("publisher", &call.publisher), ("recorder", &call.recorder)] {
                    std::fs::copy(node.log_path(), to.join(format!("{who}.log"))).unwrap();
                }
            }
            let (remote, own_relay) = call.path().expect("a connected link");
            path = if own_relay || remote.ip() == devnet.relayer_ip() {
                "relayed"
            } else {
                "direct"
            };
        }
        if path == "relayed" {
            relayed += 1;
        } else {
            direct += 1;
        }
        times.sort();
        println!(
            "{name:<36} {:>8} {:>8}  {path}",
            format!("{:.2}s", times[times.len() / 2].as_secs_f64()),
            format!("{:.2}s", times[times.len() - 1].as_secs_f64()),
        );
    }
    println!(
        "{direct} of {} cells direct, {relayed} relayed",
        direct + relayed
    );
    if only.is_some() {
        return;
    }

    let window = Duration::from_secs(relay_seconds);
    let mut calls = Vec::new();
    for i in 0..4 {
        let (from, to) = (&random_1[i], &random_2[i]);
        let room = format!("relay-load-{i}");
        let stop = format!("{}s", relay_seconds + 10);
        calls.push(
            devnet
                .call(&room, from, to, &media, &["--duration", &stop])
                .await,
        );
    }
    // Measure once every call delivers.
    for call in &calls {
        let started = Instant::now();
        while call
            .video()
            .and_then(|v| std::fs::metadata(v).ok())
            .map_or(0, |m| m.len())
            <= IVF_HEADER
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a relayed call never delivered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let recorded = |calls: &[chroom_tests::lab_devnet::Call]| -> u64 {
        calls
            .iter()
            .flat_map(|call| std::fs::read_dir(&call.out).into_iter().flatten())
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    let (bytes_before, cpu_before) = (recorded(&calls), cpu_seconds(devnet.relayer_pid()));
    tokio::time::sleep(window).await;
    let (bytes_after, cpu_after) = (recorded(&calls), cpu_seconds(devnet.relayer_pid()));
    let mbits = (bytes_after - bytes_before) as f64 * 8.0 / 1e6 / window.as_secs_f64();
    let cpu = (cpu_after - cpu_before) / window.as_secs_f64();
    let relayed_paths = calls
        .iter()
        .filter(|c| c.path().is_some_and(|(_, own)| own))
        .count();
    println!(
        "relayer: {mbits:.2} Mbit/s delivered through it ({relayed_paths} of {} calls relayed), \
         {:.1} % of a core, {:.1} % of a core per Mbit/s",
        calls.len(),
        cpu * 100.0,
        cpu * 100.0 / mbits
    );
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat")))
        .expect("the relayer's /proc stat");
    // Fields after the command name (which may hold spaces) start at `) `.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    // `getconf CLK_TCK` is 100 on every Linux this runs on; ask it rather than assume.
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}
