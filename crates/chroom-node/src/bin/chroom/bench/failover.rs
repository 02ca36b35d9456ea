//! `chroom bench failover`: from `kill -9` of a room's host to every other member's node
//! naming the same acting host, and from the host's node starting again to every member naming
//! it host again. On a local anvil, in a conference whose policy makes the first joiner host.
//!
//! The host (the room's owner) is a `chroom publish --meet` process (a headless member with a
//! person's place: it may host); three members are nodes in this process. Each run kills the
//! host's process and starts it again from the same data dir (the same node).

use chroom_room::roster::HOST_PRESENCE_INTERVAL;
use chroom_types::{HostFallback, Role, RoomPolicy};

use super::chain::BenchChain;
use super::*;

const ROOM: &str = "bench-failover";
const MEMBERS: usize = 3;

/// Times `runs` host failovers and returns; prints each and their p50 and max.
pub(crate) async fn failover(anvil: &Path, audio: &Path, runs: usize) -> anyhow::Result<()> {
    let chain = BenchChain::start(anvil, ROOM).await?;
    for member in 2..2 + MEMBERS {
        chain.grant(member, Role::Listener).await?;
    }
    let policy = RoomPolicy {
        host_fallback: HostFallback::FirstJoiner,
        ..RoomPolicy::default()
    };
    chain.registry.set_room_policy(chain.room, policy).await?;

    let mut members: Vec<RunningNode> = Vec::new();
    let mut bootstrap = Vec::new();
    for member in 2..2 + MEMBERS {
        let mut config = chain.node_config(member, &format!("member-{member}"), None)?;
        config.net.bootstrap = bootstrap.clone();
        let node = RunningNode::start(config).await?;
        node.join(chain.room, Participation::Receive(vec![MediaKind::Audio]))
            .await?;
        if bootstrap.is_empty() {
            bootstrap = node.listen_addrs().await?;
        }
        members.push(node);
    }
    let boot = bootstrap
        .iter()
        .map(ToString::to_string)
        .find(|addr| addr.contains("/tcp/"))
        .context("a member's TCP address")?;

    let host_config = chain.node_config(0, "host", None)?;
    let host_dir = host_config.data_dir.clone();
    let host_toml = host_dir.join("host.toml");
    std::fs::write(
        &host_toml,
        format!(
            "[identity]\naccount_key_file = \"{key}\"\n\n\
             [registry]\nrpc_url = \"{rpc}\"\naddress = \"{registry}\"\npoll_interval = \"200ms\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\n[log]\nfilter = \"chroom=warn\"\n",
            key = host_dir.join("account.key").display(),
            rpc = chain.anvil.endpoint(),
            registry = chain.registry.address(),
        ),
    )?;
    let start_host = async || -> anyhow::Result<Child> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["publish", "--meet", "--room", ROOM, "--config"])
            .arg(&host_toml)
            .arg("--data-dir")
            .arg(&host_dir)
            .arg("--audio")
            .arg(audio)
            .stderr(Stdio::null());
        let (child, _) = spawn_announcing(command, &mut Some(boot.clone()), "metrics http://")
            .await
            .context("the host's process")?;
        Ok(child)
    };

    // Every member names one host, on-chain or not as asked; returns it.
    let hosted_by = async |on_chain: bool, not: Option<chroom_net::PeerId>| {
        let mut named = None;
        for member in &members {
            let assignments = member.assignments(chain.room).await.ok()??;
            let [host] = assignments.hosts[..] else {
                return None;
            };
            if assignments.hosts_on_chain != on_chain || Some(host) == not {
                return None;
            }
            if named.is_some_and(|named| named != host) {
                return None;
            }
            named = Some(host);
        }
        named
    };

    let mut failovers = Vec::new();
    let mut reclaims = Vec::new();
    let mut host = start_host().await?;
    let host_peer = wait_until(Duration::from_secs(30), "the host hosts", async || {
        hosted_by(true, None).await
    })
    .await?;
    for run in 0..runs {
        // The kill lands anywhere in the host's beat interval: a failover takes from two to
        // three beat intervals after the last beat heard, so the phase is sampled evenly
        // across runs (the golden ratio's fractions), not fixed by when the last reclaim was
        // seen.
        let phase = (run as f64 * 0.618_034).fract();
        tokio::time::sleep(HOST_PRESENCE_INTERVAL.mul_f64(phase)).await;
        host.start_kill()?;
        let killed = Instant::now();
        let acting = wait_until(Duration::from_secs(30), "an acting host", async || {
            hosted_by(false, Some(host_peer)).await
        })
        .await?;
        let failover = killed.elapsed();
        let _ = host.wait().await;
        let started = Instant::now();
        host = start_host().await?;
        wait_until(Duration::from_secs(30), "the host reclaims", async || {
            hosted_by(true, None)
                .await
                .filter(|peer| *peer == host_peer)
        })
        .await?;
        let reclaim = started.elapsed();
        println!(
            "run {run}: acting host {} after {} ms; host back {} ms after its process started",
            &acting.to_base58()[..12],
            failover.as_millis(),
            reclaim.as_millis()
        );
        failovers.push(failover);
        reclaims.push(reclaim);
    }
    report(
        "kill -9 -> every member names the acting host",
        &mut failovers,
    );
    report(
        "host process start -> every member names it host again",
        &mut reclaims,
    );
    let _ = host.start_kill();
    for member in members {
        member.shutdown().await;
    }
    Ok(())
}
