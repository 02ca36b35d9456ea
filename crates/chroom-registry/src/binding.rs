//! Identity bindings: proof that a node (PeerId) acts for an Ethereum account until a time.
//!
//! The account signs, with EIP-191 `personal_sign`, a short human-readable text naming the
//! PeerId and the expiry, so a browser wallet shows the user exactly what they authorise. A
//! verifier recomputes the text for the PeerId it is talking to (authenticated by libp2p's
//! Noise handshake), recovers the signer and checks it is the claimed account: a binding
//! captured from one connection is worthless on another PeerId.

use alloy::primitives::{Address, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use chroom_types::{Account, IdentityBinding};

/// Why a binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The expiry has passed.
    #[error("identity binding of {account} expired at {expired_at_unix}")]
    Expired {
        /// The claimed account.
        account: Account,
        /// When it expired.
        expired_at_unix: u64,
    },
    /// The signature does not parse or recover.
    #[error("identity binding signature is malformed")]
    MalformedSignature,
    /// The signature is valid but by another account, or over another PeerId or expiry.
    #[error("identity binding for {claimed} was signed by {signer}")]
    WrongSigner {
        /// The account the binding names.
        claimed: Account,
        /// The account that actually signed this text.
        signer: Account,
    },
    /// Signing failed.
    #[error("signing the identity binding failed: {0}")]
    Signing(String),
}

/// The text an account signs to bind `peer_id` (base58) until `expires_at_unix`.
pub fn binding_text(peer_id: &str, expires_at_unix: u64) -> String {
    format!("Chroom identity binding\nnode: {peer_id}\nvalid until (unix): {expires_at_unix}")
}

/// Signs a binding of `peer_id` with `signer`'s key.
pub fn sign(
    signer: &PrivateKeySigner,
    peer_id: &str,
    expires_at_unix: u64,
) -> Result<IdentityBinding, BindingError> {
    let text = binding_text(peer_id, expires_at_unix);
    let signature = signer
        .sign_message_sync(text.as_bytes())
        .map_err(|e| BindingError::Signing(e.to_string()))?;
    Ok(IdentityBinding {
        account: Account::from_bytes(signer.address().into_array()),
        expires_at_unix,
        signature: signature.as_bytes(),
    })
}

/// Checks `binding` for the node `peer_id` at `now_unix`; returns the account it proves.
pub fn verify(
    binding: &IdentityBinding,
    peer_id: &str,
    now_unix: u64,
) -> Result<Account, BindingError> {
    if now_unix >= binding.expires_at_unix {
        return Err(BindingError::Expired {
            account: binding.account,
            expired_at_unix: binding.expires_at_unix,
        });
    }
    let signature = Signature::from_raw_array(&binding.signature)
        .map_err(|_| BindingError::MalformedSignature)?;
    let text = binding_text(peer_id, binding.expires_at_unix);
    let signer: Address = signature
        .recover_address_from_msg(text.as_bytes())
        .map_err(|_| BindingError::MalformedSignature)?;
    let signer = Account::from_bytes(signer.into_array());
    if signer != binding.account {
        return Err(BindingError::WrongSigner {
            claimed: binding.account,
            signer,
        });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "12D3KooWGxj5nmGxixW1ZY825pesnnRBv3RWaouVD5s9X4aVz6L4";
    const OTHER_PEER: &str = "12D3KooWFPvNhX8CgTczDCs5xQPR1sGiCRb6pvjbTV4fNVj9Pi8h";

    #[test]
    fn a_signed_binding_verifies_for_its_peer_until_it_expires() {
        let signer = PrivateKeySigner::random();
        let binding = sign(&signer, PEER, 1_000).unwrap();
        let account = verify(&binding, PEER, 999).unwrap();
        assert_eq!(account.as_bytes(), signer.address().as_slice());
        assert!(matches!(
            verify(&binding, PEER, 1_000),
            Err(BindingError::Expired { .. })
        ));
    }

    #[test]
    fn a_binding_is_useless_for_another_peer_account_or_expiry() {
        let signer = PrivateKeySigner::random();
        let binding = sign(&signer, PEER, 1_000).unwrap();
        assert!(matches!(
            verify(&binding, OTHER_PEER, 0),
            Err(BindingError::WrongSigner { .. })
        ));
        let mut longer = binding.clone();
        longer.expires_at_unix = 2_000;
        assert!(matches!(
            verify(&longer, PEER, 0),
            Err(BindingError::WrongSigner { .. })
        ));
        let mut stolen = binding.clone();
        stolen.account = Account::from_bytes([7; 20]);
        assert!(matches!(
            verify(&stolen, PEER, 0),
            Err(BindingError::WrongSigner { .. })
        ));
    }

    #[test]
    fn a_garbage_signature_is_an_error() {
        let zeroes = IdentityBinding {
            account: Account::from_bytes([1; 20]),
            expires_at_unix: 10,
            signature: [0; 65],
        };
        assert!(verify(&zeroes, PEER, 0).is_err());
    }
}
