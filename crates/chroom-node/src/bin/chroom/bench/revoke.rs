//! `chroom bench revoke`: from a ban's transaction to the banned member's link closing.

use super::chain::BenchChain;
use super::*;
/// Times, on a local anvil, how long after a ban's transaction is mined the publisher closes
/// the banned member's link. Each run uses a fresh member account.
pub(crate) async fn revoke(
    anvil_path: &Path,
    source: &MediaSource,
    runs: usize,
) -> anyhow::Result<()> {
    use chroom_types::Role;

    let chain = BenchChain::start(anvil_path, "bench-revoke").await?;
    anyhow::ensure!(
        runs + 2 <= chain.accounts(),
        "at most {} runs",
        chain.accounts() - 2
    );
    let (registry, room) = (&chain.registry, chain.room);
    let node_config = |i: usize, name: &str| chain.node_config(i, name, None);
    let publisher = RunningNode::start(node_config(1, "publisher")?).await?;
    publisher
        .join(room, Participation::Publish(source.kinds()))
        .await?;
    let bootstrap = publisher.listen_addrs().await?;
    let measure = async {
        let mut samples = Vec::new();
        for run in 0..runs {
            let member_index = run + 2;
            chain.grant(member_index, Role::Listener).await?;
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
            registry.ban(room, chain.account(member_index)).await?;
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
    let result = while_publishing(&publisher, source, measure).await;
    publisher.shutdown().await;
    result
}
