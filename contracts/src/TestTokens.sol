// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Minimal ERC-20 for tests and the devnet
/// @notice Anyone may mint: this token gates test rooms, it has no value.
contract TestERC20 {
    /// @notice Token balances.
    mapping(address => uint256) public balanceOf;

    /// @notice ERC-20 transfer event.
    event Transfer(address indexed from, address indexed to, uint256 value);

    /// @notice The balance is lower than the amount.
    error InsufficientBalance(address account, uint256 balance, uint256 needed);

    /// @notice Creates `amount` tokens for `to`.
    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @notice Moves `amount` of the caller's tokens to `to`.
    function transfer(address to, uint256 amount) external returns (bool) {
        uint256 balance = balanceOf[msg.sender];
        if (balance < amount) revert InsufficientBalance(msg.sender, balance, amount);
        balanceOf[msg.sender] = balance - amount;
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
        return true;
    }
}

/// @title Minimal ERC-721 for tests and the devnet
/// @notice Anyone may mint; only the holder may transfer.
contract TestERC721 {
    /// @notice Tokens held per account.
    mapping(address => uint256) public balanceOf;
    /// @notice The holder of each token.
    mapping(uint256 => address) public ownerOf;

    /// @notice ERC-721 transfer event.
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    /// @notice The token exists already.
    error TokenExists(uint256 tokenId);
    /// @notice The caller does not hold the token.
    error NotHolder(uint256 tokenId, address caller);

    /// @notice Creates token `tokenId` for `to`.
    function mint(address to, uint256 tokenId) external {
        if (ownerOf[tokenId] != address(0)) revert TokenExists(tokenId);
        ownerOf[tokenId] = to;
        balanceOf[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    /// @notice Moves token `tokenId` from `from` (the caller) to `to`.
    function transferFrom(address from, address to, uint256 tokenId) external {
        if (ownerOf[tokenId] != msg.sender || from != msg.sender) revert NotHolder(tokenId, msg.sender);
        ownerOf[tokenId] = to;
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
        emit Transfer(from, to, tokenId);
    }
}
