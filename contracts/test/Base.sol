// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @dev The few Foundry cheatcodes these tests use (forge-std cannot be fetched offline).
interface Vm {
    function prank(address sender) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(bool topic1, bool topic2, bool topic3, bool data) external;
    function assume(bool condition) external pure;
}

/// @dev A minimal test base: the cheatcode handle and assertions that revert with context.
abstract contract Base {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    error AssertionFailed(string what, uint256 left, uint256 right);

    function assertEq(uint256 left, uint256 right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, left, right);
    }

    function assertTrue(bool condition, string memory what) internal pure {
        if (!condition) revert AssertionFailed(what, 0, 1);
    }
}
