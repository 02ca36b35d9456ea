//! `chroom devnet`, `chroom room` and `chroom relayer`: the chain-side commands.

use std::path::Path;

use alloy::node_bindings::Anvil;
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use chroom_registry::RegistryClient;
use chroom_registry::client::JoinPolicy;
use chroom_types::{Account, Role, RoomKind, RoomName, RoomPolicy};

use crate::config::NodeConfig;
use crate::identity::{load_account_key, load_or_create_node_key, write_private_file};

/// Node `i` of the devnet serves its page on this port + `i`.
const DEV_WEB_PORT: usize = 7800;

/// Dev accounts written by `devnet up` (anvil's well-known keys; never use them elsewhere).
const DEV_ACCOUNTS: usize = 6;

/// Starts anvil, deploys the registry, writes dev account keys and one node config per dev
/// account under `dir`, then runs until Ctrl-C.
pub async fn devnet_up(anvil_path: &Path, port: u16, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        anvil_path.exists(),
        "anvil not found at {}: run scripts/setup.sh",
        anvil_path.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let anvil = Anvil::at(anvil_path)
        .port(port)
        .try_spawn()
        .context("starting anvil")?;
    let rpc_url = anvil.endpoint();
    let deployer = PrivateKeySigner::from(anvil.keys()[0].clone());
    let registry = RegistryClient::deploy(&rpc_url, deployer).await?;
    let accounts_dir = dir.join("accounts");
    std::fs::create_dir_all(&accounts_dir)?;
    println!("devnet rpc {rpc_url}");
    println!("registry {}", registry.address());
    for (i, key) in anvil.keys().iter().take(DEV_ACCOUNTS).enumerate() {
        let key_path = accounts_dir.join(format!("{i}.key"));
        // A rerun of `devnet up` writes the same well-known keys again.
        let _ = std::fs::remove_file(&key_path);
        write_private_file(
            &key_path,
            alloy::hex::encode_prefixed(key.to_bytes()).as_bytes(),
        )?;
        let address = PrivateKeySigner::from(key.clone()).address();
        let config_path = dir.join(format!("node-{i}.toml"));
        std::fs::write(
            &config_path,
            node_config(dir, i, &key_path, &rpc_url, registry.address()),
        )?;
        println!("account {i} {address} config {}", config_path.display());
    }
    println!("devnet ready; Ctrl-C stops it");
    // SIGTERM too (scripts stop it so): either way anvil is stopped with it, not orphaned.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped?,
        _ = terminate.recv() => {}
    }
    drop(anvil);
    Ok(())
}

fn node_config(dir: &Path, i: usize, key: &Path, rpc_url: &str, registry: Address) -> String {
    format!(
        "# Written by `chroom devnet up`: dev account {i} on the local devnet.\n\
         [node]\ndata_dir = \"{data}\"\n\n\
         [net]\nlisten = [\"/ip4/127.0.0.1/tcp/0\", \"/ip4/127.0.0.1/udp/0/quic-v1\"]\nkad_mode = \"server\"\n\n\
         [web]\nlisten = \"127.0.0.1:{web_port}\"\n\n\
         [identity]\naccount_key_file = \"{key}\"\n\n\
         [registry]\nrpc_url = \"{rpc_url}\"\naddress = \"{registry}\"\npoll_interval = \"200ms\"\n",
        data = dir.join(format!("node-{i}")).display(),
        key = key.display(),
        web_port = DEV_WEB_PORT + i,
    )
}

/// A registry client for `config`, signing with its account key if it has one.
fn client(config: &NodeConfig) -> anyhow::Result<RegistryClient> {
    let registry = config
        .registry
        .as_ref()
        .context("this config has no [registry] section")?;
    let signer = config
        .identity
        .as_ref()
        .map(|identity| load_account_key(&identity.key, config.open_key_files))
        .transpose()?;
    Ok(RegistryClient::connect(
        &registry.rpc_url,
        registry.address,
        signer,
    )?)
}

/// What `chroom room` does.
#[derive(Debug, Clone)]
pub enum RoomAction {
    /// Create a room.
    Create {
        /// Its name.
        name: RoomName,
        /// Its kind.
        kind: RoomKind,
        /// Its join policy.
        policy: JoinPolicy,
        /// Its metadata URI.
        metadata_uri: String,
    },
    /// Print a room's settings, and an account's standing if given.
    Show {
        /// The room.
        name: RoomName,
        /// The account to check.
        account: Option<Account>,
    },
    /// Print every room.
    List,
    /// Set an account's role (`None` revokes it).
    SetRole {
        /// The room.
        name: RoomName,
        /// The account.
        account: Account,
        /// The role.
        role: Option<Role>,
    },
    /// Ban an account.
    Ban {
        /// The room.
        name: RoomName,
        /// The account.
        account: Account,
    },
    /// Lift a ban.
    Unban {
        /// The room.
        name: RoomName,
        /// The account.
        account: Account,
    },
    /// Set the room's orchestration policy.
    Orchestrate {
        /// The room.
        name: RoomName,
        /// The policy.
        policy: RoomPolicy,
    },
}

/// Runs a `chroom room` command against the registry in `config`.
pub async fn room(config: &NodeConfig, action: RoomAction) -> anyhow::Result<()> {
    let registry = client(config)?;
    match action {
        RoomAction::Create {
            name,
            kind,
            policy,
            metadata_uri,
        } => {
            let block = registry
                .create_room(&name, kind, policy, &metadata_uri)
                .await?;
            println!(
                "created room {:?} ({}) in block {block}",
                name.as_str(),
                name.id()
            );
        }
        RoomAction::Show { name, account } => {
            let info = registry
                .room_info(name.id())
                .await?
                .with_context(|| format!("there is no room {:?}", name.as_str()))?;
            println!("room {:?} ({})", name.as_str(), name.id());
            println!("  owner {}", info.owner);
            println!("  kind {:?}", info.kind);
            println!("  policy {:?}", info.policy);
            let head = registry.head().await?;
            let read = registry
                .access(name.id(), account.unwrap_or(info.owner), head)
                .await?;
            println!("  {}", describe_policy(read.room_policy));
            if let Some(account) = account {
                println!("  {account}: {:?} at block {head}", read.membership);
            }
        }
        RoomAction::List => {
            for (name, id) in registry.rooms().await? {
                println!("{id} {name}");
            }
        }
        RoomAction::SetRole {
            name,
            account,
            role,
        } => {
            let block = registry.set_role(name.id(), account, role).await?;
            match role {
                Some(role) => println!(
                    "{account} is {role:?} in {:?} (block {block})",
                    name.as_str()
                ),
                None => println!(
                    "{account} has no role in {:?} (block {block})",
                    name.as_str()
                ),
            }
        }
        RoomAction::Ban { name, account } => {
            let block = registry.ban(name.id(), account).await?;
            println!(
                "{account} is banned from {:?} (block {block})",
                name.as_str()
            );
        }
        RoomAction::Unban { name, account } => {
            let block = registry.unban(name.id(), account).await?;
            println!(
                "{account} is no longer banned from {:?} (block {block})",
                name.as_str()
            );
        }
        RoomAction::Orchestrate { name, policy } => {
            let block = registry.set_room_policy(name.id(), policy).await?;
            println!(
                "{:?}: {} (block {block})",
                name.as_str(),
                describe_policy(policy)
            );
        }
    }
    Ok(())
}

/// A room policy in words.
fn describe_policy(policy: RoomPolicy) -> String {
    format!(
        "host fallback {}, presenting {}, stage {}",
        policy.host_fallback.name(),
        policy.presenting.name(),
        if policy.open_stage {
            "open"
        } else {
            "by invitation"
        }
    )
}

/// Registers this node (its PeerId from the data dir) as a relayer of the config's account.
pub async fn register_relayer(config: &NodeConfig, capacity: u32) -> anyhow::Result<()> {
    let registry = client(config)?;
    let key = load_or_create_node_key(&config.data_dir, config.open_key_files)?;
    let peer_id = key.public().to_peer_id();
    let block = registry
        .register_relayer(&peer_id.to_bytes(), capacity)
        .await?;
    println!("relayer {peer_id} registered with capacity {capacity} (block {block})");
    Ok(())
}

/// Parses a join policy from CLI flags.
pub fn join_policy(
    policy: &str,
    token: Option<Address>,
    min_balance: Option<u64>,
) -> anyhow::Result<JoinPolicy> {
    Ok(match (policy, token) {
        ("open", None) => JoinPolicy::Open,
        ("allowlist", None) => JoinPolicy::Allowlist,
        ("token", Some(token)) => JoinPolicy::TokenGated {
            token,
            min_balance: U256::from(min_balance.unwrap_or(1)),
        },
        ("token", None) => anyhow::bail!("--policy token needs --token ADDRESS"),
        (_, Some(_)) => anyhow::bail!("--token only goes with --policy token"),
        (other, None) => anyhow::bail!("unknown policy {other:?}: open, allowlist or token"),
    })
}
