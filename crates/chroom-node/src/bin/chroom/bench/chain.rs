//! A local chain for the benchmarks that check access: anvil, the registry deployed, one
//! allowlist conference, and configs for nodes acting for anvil's accounts.

use std::os::unix::fs::PermissionsExt;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::signers::local::PrivateKeySigner;
use chroom_node::config::{AccountKeySource, IdentityConfig, RegistryConfig};
use chroom_registry::RegistryClient;
use chroom_registry::client::JoinPolicy;
use chroom_types::{Account, Role, RoomId, RoomKind};

use super::*;

pub(crate) struct BenchChain {
    pub(crate) anvil: AnvilInstance,
    pub(crate) registry: RegistryClient,
    pub(crate) room: RoomId,
    dir: tempfile::TempDir,
}

impl BenchChain {
    /// Anvil from `anvil_path`, the registry, and the allowlist conference `name` in which
    /// account 1 speaks (account 0 deploys and owns).
    pub(crate) async fn start(anvil_path: &Path, name: &str) -> anyhow::Result<Self> {
        let anvil = Anvil::at(anvil_path)
            .try_spawn()
            .context("starting anvil")?;
        let owner = PrivateKeySigner::from(anvil.keys()[0].clone());
        let registry = RegistryClient::deploy(&anvil.endpoint(), owner).await?;
        let name: RoomName = name.parse()?;
        let room = name.id();
        registry
            .create_room(&name, RoomKind::Conference, JoinPolicy::Allowlist, "")
            .await?;
        let chain = Self {
            anvil,
            registry,
            room,
            dir: tempfile::tempdir()?,
        };
        chain.grant(1, Role::Speaker).await?;
        Ok(chain)
    }

    /// Anvil's accounts (and keys) available.
    pub(crate) fn accounts(&self) -> usize {
        self.anvil.keys().len()
    }

    pub(crate) fn account(&self, i: usize) -> Account {
        let signer = PrivateKeySigner::from(self.anvil.keys()[i].clone());
        Account::from_bytes(signer.address().into_array())
    }

    pub(crate) async fn grant(&self, i: usize, role: Role) -> anyhow::Result<()> {
        self.registry
            .set_role(self.room, self.account(i), Some(role))
            .await?;
        Ok(())
    }

    /// A loopback node acting for account `i`, its state in `name`, checking the registry
    /// through `rpc_url` (anvil's own if `None`).
    pub(crate) fn node_config(
        &self,
        i: usize,
        name: &str,
        rpc_url: Option<String>,
    ) -> anyhow::Result<NodeConfig> {
        let data_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&data_dir)?;
        let key_file = data_dir.join("account.key");
        std::fs::write(
            &key_file,
            alloy::hex::encode(self.anvil.keys()[i].to_bytes()),
        )?;
        // A node refuses an account key file others can read.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
        let mut config = NodeConfig::loopback(data_dir);
        config.identity = Some(IdentityConfig {
            key: AccountKeySource::File(key_file),
            binding_ttl: Duration::from_secs(3600),
        });
        config.registry = Some(RegistryConfig {
            rpc_url: rpc_url.unwrap_or_else(|| self.anvil.endpoint()),
            address: self.registry.address(),
            poll_interval: Duration::from_millis(200),
            max_staleness: chroom_node::config::DEFAULT_MAX_STALENESS,
            link_check_timeout: chroom_node::config::DEFAULT_LINK_CHECK_TIMEOUT,
            new_accounts_per_second: chroom_node::config::DEFAULT_NEW_ACCOUNTS_PER_SECOND,
        });
        Ok(config)
    }
}
