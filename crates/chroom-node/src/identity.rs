//! Keys: the node key (an ed25519 secret in `<data_dir>/node.key`, created on first start with
//! mode 0600 and reused after, so a node keeps its PeerId across restarts) and the account key
//! (secp256k1, from a file or an environment variable, never logged), and the binding that
//! proves which account the node acts for ([`OwnBinding`]).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use chroom_net::{Keypair, PeerId};
use chroom_types::{Account, IdentityBinding};

use crate::clock::unix_now;
use crate::config::AccountKeySource;

/// The account this node acts for and its current binding, re-signed when half its life is
/// gone so peers never see an expired one.
#[derive(Debug)]
pub struct OwnBinding {
    /// The account's key, when the node holds it (from its config); `None` when a wallet
    /// signed the binding, which then lasts until it expires.
    signer: Option<(PrivateKeySigner, Duration)>,
    peer_id: String,
    binding: IdentityBinding,
}

impl OwnBinding {
    /// A binding the node signs (and renews) itself with the account's key.
    pub fn signed_here(
        signer: PrivateKeySigner,
        ttl: Duration,
        peer_id: &PeerId,
    ) -> anyhow::Result<Self> {
        let peer_id = peer_id.to_base58();
        let binding = chroom_registry::sign(&signer, &peer_id, unix_now() + ttl.as_secs())?;
        Ok(Self {
            signer: Some((signer, ttl)),
            peer_id,
            binding,
        })
    }

    /// A binding signed by the user's wallet (verified by the caller).
    pub fn signed_elsewhere(binding: IdentityBinding) -> Self {
        Self {
            signer: None,
            peer_id: String::new(),
            binding,
        }
    }

    /// The account it binds.
    pub fn account(&self) -> Account {
        self.binding.account
    }

    /// The binding to show peers now, renewed first if half its life is gone.
    pub fn current(&mut self) -> IdentityBinding {
        let now = unix_now();
        if let Some((signer, ttl)) = &self.signer
            && self.binding.expires_at_unix.saturating_sub(now) < ttl.as_secs() / 2
        {
            match chroom_registry::sign(signer, &self.peer_id, now + ttl.as_secs()) {
                Ok(binding) => self.binding = binding,
                Err(e) => tracing::error!(error = %e, "cannot renew identity binding"),
            }
        }
        self.binding.clone()
    }
}

/// File name of the node key inside the data dir.
pub const NODE_KEY_FILE: &str = "node.key";

/// Loads the node key from `data_dir`, creating it (and the directory) if absent.
pub fn load_or_create_node_key(data_dir: &Path) -> anyhow::Result<Keypair> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let path = data_dir.join(NODE_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                    "node key is readable by other users; chmod 600 it");
            }
            let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!(
                    "{} holds {} bytes, an ed25519 secret key has 32",
                    path.display(),
                    bytes.len()
                )
            })?;
            Keypair::ed25519_from_bytes(secret)
                .with_context(|| format!("{} is not an ed25519 secret key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Loads the account key. Error messages name the source, never the key.
pub fn load_account_key(source: &AccountKeySource) -> anyhow::Result<PrivateKeySigner> {
    let (hex, origin) = match source {
        AccountKeySource::File(path) => {
            let mode = std::fs::metadata(path)
                .with_context(|| format!("reading account key {}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "account key is readable by other users; chmod 600 it");
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading account key {}", path.display()))?;
            (text, format!("account key file {}", path.display()))
        }
        AccountKeySource::Env(var) => {
            let text = std::env::var(var)
                .with_context(|| format!("environment variable {var} (account key) is not set"))?;
            (text, format!("account key in ${var}"))
        }
    };
    let trimmed = hex.trim();
    let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    // Parse by hand so no library error can echo the secret back into a log.
    let bytes: [u8; 32] = ::hex::decode(digits)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("{origin} is not 32 bytes of hex"))?;
    PrivateKeySigner::from_bytes(&bytes.into())
        .map_err(|_| anyhow::anyhow!("{origin} is not a valid secp256k1 private key"))
}

/// Creates `path` (which must not exist) readable by its owner only, and syncs it.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn create(path: &Path) -> anyhow::Result<Keypair> {
    let keypair = Keypair::generate_ed25519();
    let ed = keypair
        .clone()
        .try_into_ed25519()
        .context("a freshly generated ed25519 key converts to ed25519")?;
    let secret = ed.secret();
    // create_new: two nodes started on one data dir must not overwrite each other's key.
    write_private_file(path, secret.as_ref())?;
    if std::fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
        bail!("{} was created readable by others", path.display());
    }
    tracing::info!(path = %path.display(), "created node key");
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_node_key(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_node_key(dir.path()).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
    }

    #[test]
    fn account_keys_load_from_file_and_errors_never_show_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.key");
        // anvil's first dev account.
        let secret = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        let signer = load_account_key(&AccountKeySource::File(path.clone())).unwrap();
        assert_eq!(
            signer.address().to_string().to_lowercase(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        std::fs::write(&path, "0xnot-a-key-deadbeef").unwrap();
        let err = load_account_key(&AccountKeySource::File(path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not 32 bytes of hex"), "{err}");
        assert!(!err.contains("deadbeef"), "{err}");
        let err = load_account_key(&AccountKeySource::Env("CHROOM_TEST_UNSET_VAR".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CHROOM_TEST_UNSET_VAR"), "{err}");
    }

    #[test]
    fn a_corrupt_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_KEY_FILE), b"short").unwrap();
        let err = load_or_create_node_key(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds 5 bytes"), "{err}");
    }
}
