//! The registry client against a real anvil chain: deploy, create a room, change roles, read
//! access at a block, decode the change log, and turn reverts into sentences.

use std::path::PathBuf;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::signers::local::PrivateKeySigner;
use chroom_registry::client::JoinPolicy;
use chroom_registry::contract::TestERC721;
use chroom_registry::{RegistryClient, RegistryError};
use chroom_room::follower::Change;
use chroom_types::{
    Account, HostFallback, Membership, Presenting, Role, RoomKind, RoomName, RoomPolicy,
};

fn anvil() -> AnvilInstance {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        path.exists(),
        "anvil missing at {}: run scripts/setup.sh",
        path.display()
    );
    Anvil::at(path).spawn()
}

fn account(signer: &PrivateKeySigner) -> Account {
    Account::from_bytes(signer.address().into_array())
}

#[tokio::test]
async fn roles_bans_and_reverts_on_a_real_chain() {
    let anvil = anvil();
    let url = anvil.endpoint();
    let owner = PrivateKeySigner::from(anvil.keys()[0].clone());
    let alice = PrivateKeySigner::from(anvil.keys()[1].clone());
    let registry = RegistryClient::deploy(&url, owner.clone()).await.unwrap();
    let as_alice = RegistryClient::connect(&url, registry.address(), Some(alice.clone())).unwrap();

    let name: RoomName = "standup".parse().unwrap();
    let room = name.id();
    let start = registry.head().await.unwrap();
    let created = registry
        .create_room(&name, RoomKind::AudioSpace, JoinPolicy::Allowlist, "")
        .await
        .unwrap();

    let read = registry
        .access(room, account(&owner), created)
        .await
        .unwrap();
    assert_eq!(read.room_kind, Some(RoomKind::AudioSpace));
    assert_eq!(read.membership, Membership::Member(Role::Owner));
    let read = registry
        .access(room, account(&alice), created)
        .await
        .unwrap();
    assert_eq!(read.membership, Membership::NotMember, "allowlist room");

    // A non-admin's grant reverts with a sentence naming who and where.
    let err = as_alice
        .set_role(room, account(&alice), Some(Role::Speaker))
        .await
        .unwrap_err();
    let RegistryError::Reverted(text) = &err else {
        panic!("expected a revert, got {err:?}");
    };
    assert!(text.contains("is not an admin of room"), "{text}");
    assert!(
        text.to_lowercase().contains(&account(&alice).to_string()),
        "{text}"
    );

    let granted = registry
        .set_role(room, account(&alice), Some(Role::Speaker))
        .await
        .unwrap();
    let banned = registry.ban(room, account(&alice)).await.unwrap();
    // Reads are at a block: history is visible, not just the present.
    let at_grant = registry
        .access(room, account(&alice), granted)
        .await
        .unwrap();
    assert_eq!(at_grant.membership, Membership::Member(Role::Speaker));
    let at_ban = registry
        .access(room, account(&alice), banned)
        .await
        .unwrap();
    assert_eq!(at_ban.membership, Membership::Banned);

    let changes = registry.changes(start + 1, banned).await.unwrap();
    assert!(changes.contains(&Change::Room(room)), "{changes:?}");
    let alice_changes = changes
        .iter()
        .filter(|c| **c == Change::Account(room, account(&alice)))
        .count();
    assert_eq!(alice_changes, 2, "grant and ban: {changes:?}");

    // The orchestration policy: every access read carries it, and setting it is a room change.
    assert_eq!(at_ban.room_policy, RoomPolicy::default());
    let policy = RoomPolicy {
        host_fallback: HostFallback::FirstJoiner,
        presenting: Presenting::Approval,
        open_stage: true,
    };
    let orchestrated = registry.set_room_policy(room, policy).await.unwrap();
    let read = registry
        .access(room, account(&alice), orchestrated)
        .await
        .unwrap();
    assert_eq!(read.room_policy, policy);
    let changes = registry.changes(orchestrated, orchestrated).await.unwrap();
    assert_eq!(changes, [Change::Room(room)]);

    let nowhere = "nowhere".parse::<RoomName>().unwrap().id();
    let read = registry
        .access(nowhere, account(&alice), banned)
        .await
        .unwrap();
    assert_eq!(read.room_kind, None);

    let err = registry
        .create_room(&name, RoomKind::Conference, JoinPolicy::Open, "")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
}

#[tokio::test]
async fn relayer_registration() {
    let anvil = anvil();
    let owner = PrivateKeySigner::from(anvil.keys()[0].clone());
    let registry = RegistryClient::deploy(&anvil.endpoint(), owner)
        .await
        .unwrap();
    registry.register_relayer(b"peer", 8).await.unwrap();
    let err = registry.register_relayer(b"peer", 8).await.unwrap_err();
    assert!(
        err.to_string().contains("registered as a relayer already"),
        "{err}"
    );
    let err = registry.register_relayer(b"", 8).await.unwrap_err();
    assert!(err.to_string().contains("1 to 64 bytes"), "{err}");
}

#[tokio::test]
async fn token_transfers_change_access_and_are_followed() {
    let anvil = anvil();
    let url = anvil.endpoint();
    let owner = PrivateKeySigner::from(anvil.keys()[0].clone());
    let alice = PrivateKeySigner::from(anvil.keys()[1].clone());
    let bob = PrivateKeySigner::from(anvil.keys()[2].clone());
    let registry = RegistryClient::deploy(&url, owner).await.unwrap();
    let nft = TestERC721::deploy(registry.provider()).await.unwrap();
    let name: RoomName = "holders".parse().unwrap();
    let room = name.id();
    let gate = JoinPolicy::TokenGated {
        token: *nft.address(),
        min_balance: alloy::primitives::U256::from(1),
    };
    registry
        .create_room(&name, RoomKind::Broadcast, gate, "")
        .await
        .unwrap();
    nft.mint(alice.address(), alloy::primitives::U256::from(7))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let minted = registry.head().await.unwrap();
    let read = registry
        .access(room, account(&alice), minted)
        .await
        .unwrap();
    assert_eq!(
        read.membership,
        Membership::Member(Role::Listener),
        "holder is in"
    );

    let as_alice = RegistryClient::connect(&url, registry.address(), Some(alice.clone())).unwrap();
    TestERC721::new(*nft.address(), as_alice.provider())
        .transferFrom(
            alice.address(),
            bob.address(),
            alloy::primitives::U256::from(7),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let moved = registry.head().await.unwrap();
    let changes = registry.changes(minted + 1, moved).await.unwrap();
    assert!(
        changes.contains(&Change::Account(room, account(&alice))),
        "{changes:?}"
    );
    assert!(
        changes.contains(&Change::Account(room, account(&bob))),
        "{changes:?}"
    );
    let read = registry.access(room, account(&alice), moved).await.unwrap();
    assert_eq!(
        read.membership,
        Membership::NotMember,
        "transferred away: out"
    );
    let read = registry.access(room, account(&bob), moved).await.unwrap();
    assert_eq!(
        read.membership,
        Membership::Member(Role::Listener),
        "new holder: in"
    );
}
