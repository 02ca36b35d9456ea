//! RPC access to the registry: reads for the follower, transactions for the CLI, and reverts
//! turned into sentences people can act on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use chroom_room::follower::Change;
use chroom_types::{Account, Membership, Role, RoomId, RoomKind, RoomName, RoomPolicy};

use crate::contract::{
    RoomRegistry, TestERC20, kind_value, membership, orchestration_values, role_name, role_value,
    room_kind, room_policy,
};

/// The contract's `JoinPolicy.TokenGated` value.
const TOKEN_GATED: u8 = 2;

/// A room's join policy, as the CLI sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinPolicy {
    /// Everyone not banned.
    Open,
    /// Only accounts granted a role.
    Allowlist,
    /// Accounts holding at least `min_balance` of an ERC-20 or ERC-721 `token`.
    TokenGated {
        /// The token contract.
        token: Address,
        /// Balance that admits.
        min_balance: U256,
    },
}

/// A room's settings as the registry holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Its owner.
    pub owner: Account,
    /// Its kind, if this build knows it.
    pub kind: Option<RoomKind>,
    /// Who may join without a role.
    pub policy: JoinPolicy,
    /// Where its description lives.
    pub metadata_uri: String,
}

/// What the registry says about an account in a room at some block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRead {
    /// The room's kind, or `None` if there is no such room.
    pub room_kind: Option<RoomKind>,
    /// The account's standing.
    pub membership: Membership,
    /// The account is in the relayer directory (it may carry broadcasts without a role).
    pub relayer: bool,
    /// How the room's roles are assigned among the members present (default for no room).
    pub room_policy: RoomPolicy,
}

/// A registry call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The RPC endpoint could not be reached or answered with an error.
    #[error("chain rpc: {0}")]
    Rpc(String),
    /// The contract refused the transaction; the text says why in words.
    #[error("{0}")]
    Reverted(String),
    /// A transaction needs an account key and none is configured.
    #[error("no account key configured to send transactions")]
    NoSigner,
}

/// A handle on the registry contract at `address`.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    provider: DynProvider,
    address: Address,
    /// Token contracts gating rooms this client has read, and the rooms each gates: their
    /// transfers change who may join, so [`Self::changes`] follows them too.
    gates: Arc<Mutex<HashMap<Address, HashSet<RoomId>>>>,
}

impl RegistryClient {
    /// Connects to `rpc_url`; `signer` (if any) signs transactions.
    pub fn connect(
        rpc_url: &str,
        address: Address,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self, RegistryError> {
        let url = rpc_url
            .parse()
            .map_err(|e| RegistryError::Rpc(format!("bad rpc url {rpc_url:?}: {e}")))?;
        let provider = match signer {
            Some(signer) => ProviderBuilder::new()
                .wallet(EthereumWallet::from(signer))
                .connect_http(url)
                .erased(),
            None => ProviderBuilder::new().connect_http(url).erased(),
        };
        Ok(Self {
            provider,
            address,
            gates: Arc::default(),
        })
    }

    /// Deploys a new registry with `signer`'s account.
    pub async fn deploy(rpc_url: &str, signer: PrivateKeySigner) -> Result<Self, RegistryError> {
        let client = Self::connect(rpc_url, Address::ZERO, Some(signer))?;
        let deployed = RoomRegistry::deploy(&client.provider)
            .await
            .map_err(|e| RegistryError::Rpc(e.to_string()))?;
        Ok(Self {
            address: *deployed.address(),
            ..client
        })
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The provider (for deploying test tokens and the like).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The chain's head block number.
    pub async fn head(&self) -> Result<u64, RegistryError> {
        self.provider.get_block_number().await.map_err(rpc)
    }

    /// What the registry says about `account` in `room` as of `block`.
    pub async fn access(
        &self,
        room: RoomId,
        account: Account,
        block: u64,
    ) -> Result<AccessRead, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let read = registry
            .access(
                B256::from(*room.as_bytes()),
                Address::from(*account.as_bytes()),
            )
            .block(block.into())
            .call()
            .await
            .map_err(rpc)?;
        let relayer = registry
            .relayerOf(Address::from(*account.as_bytes()))
            .block(block.into())
            .call()
            .await
            .map_err(rpc)?
            .registered;
        if !read.exists {
            return Ok(AccessRead {
                room_kind: None,
                membership: Membership::NotMember,
                relayer,
                room_policy: RoomPolicy::default(),
            });
        }
        let info = registry
            .roomInfo(B256::from(*room.as_bytes()))
            .block(block.into())
            .call()
            .await
            .map_err(rpc)?;
        if info.policy == TOKEN_GATED {
            self.gates
                .lock()
                .expect("gate map lock is never poisoned: no panics while held")
                .entry(info.token)
                .or_default()
                .insert(room);
        }
        Ok(AccessRead {
            // A kind this build does not know is treated like an unknown room: no access.
            room_kind: room_kind(read.kind),
            membership: membership(read.role, read.accountBanned),
            relayer,
            room_policy: room_policy(&read.orchestration),
        })
    }

    /// The registry's changes in blocks `from..=to`, decoded.
    pub async fn changes(&self, from: u64, to: u64) -> Result<Vec<Change>, RegistryError> {
        let gates = self
            .gates
            .lock()
            .expect("gate map lock is never poisoned: no panics while held")
            .clone();
        let mut addresses = vec![self.address];
        addresses.extend(gates.keys().copied());
        let filter = Filter::new()
            .address(addresses)
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let mut changes = Vec::new();
        for log in logs {
            let Some(topic) = log.topic0() else { continue };
            if let Some(rooms) = gates.get(&log.address()) {
                // ERC-20 and ERC-721 share Transfer(address,address,uint256) with from and to
                // as the first two indexed topics.
                if *topic == TestERC20::Transfer::SIGNATURE_HASH {
                    let parties = log.topics()[1..]
                        .iter()
                        .take(2)
                        .map(|t| Account::from_bytes(Address::from_word(*t).into_array()));
                    for party in parties {
                        changes.extend(rooms.iter().map(|room| Change::Account(*room, party)));
                    }
                }
                continue;
            }
            let room = || log.topics().get(1).map(|t| RoomId::from_bytes(t.0));
            let account = || {
                log.topics()
                    .get(2)
                    .map(|t| Account::from_bytes(Address::from_word(*t).into_array()))
            };
            let change = match *topic {
                RoomRegistry::RoleChanged::SIGNATURE_HASH
                | RoomRegistry::MemberBanned::SIGNATURE_HASH
                | RoomRegistry::MemberUnbanned::SIGNATURE_HASH => {
                    room().zip(account()).map(|(r, a)| Change::Account(r, a))
                }
                RoomRegistry::RoomCreated::SIGNATURE_HASH
                | RoomRegistry::RoomUpdated::SIGNATURE_HASH
                | RoomRegistry::OrchestrationChanged::SIGNATURE_HASH
                | RoomRegistry::OwnershipTransferred::SIGNATURE_HASH => room().map(Change::Room),
                // The relayer events index the account first.
                RoomRegistry::RelayerRegistered::SIGNATURE_HASH
                | RoomRegistry::RelayerUpdated::SIGNATURE_HASH
                | RoomRegistry::RelayerUnregistered::SIGNATURE_HASH => {
                    log.topics().get(1).map(|t| {
                        Change::Relayer(Account::from_bytes(Address::from_word(*t).into_array()))
                    })
                }
                _ => None,
            };
            changes.extend(change);
        }
        Ok(changes)
    }

    /// Creates the room `name` owned by the signer; returns the block it landed in.
    pub async fn create_room(
        &self,
        name: &RoomName,
        kind: RoomKind,
        policy: JoinPolicy,
        metadata_uri: &str,
    ) -> Result<u64, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let (policy, token, min_balance) = match policy {
            JoinPolicy::Open => (0u8, Address::ZERO, U256::ZERO),
            JoinPolicy::Allowlist => (1, Address::ZERO, U256::ZERO),
            JoinPolicy::TokenGated { token, min_balance } => (2, token, min_balance),
        };
        let call = registry.createRoom(
            name.as_str().to_owned(),
            kind_value(kind),
            policy,
            token,
            min_balance,
            metadata_uri.to_owned(),
        );
        self.mined(call.send().await).await
    }

    /// Sets `account`'s role in `room` (`None` revokes).
    pub async fn set_role(
        &self,
        room: RoomId,
        account: Account,
        role: Option<Role>,
    ) -> Result<u64, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let call = registry.setRole(
            B256::from(*room.as_bytes()),
            Address::from(*account.as_bytes()),
            role_value(role),
        );
        self.mined(call.send().await).await
    }

    /// Bans `account` from `room`.
    pub async fn ban(&self, room: RoomId, account: Account) -> Result<u64, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let call = registry.ban(
            B256::from(*room.as_bytes()),
            Address::from(*account.as_bytes()),
        );
        self.mined(call.send().await).await
    }

    /// Lifts `account`'s ban from `room`.
    pub async fn unban(&self, room: RoomId, account: Account) -> Result<u64, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let call = registry.unban(
            B256::from(*room.as_bytes()),
            Address::from(*account.as_bytes()),
        );
        self.mined(call.send().await).await
    }

    /// Sets how nodes assign `room`'s roles among the members present.
    pub async fn set_room_policy(
        &self,
        room: RoomId,
        policy: RoomPolicy,
    ) -> Result<u64, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let (host_fallback, presenting, open_stage) = orchestration_values(policy);
        let call = registry.setOrchestration(
            B256::from(*room.as_bytes()),
            host_fallback,
            presenting,
            open_stage,
        );
        self.mined(call.send().await).await
    }

    /// Names and ids of every room created so far, oldest first (from `RoomCreated` logs).
    pub async fn rooms(&self) -> Result<Vec<(String, RoomId)>, RegistryError> {
        let filter = Filter::new()
            .address(self.address)
            .event_signature(RoomRegistry::RoomCreated::SIGNATURE_HASH)
            .from_block(0);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        Ok(logs
            .iter()
            .filter_map(|log| log.log_decode::<RoomRegistry::RoomCreated>().ok())
            .map(|decoded| {
                let event = decoded.inner.data;
                (event.name, RoomId::from_bytes(event.room.0))
            })
            .collect())
    }

    /// A room's settings: owner, kind and join policy, or `None` if there is no such room.
    pub async fn room_info(&self, room: RoomId) -> Result<Option<RoomInfo>, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let id = B256::from(*room.as_bytes());
        let head = self.head().await?;
        let exists = registry
            .access(id, Address::ZERO)
            .block(head.into())
            .call()
            .await
            .map_err(rpc)?
            .exists;
        if !exists {
            return Ok(None);
        }
        let info = registry
            .roomInfo(id)
            .block(head.into())
            .call()
            .await
            .map_err(rpc)?;
        let policy = match info.policy {
            0 => JoinPolicy::Open,
            1 => JoinPolicy::Allowlist,
            _ => JoinPolicy::TokenGated {
                token: info.token,
                min_balance: info.minBalance,
            },
        };
        Ok(Some(RoomInfo {
            owner: Account::from_bytes(info.owner.into_array()),
            kind: room_kind(info.kind),
            policy,
            metadata_uri: info.metadataUri,
        }))
    }

    /// Registers the signer as a relayer for node `peer_id` with room for `capacity` children.
    pub async fn register_relayer(
        &self,
        peer_id: &[u8],
        capacity: u32,
    ) -> Result<u64, RegistryError> {
        let registry = RoomRegistry::new(self.address, &self.provider);
        let call = registry.registerRelayer(peer_id.to_vec().into(), capacity);
        self.mined(call.send().await).await
    }

    /// Waits for a sent transaction's receipt; a revert becomes a sentence.
    async fn mined<N: alloy::network::Network>(
        &self,
        sent: Result<alloy::providers::PendingTransactionBuilder<N>, alloy::contract::Error>,
    ) -> Result<u64, RegistryError> {
        let pending = sent.map_err(describe_revert)?;
        let receipt = pending.get_receipt().await.map_err(rpc)?;
        use alloy::network::ReceiptResponse;
        if !receipt.status() {
            return Err(RegistryError::Reverted("transaction reverted".into()));
        }
        Ok(receipt.block_number().unwrap_or_default())
    }
}

fn rpc(error: impl std::fmt::Display) -> RegistryError {
    RegistryError::Rpc(error.to_string())
}

/// Turns a failed call into a sentence naming who may not do what.
fn describe_revert(error: alloy::contract::Error) -> RegistryError {
    use RoomRegistry::RoomRegistryErrors as E;
    let Some(decoded) = error.as_decoded_interface_error::<E>() else {
        return rpc(error);
    };
    let room = |id: &B256| RoomId::from_bytes(id.0).fmt_short();
    let role = |r: &u8| role_name(*r);
    let text = match decoded {
        E::NotAuthorized(e) => format!(
            "{} is not an admin of room {} (its role is {})",
            e.caller,
            room(&e.room),
            role(&e.callerRole)
        ),
        E::RoleAboveCaller(e) => format!(
            "cannot grant {} in room {}: above the caller's own role ({})",
            role(&e.requested),
            room(&e.room),
            role(&e.callerRole)
        ),
        E::TargetNotBelowCaller(e) => format!(
            "{} is {} in room {}, not below the caller ({})",
            e.target,
            role(&e.targetRole),
            room(&e.room),
            role(&e.callerRole)
        ),
        E::CannotModifyOwner(e) => format!(
            "{} owns room {}: only an ownership transfer changes that",
            e.owner,
            room(&e.room)
        ),
        E::RoomExists(e) => format!("room {} exists already", room(&e.room)),
        E::UnknownRoom(e) => format!("there is no room {}", room(&e.room)),
        E::InvalidName(e) => format!("a room name must be 1 to 128 bytes, not {}", e.length),
        E::InvalidTokenGate(_) => {
            "token gating needs a token address and a minimum balance above zero".into()
        }
        E::InvalidAccount(_) => "the zero address cannot hold a role".into(),
        E::AccountBanned(e) => format!("{} is banned from room {}", e.account, room(&e.room)),
        E::InvalidRelayer(e) => format!(
            "a relayer needs a PeerId of 1 to 64 bytes and a capacity above zero (got {} bytes, capacity {})",
            e.peerIdLength, e.capacity
        ),
        E::RelayerExists(e) => format!("{} is registered as a relayer already", e.account),
        E::UnknownRelayer(e) => format!("{} is not a registered relayer", e.account),
    };
    RegistryError::Reverted(text)
}
