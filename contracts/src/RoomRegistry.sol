// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice The minimal view shared by ERC-20 and ERC-721 that token-gated rooms need.
interface IBalanceOf {
    function balanceOf(address owner) external view returns (uint256);
}

/// @title Chroom room registry
/// @notice The source of truth for Chroom rooms, who may join them with which role, and the
/// directory of relayers. Every change emits an event so nodes can follow it from their cursor.
/// @dev A room's id is keccak256 of its name, so nodes derive it without asking the chain.
/// Roles are ordered; nobody grants a role above their own, and the owner is only changed by
/// transferOwnership. A ban beats every role and join policy.
contract RoomRegistry {
    /// @notice What a room is for.
    enum Kind {
        Conference,
        AudioSpace,
        Broadcast
    }

    /// @notice Who may join without an explicit role.
    enum JoinPolicy {
        Open,
        Allowlist,
        TokenGated
    }

    /// @notice Who hosts a room while no member with a host role (or above) is present.
    enum HostFallback {
        None,
        FirstJoiner,
        HighestRole
    }

    /// @notice How members come to present: whoever asks first, or when a host passes it.
    enum Presenting {
        Free,
        Approval
    }

    /// @notice How nodes assign a room's roles among the members present (the orchestrator).
    struct Orchestration {
        HostFallback hostFallback;
        Presenting presenting;
        /// Listeners may step on the stage without a host's invitation.
        bool openStage;
    }

    /// @notice Roles, lowest first. `None` means no access.
    enum Role {
        None,
        Listener,
        Speaker,
        Host,
        Admin,
        Owner
    }

    struct Room {
        address owner;
        Kind kind;
        JoinPolicy policy;
        bool exists;
        address token;
        uint256 minBalance;
        string metadataUri;
    }

    struct Relayer {
        bytes peerId;
        uint32 capacity;
        bool registered;
    }

    /// @notice Longest room name, in bytes.
    uint256 public constant MAX_NAME_BYTES = 128;
    /// @notice Longest relayer PeerId, in bytes (an ed25519 PeerId is 38).
    uint256 public constant MAX_PEER_ID_BYTES = 64;

    mapping(bytes32 => Room) private rooms;
    mapping(bytes32 => mapping(address => Role)) private granted;
    mapping(bytes32 => mapping(address => bool)) private banned;
    mapping(address => Relayer) private relayers;
    mapping(bytes32 => Orchestration) private orchestrations;

    /// @notice A room was created by `owner`.
    event RoomCreated(bytes32 indexed room, address indexed owner, Kind kind, JoinPolicy policy, string name);
    /// @notice A room's join policy or metadata changed.
    event RoomUpdated(bytes32 indexed room, JoinPolicy policy, address token, uint256 minBalance, string metadataUri);
    /// @notice The room's orchestration policy changed.
    event OrchestrationChanged(bytes32 indexed room, HostFallback hostFallback, Presenting presenting, bool openStage);
    /// @notice `account`'s granted role changed from `oldRole` to `newRole`, by `by`.
    event RoleChanged(bytes32 indexed room, address indexed account, Role oldRole, Role newRole, address by);
    /// @notice `account` was banned from the room by `by`.
    event MemberBanned(bytes32 indexed room, address indexed account, address by);
    /// @notice `account`'s ban was lifted by `by`.
    event MemberUnbanned(bytes32 indexed room, address indexed account, address by);
    /// @notice The room's owner changed.
    event OwnershipTransferred(bytes32 indexed room, address indexed previousOwner, address indexed newOwner);
    /// @notice `account` volunteers as a relayer for node `peerId`, feeding up to `capacity` children.
    event RelayerRegistered(address indexed account, bytes peerId, uint32 capacity);
    /// @notice A relayer changed its node or capacity.
    event RelayerUpdated(address indexed account, bytes peerId, uint32 capacity);
    /// @notice A relayer left the directory.
    event RelayerUnregistered(address indexed account);

    /// @notice The name is empty or longer than MAX_NAME_BYTES.
    error InvalidName(uint256 length);
    /// @notice A room with this name exists already.
    error RoomExists(bytes32 room);
    /// @notice No room has this id.
    error UnknownRoom(bytes32 room);
    /// @notice Token gating needs a token and a positive minimum; other policies take neither.
    error InvalidTokenGate(JoinPolicy policy, address token, uint256 minBalance);
    /// @notice The caller's role does not allow this change.
    error NotAuthorized(bytes32 room, address caller, Role callerRole);
    /// @notice Nobody grants a role above their own.
    error RoleAboveCaller(bytes32 room, Role requested, Role callerRole);
    /// @notice Only roles below the caller's may be changed (the owner may change anyone's but its own).
    error TargetNotBelowCaller(bytes32 room, address target, Role targetRole, Role callerRole);
    /// @notice The owner's role changes only through transferOwnership.
    error CannotModifyOwner(bytes32 room, address owner);
    /// @notice The zero address cannot hold a role.
    error InvalidAccount();
    /// @notice The account is banned from the room.
    error AccountBanned(bytes32 room, address account);
    /// @notice A relayer needs a PeerId of 1..MAX_PEER_ID_BYTES bytes and a capacity above zero.
    error InvalidRelayer(uint256 peerIdLength, uint32 capacity);
    /// @notice The caller is registered as a relayer already.
    error RelayerExists(address account);
    /// @notice The caller is not a registered relayer.
    error UnknownRelayer(address account);

    /// @notice The id of the room called `name`.
    function roomId(string calldata name) public pure returns (bytes32) {
        return keccak256(bytes(name));
    }

    /// @notice Creates a room owned by the caller.
    /// @param name The room's name; its keccak256 is the room id.
    /// @param kind Conference, audio space or broadcast; fixed for the room's life.
    /// @param policy Who may join without an explicit role.
    /// @param token For TokenGated: an ERC-20 or ERC-721 contract; zero otherwise.
    /// @param minBalance For TokenGated: the balance that admits; zero otherwise.
    /// @param metadataUri Where the room's description lives.
    /// @return id The new room's id.
    function createRoom(
        string calldata name,
        Kind kind,
        JoinPolicy policy,
        address token,
        uint256 minBalance,
        string calldata metadataUri
    ) external returns (bytes32 id) {
        uint256 length = bytes(name).length;
        if (length == 0 || length > MAX_NAME_BYTES) revert InvalidName(length);
        _checkGate(policy, token, minBalance);
        id = keccak256(bytes(name));
        if (rooms[id].exists) revert RoomExists(id);
        rooms[id] = Room({
            owner: msg.sender,
            kind: kind,
            policy: policy,
            exists: true,
            token: token,
            minBalance: minBalance,
            metadataUri: metadataUri
        });
        granted[id][msg.sender] = Role.Owner;
        emit RoomCreated(id, msg.sender, kind, policy, name);
        emit RoleChanged(id, msg.sender, Role.None, Role.Owner, msg.sender);
    }

    /// @notice Changes a room's join policy and metadata. Owner or admin only.
    function updateRoom(bytes32 id, JoinPolicy policy, address token, uint256 minBalance, string calldata metadataUri)
        external
    {
        _requireAtLeast(id, Role.Admin);
        _checkGate(policy, token, minBalance);
        Room storage room = rooms[id];
        room.policy = policy;
        room.token = token;
        room.minBalance = minBalance;
        room.metadataUri = metadataUri;
        emit RoomUpdated(id, policy, token, minBalance, metadataUri);
    }

    /// @notice Sets how nodes assign the room's roles among the members present. Owner or
    /// admin only.
    function setOrchestration(bytes32 id, HostFallback hostFallback, Presenting presenting, bool openStage)
        external
    {
        _requireAtLeast(id, Role.Admin);
        orchestrations[id] = Orchestration(hostFallback, presenting, openStage);
        emit OrchestrationChanged(id, hostFallback, presenting, openStage);
    }

    /// @notice Grants `account` the role `role` (None revokes). Owner or admin only; the new
    /// role may not be above the caller's, the account's current role must be below it, and the
    /// owner's role is untouchable here.
    function setRole(bytes32 id, address account, Role role) external {
        Role callerRole = _requireAtLeast(id, Role.Admin);
        if (account == address(0)) revert InvalidAccount();
        if (account == rooms[id].owner) revert CannotModifyOwner(id, account);
        if (role == Role.Owner || role > callerRole) revert RoleAboveCaller(id, role, callerRole);
        Role current = granted[id][account];
        if (callerRole != Role.Owner && current >= callerRole) {
            revert TargetNotBelowCaller(id, account, current, callerRole);
        }
        granted[id][account] = role;
        emit RoleChanged(id, account, current, role, msg.sender);
    }

    /// @notice Bans `account` from the room: it loses access whatever its role or tokens.
    /// Owner or admin only, and only accounts whose role is below the caller's.
    function ban(bytes32 id, address account) external {
        Role callerRole = _requireAtLeast(id, Role.Admin);
        if (account == address(0)) revert InvalidAccount();
        if (account == rooms[id].owner) revert CannotModifyOwner(id, account);
        Role current = granted[id][account];
        if (callerRole != Role.Owner && current >= callerRole) {
            revert TargetNotBelowCaller(id, account, current, callerRole);
        }
        banned[id][account] = true;
        emit MemberBanned(id, account, msg.sender);
    }

    /// @notice Lifts a ban. Owner or admin only.
    function unban(bytes32 id, address account) external {
        _requireAtLeast(id, Role.Admin);
        banned[id][account] = false;
        emit MemberUnbanned(id, account, msg.sender);
    }

    /// @notice Hands the room to `newOwner`; the previous owner stays on as admin.
    function transferOwnership(bytes32 id, address newOwner) external {
        Role callerRole = _requireAtLeast(id, Role.Owner);
        if (newOwner == address(0)) revert InvalidAccount();
        if (banned[id][newOwner]) revert AccountBanned(id, newOwner);
        Room storage room = rooms[id];
        address previous = room.owner;
        if (newOwner == previous) return;
        Role newOwnerOld = granted[id][newOwner];
        room.owner = newOwner;
        granted[id][newOwner] = Role.Owner;
        granted[id][previous] = Role.Admin;
        emit OwnershipTransferred(id, previous, newOwner);
        emit RoleChanged(id, newOwner, newOwnerOld, Role.Owner, msg.sender);
        emit RoleChanged(id, previous, callerRole, Role.Admin, msg.sender);
    }

    /// @notice Everything a node needs to decide about `account` in room `id`, in one call:
    /// whether the room exists, its kind, the account's effective role (after ban and join
    /// policy), whether it is banned, and the room's orchestration. Does not revert for
    /// unknown rooms.
    function access(bytes32 id, address account)
        external
        view
        returns (bool exists, Kind kind, Role role, bool accountBanned, Orchestration memory orchestration)
    {
        Room storage room = rooms[id];
        if (!room.exists) return (false, Kind.Conference, Role.None, false, orchestration);
        return (true, room.kind, _effectiveRole(id, room, account), banned[id][account], orchestrations[id]);
    }

    /// @notice `account`'s effective role: None if banned; else its granted role; else
    /// Listener if the join policy admits it (open room, or enough tokens).
    function roleOf(bytes32 id, address account) external view returns (Role) {
        Room storage room = rooms[id];
        if (!room.exists) revert UnknownRoom(id);
        return _effectiveRole(id, room, account);
    }

    /// @notice Whether `account` may join room `id` at all.
    function canJoin(bytes32 id, address account) external view returns (bool) {
        Room storage room = rooms[id];
        return room.exists && _effectiveRole(id, room, account) >= Role.Listener;
    }

    /// @notice The room's settings.
    function roomInfo(bytes32 id)
        external
        view
        returns (
            address owner,
            Kind kind,
            JoinPolicy policy,
            address token,
            uint256 minBalance,
            string memory metadataUri
        )
    {
        Room storage room = rooms[id];
        if (!room.exists) revert UnknownRoom(id);
        return (room.owner, room.kind, room.policy, room.token, room.minBalance, room.metadataUri);
    }

    /// @notice Whether `account` is banned from room `id`.
    function isBanned(bytes32 id, address account) external view returns (bool) {
        return banned[id][account];
    }

    /// @notice Registers the caller as a relayer for its node `peerId` with room for `capacity`
    /// children.
    function registerRelayer(bytes calldata peerId, uint32 capacity) external {
        _checkRelayer(peerId, capacity);
        if (relayers[msg.sender].registered) revert RelayerExists(msg.sender);
        relayers[msg.sender] = Relayer({peerId: peerId, capacity: capacity, registered: true});
        emit RelayerRegistered(msg.sender, peerId, capacity);
    }

    /// @notice Changes the caller's relayer node or capacity.
    function updateRelayer(bytes calldata peerId, uint32 capacity) external {
        _checkRelayer(peerId, capacity);
        if (!relayers[msg.sender].registered) revert UnknownRelayer(msg.sender);
        relayers[msg.sender] = Relayer({peerId: peerId, capacity: capacity, registered: true});
        emit RelayerUpdated(msg.sender, peerId, capacity);
    }

    /// @notice Removes the caller from the relayer directory.
    function unregisterRelayer() external {
        if (!relayers[msg.sender].registered) revert UnknownRelayer(msg.sender);
        delete relayers[msg.sender];
        emit RelayerUnregistered(msg.sender);
    }

    /// @notice The relayer entry of `account`.
    function relayerOf(address account) external view returns (bytes memory peerId, uint32 capacity, bool registered) {
        Relayer storage relayer = relayers[account];
        return (relayer.peerId, relayer.capacity, relayer.registered);
    }

    function _effectiveRole(bytes32 id, Room storage room, address account) private view returns (Role) {
        if (banned[id][account]) return Role.None;
        Role role = granted[id][account];
        if (role != Role.None) return role;
        if (room.policy == JoinPolicy.Open) return Role.Listener;
        if (room.policy == JoinPolicy.TokenGated && _holds(room.token, account, room.minBalance)) {
            return Role.Listener;
        }
        return Role.None;
    }

    /// @dev A token that reverts, has no code or returns garbage admits nobody rather than
    /// breaking reads. A low-level call, because a high-level one to an address without code
    /// reverts in the caller, past any try/catch.
    function _holds(address token, address account, uint256 minBalance) private view returns (bool) {
        (bool ok, bytes memory data) = token.staticcall(abi.encodeCall(IBalanceOf.balanceOf, (account)));
        if (!ok || data.length < 32) return false;
        return abi.decode(data, (uint256)) >= minBalance;
    }

    function _requireAtLeast(bytes32 id, Role needed) private view returns (Role callerRole) {
        if (!rooms[id].exists) revert UnknownRoom(id);
        callerRole = banned[id][msg.sender] ? Role.None : granted[id][msg.sender];
        if (callerRole < needed) revert NotAuthorized(id, msg.sender, callerRole);
    }

    function _checkGate(JoinPolicy policy, address token, uint256 minBalance) private pure {
        bool gated = policy == JoinPolicy.TokenGated;
        if (gated != (token != address(0)) || gated != (minBalance > 0)) {
            revert InvalidTokenGate(policy, token, minBalance);
        }
    }

    function _checkRelayer(bytes calldata peerId, uint32 capacity) private pure {
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_BYTES || capacity == 0) {
            revert InvalidRelayer(peerId.length, capacity);
        }
    }
}
