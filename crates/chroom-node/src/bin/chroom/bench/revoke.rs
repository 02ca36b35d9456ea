//! `chroom bench revoke`: from a ban's transaction to the banned member's link closing.

use super::*;
/// Times, on a local anvil, how long after a ban's transaction is mined the publisher closes
/// the banned member's link. Each run uses a fresh member account.
pub(crate) async fn revoke(
    anvil_path: &Path,
    source: &MediaSource,
    runs: usize,
) -> anyhow::Result<()> {
    use alloy::node_bindings::Anvil;
    use alloy::signers::local::PrivateKeySigner;
    use chroom_registry::RegistryClient;
    use chroom_registry::client::JoinPolicy;
    use chroom_types::{Account, Role, RoomKind};
    use std::os::unix::fs::PermissionsExt;

    use chroom_node::config::{AccountKeySource, IdentityConfig, RegistryConfig};

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
        // A node refuses an account key file others can read.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
        let mut config = NodeConfig::loopback(data_dir);
        config.identity = Some(IdentityConfig {
            key: AccountKeySource::File(key_file),
            binding_ttl: Duration::from_secs(3600),
        });
        config.registry = Some(RegistryConfig {
            rpc_url: anvil.endpoint(),
            address: registry.address(),
            poll_interval: Duration::from_millis(200),
            max_staleness: chroom_node::config::DEFAULT_MAX_STALENESS,
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
