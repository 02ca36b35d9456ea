// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "./Base.sol";
import {RoomRegistry} from "../src/RoomRegistry.sol";
import {TestERC20, TestERC721} from "../src/TestTokens.sol";

contract RoomRegistryTest is Base {
    RoomRegistry internal registry;
    bytes32 internal room;

    address internal constant OWNER = address(0xA11CE);
    address internal constant ADMIN = address(0xAD);
    address internal constant HOST = address(0x405);
    address internal constant ALICE = address(0xA1);
    address internal constant BOB = address(0xB0B);

    event RoleChanged(
        bytes32 indexed room, address indexed account, RoomRegistry.Role oldRole, RoomRegistry.Role newRole, address by
    );
    event MemberBanned(bytes32 indexed room, address indexed account, address by);
    event RelayerRegistered(address indexed account, bytes peerId, uint32 capacity);
    event OrchestrationChanged(
        bytes32 indexed room, RoomRegistry.HostFallback hostFallback, RoomRegistry.Presenting presenting, bool openStage
    );

    function setUp() public {
        registry = new RoomRegistry();
        vm.prank(OWNER);
        room = registry.createRoom(
            "standup", RoomRegistry.Kind.Conference, RoomRegistry.JoinPolicy.Allowlist, address(0), 0, "ipfs://x"
        );
        vm.prank(OWNER);
        registry.setRole(room, ADMIN, RoomRegistry.Role.Admin);
        vm.prank(OWNER);
        registry.setRole(room, HOST, RoomRegistry.Role.Host);
    }

    function role(address account) internal view returns (uint256) {
        return uint256(registry.roleOf(room, account));
    }

    function test_room_id_is_keccak_of_name() public view {
        assertTrue(room == keccak256("standup"), "room id");
        assertTrue(registry.roomId("standup") == room, "roomId()");
    }

    function test_creating_a_room_twice_or_with_a_bad_name_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.RoomExists.selector, room));
        registry.createRoom("standup", RoomRegistry.Kind.Broadcast, RoomRegistry.JoinPolicy.Open, address(0), 0, "");
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.InvalidName.selector, 0));
        registry.createRoom("", RoomRegistry.Kind.Broadcast, RoomRegistry.JoinPolicy.Open, address(0), 0, "");
    }

    function test_token_gate_needs_token_and_minimum_and_only_then() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                RoomRegistry.InvalidTokenGate.selector, RoomRegistry.JoinPolicy.TokenGated, address(0), 1
            )
        );
        registry.createRoom("g", RoomRegistry.Kind.Broadcast, RoomRegistry.JoinPolicy.TokenGated, address(0), 1, "");
        vm.expectRevert(
            abi.encodeWithSelector(RoomRegistry.InvalidTokenGate.selector, RoomRegistry.JoinPolicy.Open, address(1), 0)
        );
        registry.createRoom("g", RoomRegistry.Kind.Broadcast, RoomRegistry.JoinPolicy.Open, address(1), 0, "");
    }

    function test_creator_is_owner_and_roles_are_granted() public view {
        assertEq(role(OWNER), uint256(RoomRegistry.Role.Owner), "owner");
        assertEq(role(ADMIN), uint256(RoomRegistry.Role.Admin), "admin");
        assertEq(role(ALICE), uint256(RoomRegistry.Role.None), "stranger in allowlist room");
        assertTrue(!registry.canJoin(room, ALICE), "stranger cannot join");
    }

    function test_role_changes_emit_events() public {
        vm.expectEmit(true, true, false, true);
        emit RoleChanged(room, ALICE, RoomRegistry.Role.None, RoomRegistry.Role.Speaker, ADMIN);
        vm.prank(ADMIN);
        registry.setRole(room, ALICE, RoomRegistry.Role.Speaker);
        assertTrue(registry.canJoin(room, ALICE), "granted member joins");
    }

    function test_only_owner_and_admin_change_roles() public {
        vm.expectRevert(
            abi.encodeWithSelector(RoomRegistry.NotAuthorized.selector, room, HOST, RoomRegistry.Role.Host)
        );
        vm.prank(HOST);
        registry.setRole(room, ALICE, RoomRegistry.Role.Listener);
    }

    function test_nobody_grants_above_their_own_role() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                RoomRegistry.RoleAboveCaller.selector, room, RoomRegistry.Role.Owner, RoomRegistry.Role.Admin
            )
        );
        vm.prank(ADMIN);
        registry.setRole(room, ALICE, RoomRegistry.Role.Owner);
        // Even the owner makes a second owner only through transferOwnership.
        vm.expectRevert(
            abi.encodeWithSelector(
                RoomRegistry.RoleAboveCaller.selector, room, RoomRegistry.Role.Owner, RoomRegistry.Role.Owner
            )
        );
        vm.prank(OWNER);
        registry.setRole(room, ALICE, RoomRegistry.Role.Owner);
    }

    function test_admin_cannot_demote_or_ban_the_owner() public {
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.CannotModifyOwner.selector, room, OWNER));
        vm.prank(ADMIN);
        registry.setRole(room, OWNER, RoomRegistry.Role.Listener);
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.CannotModifyOwner.selector, room, OWNER));
        vm.prank(ADMIN);
        registry.ban(room, OWNER);
    }

    function test_admin_cannot_touch_another_admin_but_owner_can() public {
        vm.prank(OWNER);
        registry.setRole(room, BOB, RoomRegistry.Role.Admin);
        vm.expectRevert(
            abi.encodeWithSelector(
                RoomRegistry.TargetNotBelowCaller.selector, room, BOB, RoomRegistry.Role.Admin, RoomRegistry.Role.Admin
            )
        );
        vm.prank(ADMIN);
        registry.setRole(room, BOB, RoomRegistry.Role.Listener);
        vm.prank(OWNER);
        registry.setRole(room, BOB, RoomRegistry.Role.Listener);
        assertEq(role(BOB), uint256(RoomRegistry.Role.Listener), "owner demoted admin");
    }

    function test_ban_beats_role_and_policy_and_banned_admin_loses_power() public {
        vm.expectEmit(true, true, false, true);
        emit MemberBanned(room, HOST, ADMIN);
        vm.prank(ADMIN);
        registry.ban(room, HOST);
        assertEq(role(HOST), uint256(RoomRegistry.Role.None), "banned host has no role");
        assertTrue(!registry.canJoin(room, HOST), "banned cannot join");
        (bool exists,, RoomRegistry.Role r, bool isBanned,) = registry.access(room, HOST);
        assertTrue(exists && isBanned && r == RoomRegistry.Role.None, "access() reports the ban");

        vm.prank(OWNER);
        registry.ban(room, ADMIN);
        vm.expectRevert(
            abi.encodeWithSelector(RoomRegistry.NotAuthorized.selector, room, ADMIN, RoomRegistry.Role.None)
        );
        vm.prank(ADMIN);
        registry.setRole(room, ALICE, RoomRegistry.Role.Listener);

        vm.prank(OWNER);
        registry.unban(room, HOST);
        assertEq(role(HOST), uint256(RoomRegistry.Role.Host), "unban restores the role");
    }

    function test_ban_beats_an_open_room() public {
        vm.prank(OWNER);
        bytes32 open =
            registry.createRoom("lobby", RoomRegistry.Kind.AudioSpace, RoomRegistry.JoinPolicy.Open, address(0), 0, "");
        assertTrue(registry.canJoin(open, BOB), "open room admits strangers");
        vm.prank(OWNER);
        registry.ban(open, BOB);
        assertTrue(!registry.canJoin(open, BOB), "ban beats open");
    }

    function test_ownership_transfer() public {
        vm.expectRevert(
            abi.encodeWithSelector(RoomRegistry.NotAuthorized.selector, room, ADMIN, RoomRegistry.Role.Admin)
        );
        vm.prank(ADMIN);
        registry.transferOwnership(room, ADMIN);
        vm.prank(OWNER);
        registry.transferOwnership(room, ALICE);
        assertEq(role(ALICE), uint256(RoomRegistry.Role.Owner), "new owner");
        assertEq(role(OWNER), uint256(RoomRegistry.Role.Admin), "old owner stays admin");
        (address owner,,,,,) = registry.roomInfo(room);
        assertTrue(owner == ALICE, "roomInfo owner");
    }

    function test_unknown_room_reverts_and_access_reports_it() public {
        bytes32 nowhere = keccak256("nowhere");
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.UnknownRoom.selector, nowhere));
        registry.roleOf(nowhere, ALICE);
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.UnknownRoom.selector, nowhere));
        vm.prank(OWNER);
        registry.setRole(nowhere, ALICE, RoomRegistry.Role.Listener);
        (bool exists,,,,) = registry.access(nowhere, ALICE);
        assertTrue(!exists, "access() on unknown room");
    }

    function test_orchestration_is_set_by_admins_and_reported_by_access() public {
        (,,,, RoomRegistry.Orchestration memory before) = registry.access(room, ALICE);
        assertTrue(
            before.hostFallback == RoomRegistry.HostFallback.None
                && before.presenting == RoomRegistry.Presenting.Free && !before.openStage,
            "a new room: no fallback host, free presenting, closed stage"
        );
        vm.expectRevert(
            abi.encodeWithSelector(RoomRegistry.NotAuthorized.selector, room, HOST, RoomRegistry.Role.Host)
        );
        vm.prank(HOST);
        registry.setOrchestration(room, RoomRegistry.HostFallback.FirstJoiner, RoomRegistry.Presenting.Free, true);

        vm.expectEmit(true, false, false, true);
        emit OrchestrationChanged(room, RoomRegistry.HostFallback.FirstJoiner, RoomRegistry.Presenting.Approval, true);
        vm.prank(ADMIN);
        registry.setOrchestration(room, RoomRegistry.HostFallback.FirstJoiner, RoomRegistry.Presenting.Approval, true);
        (,,,, RoomRegistry.Orchestration memory set) = registry.access(room, BOB);
        assertTrue(
            set.hostFallback == RoomRegistry.HostFallback.FirstJoiner
                && set.presenting == RoomRegistry.Presenting.Approval && set.openStage,
            "access() reports the orchestration"
        );
    }

    function test_erc20_gate_follows_the_balance() public {
        TestERC20 token = new TestERC20();
        vm.prank(OWNER);
        bytes32 gated = registry.createRoom(
            "holders", RoomRegistry.Kind.Broadcast, RoomRegistry.JoinPolicy.TokenGated, address(token), 10, ""
        );
        token.mint(ALICE, 10);
        assertTrue(registry.canJoin(gated, ALICE), "holder joins");
        vm.prank(ALICE);
        token.transfer(BOB, 5);
        assertTrue(!registry.canJoin(gated, ALICE), "below minimum after transfer");
        assertTrue(!registry.canJoin(gated, BOB), "BOB holds 5 < 10");
    }

    function test_erc721_gate_follows_the_token() public {
        TestERC721 nft = new TestERC721();
        vm.prank(OWNER);
        bytes32 gated = registry.createRoom(
            "nft", RoomRegistry.Kind.AudioSpace, RoomRegistry.JoinPolicy.TokenGated, address(nft), 1, ""
        );
        nft.mint(ALICE, 7);
        assertTrue(registry.canJoin(gated, ALICE), "holder joins");
        vm.prank(ALICE);
        nft.transferFrom(ALICE, BOB, 7);
        assertTrue(!registry.canJoin(gated, ALICE), "transferred away: out");
        assertTrue(registry.canJoin(gated, BOB), "new holder: in");
        vm.prank(OWNER);
        registry.ban(gated, BOB);
        assertTrue(!registry.canJoin(gated, BOB), "ban beats token");
    }

    function test_a_broken_token_admits_nobody() public {
        vm.prank(OWNER);
        bytes32 gated = registry.createRoom(
            "broken", RoomRegistry.Kind.Broadcast, RoomRegistry.JoinPolicy.TokenGated, address(0xDEAD), 1, ""
        );
        assertTrue(!registry.canJoin(gated, ALICE), "no code at token address");
    }

    function test_relayer_directory() public {
        bytes memory peer = hex"0024080112201234";
        vm.expectEmit(true, false, false, true);
        emit RelayerRegistered(ALICE, peer, 8);
        vm.prank(ALICE);
        registry.registerRelayer(peer, 8);
        (bytes memory got, uint32 capacity, bool registered) = registry.relayerOf(ALICE);
        assertTrue(registered && keccak256(got) == keccak256(peer), "registered");
        assertEq(capacity, 8, "capacity");
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.RelayerExists.selector, ALICE));
        vm.prank(ALICE);
        registry.registerRelayer(peer, 8);
        vm.prank(ALICE);
        registry.updateRelayer(peer, 16);
        (, capacity,) = registry.relayerOf(ALICE);
        assertEq(capacity, 16, "updated");
        vm.prank(ALICE);
        registry.unregisterRelayer();
        (,, registered) = registry.relayerOf(ALICE);
        assertTrue(!registered, "unregistered");
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.UnknownRelayer.selector, ALICE));
        vm.prank(ALICE);
        registry.unregisterRelayer();
        vm.expectRevert(abi.encodeWithSelector(RoomRegistry.InvalidRelayer.selector, 2, 0));
        vm.prank(BOB);
        registry.registerRelayer(hex"0102", 0);
    }

    /// Random caller role, target role and requested role: setRole succeeds exactly when the
    /// rules allow it, and then the role is what was asked.
    function testFuzz_setRole_follows_the_rules(uint8 callerSeed, uint8 targetSeed, uint8 requestedSeed) public {
        RoomRegistry.Role callerRole = RoomRegistry.Role(uint8(bound(callerSeed, 0, 4)));
        RoomRegistry.Role targetRole = RoomRegistry.Role(uint8(bound(targetSeed, 0, 4)));
        RoomRegistry.Role requested = RoomRegistry.Role(uint8(bound(requestedSeed, 0, 5)));
        address caller = address(0xCA11);
        address target = address(0x7A26);
        vm.prank(OWNER);
        registry.setRole(room, caller, callerRole);
        vm.prank(OWNER);
        registry.setRole(room, target, targetRole);

        bool allowed = callerRole >= RoomRegistry.Role.Admin && requested != RoomRegistry.Role.Owner
            && requested <= callerRole && targetRole < callerRole;
        if (!allowed) {
            // Which error is the contract's business; that it refuses is the rule.
            vm.prank(caller);
            try registry.setRole(room, target, requested) {
                revert AssertionFailed("forbidden change succeeded", uint8(callerRole), uint8(requested));
            } catch {}
        } else {
            vm.prank(caller);
            registry.setRole(room, target, requested);
            assertEq(role(target), uint256(requested), "role set");
        }
    }

    /// The owner can never be demoted or banned by anyone but through transferOwnership.
    function testFuzz_owner_is_untouchable(uint8 requestedSeed, bool viaBan) public {
        RoomRegistry.Role requested = RoomRegistry.Role(uint8(bound(requestedSeed, 0, 5)));
        address[2] memory callers = [OWNER, ADMIN];
        for (uint256 i = 0; i < callers.length; i++) {
            vm.prank(callers[i]);
            if (viaBan) {
                try registry.ban(room, OWNER) {
                    revert AssertionFailed("owner banned", i, 0);
                } catch {}
            } else {
                try registry.setRole(room, OWNER, requested) {
                    revert AssertionFailed("owner role changed", i, uint8(requested));
                } catch {}
            }
        }
        assertEq(role(OWNER), uint256(RoomRegistry.Role.Owner), "still owner");
    }

    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        return min + (x % (max - min + 1));
    }
}
