//! alloy bindings generated from the committed contract artifacts, and the mapping between the
//! contract's enums and Chroom's types.

use chroom_types::{HostFallback, Membership, Presenting, Role, RoomKind, RoomPolicy};

alloy::sol!(
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[sol(rpc)]
    RoomRegistry,
    "../../contracts/artifacts/RoomRegistry.json"
);

alloy::sol!(
    #[allow(missing_docs)]
    #[sol(rpc)]
    TestERC20,
    "../../contracts/artifacts/TestERC20.json"
);

alloy::sol!(
    #[allow(missing_docs)]
    #[sol(rpc)]
    TestERC721,
    "../../contracts/artifacts/TestERC721.json"
);

// The JSON ABI carries Solidity enums as uint8; these follow the declaration order in
// contracts/src/RoomRegistry.sol (Kind, JoinPolicy, Role).

/// The contract's `Kind` value for `kind`.
pub(crate) fn kind_value(kind: RoomKind) -> u8 {
    match kind {
        RoomKind::Conference => 0,
        RoomKind::AudioSpace => 1,
        RoomKind::Broadcast => 2,
    }
}

/// The contract's kind as Chroom's; `None` for a value this build does not know.
pub(crate) fn room_kind(kind: u8) -> Option<RoomKind> {
    Some(match kind {
        0 => RoomKind::Conference,
        1 => RoomKind::AudioSpace,
        2 => RoomKind::Broadcast,
        _ => return None,
    })
}

/// The contract's `Role` value (`None` revokes).
pub(crate) fn role_value(role: Option<Role>) -> u8 {
    match role {
        None => 0,
        Some(Role::Listener) => 1,
        Some(Role::Speaker) => 2,
        Some(Role::Host) => 3,
        Some(Role::Admin) => 4,
        Some(Role::Owner) => 5,
    }
}

/// A contract role value as a word, for messages.
pub(crate) fn role_name(role: u8) -> &'static str {
    match membership(role, false) {
        Membership::Member(role) => role.name(),
        _ if role == 0 => "none",
        _ => "unknown",
    }
}

/// The contract's effective role and ban flag as a membership.
pub(crate) fn membership(role: u8, banned: bool) -> Membership {
    if banned {
        return Membership::Banned;
    }
    match role {
        1 => Membership::Member(Role::Listener),
        2 => Membership::Member(Role::Speaker),
        3 => Membership::Member(Role::Host),
        4 => Membership::Member(Role::Admin),
        5 => Membership::Member(Role::Owner),
        // None, or a value from a newer contract: no access is the safe reading.
        _ => Membership::NotMember,
    }
}

/// The contract's orchestration as Chroom's room policy. A value from a newer contract reads
/// as the default: no fallback host, free presenting, closed stage (nothing granted that the
/// room did not ask for).
pub(crate) fn room_policy(orchestration: &RoomRegistry::Orchestration) -> RoomPolicy {
    RoomPolicy {
        host_fallback: HostFallback::from_value(orchestration.hostFallback).unwrap_or_default(),
        presenting: Presenting::from_value(orchestration.presenting).unwrap_or_default(),
        open_stage: orchestration.openStage,
    }
}

/// Chroom's room policy as the contract's arguments.
pub(crate) fn orchestration_values(policy: RoomPolicy) -> (u8, u8, bool) {
    (
        policy.host_fallback.value(),
        policy.presenting.value(),
        policy.open_stage,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_values_round_trip() {
        for role in [
            Role::Listener,
            Role::Speaker,
            Role::Host,
            Role::Admin,
            Role::Owner,
        ] {
            assert_eq!(
                membership(role_value(Some(role)), false),
                Membership::Member(role)
            );
            assert_eq!(membership(role_value(Some(role)), true), Membership::Banned);
        }
        assert_eq!(membership(role_value(None), false), Membership::NotMember);
        assert_eq!(membership(99, false), Membership::NotMember);
        for kind in [
            RoomKind::Conference,
            RoomKind::AudioSpace,
            RoomKind::Broadcast,
        ] {
            assert_eq!(room_kind(kind_value(kind)), Some(kind));
        }
        for host_fallback in HostFallback::ALL {
            for presenting in Presenting::ALL {
                let policy = RoomPolicy {
                    host_fallback,
                    presenting,
                    open_stage: true,
                };
                let (host, presenting, open) = orchestration_values(policy);
                let read = RoomRegistry::Orchestration {
                    hostFallback: host,
                    presenting,
                    openStage: open,
                };
                assert_eq!(room_policy(&read), policy);
            }
        }
        let newer = RoomRegistry::Orchestration {
            hostFallback: 9,
            presenting: 9,
            openStage: false,
        };
        assert_eq!(room_policy(&newer), RoomPolicy::default());
    }
}
