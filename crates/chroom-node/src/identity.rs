//! Keys: the node key (an ed25519 secret in `<data_dir>/node.key`, created on first start with
//! mode 0600 and reused after, so a node keeps its PeerId across restarts) and the account key
//! (secp256k1, from a file or an environment variable, never logged), and the binding that
//! proves which account the node acts for ([`OwnBinding`]). A key file that group or others
//! can read stops the start unless `[node] allow_open_key_files` allows it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use chroom_net::{Keypair, PeerId};
use chroom_types::{Account, IdentityBinding};

use crate::clock::unix_now;
use crate::config::{AccountKeySource, OpenKeyFiles};

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

/// Loads the node key from `data_dir`, creating it (and the directory) if absent. A key file
/// others can read is refused unless `open` allows it.
pub fn load_or_create_node_key(data_dir: &Path, open: OpenKeyFiles) -> anyhow::Result<Keypair> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let path = data_dir.join(NODE_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            check_private(&path, "node key", open)?;
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path, open),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Loads the account key; a key file others can read is refused unless `open` allows it.
/// Error messages name the source, never the key.
pub fn load_account_key(
    source: &AccountKeySource,
    open: OpenKeyFiles,
) -> anyhow::Result<PrivateKeySigner> {
    let (hex, origin) = match source {
        AccountKeySource::File(path) => {
            check_private(path, "account key", open)?;
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

/// Refuses `path` if group or others can read it (anyone on the machine could act for the
/// node or its account), unless `open` allows it.
fn check_private(path: &Path, what: &str, open: OpenKeyFiles) -> anyhow::Result<()> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {what} {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match open {
        OpenKeyFiles::Allow => {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                "{what} is readable by other users (allowed by node.allow_open_key_files)");
            Ok(())
        }
        OpenKeyFiles::Refuse => bail!(
            "{what} {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`, \
             or, on a filesystem without Unix permissions, set [node] allow_open_key_files = true",
            path = path.display()
        ),
    }
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

fn create(path: &Path, open: OpenKeyFiles) -> anyhow::Result<Keypair> {
    let keypair = Keypair::generate_ed25519();
    let ed = keypair
        .clone()
        .try_into_ed25519()
        .context("a freshly generated ed25519 key converts to ed25519")?;
    let secret = ed.secret();
    // create_new: two nodes started on one data dir must not overwrite each other's key.
    write_private_file(path, secret.as_ref())?;
    // Created 0600, yet a filesystem without Unix permissions shows it open.
    check_private(path, "node key", open)?;
    tracing::info!(path = %path.display(), "created node key");
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_node_key(dir.path(), OpenKeyFiles::Refuse).unwrap();
        let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_node_key(dir.path(), OpenKeyFiles::Refuse).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
    }

    #[test]
    fn account_keys_load_from_file_and_errors_never_show_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.key");
        // anvil's first dev account.
        let secret = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        write_private_file(&path, format!("{secret}\n").as_bytes()).unwrap();
        let signer =
            load_account_key(&AccountKeySource::File(path.clone()), OpenKeyFiles::Refuse).unwrap();
        assert_eq!(
            signer.address().to_string().to_lowercase(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        std::fs::write(&path, "0xnot-a-key-deadbeef").unwrap();
        let err = load_account_key(&AccountKeySource::File(path), OpenKeyFiles::Refuse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not 32 bytes of hex"), "{err}");
        assert!(!err.contains("deadbeef"), "{err}");
        let err = load_account_key(
            &AccountKeySource::Env("CHROOM_TEST_UNSET_VAR".into()),
            OpenKeyFiles::Refuse,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CHROOM_TEST_UNSET_VAR"), "{err}");
    }

    #[test]
    fn a_corrupt_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write_private_file(&dir.path().join(NODE_KEY_FILE), b"short").unwrap();
        let err = load_or_create_node_key(dir.path(), OpenKeyFiles::Refuse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds 5 bytes"), "{err}");
    }

    fn make_readable_by_all(path: &Path) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    #[test]
    fn a_node_key_others_can_read_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let created = load_or_create_node_key(dir.path(), OpenKeyFiles::Refuse).unwrap();
        let path = dir.path().join(NODE_KEY_FILE);
        make_readable_by_all(&path);
        let err = load_or_create_node_key(dir.path(), OpenKeyFiles::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(err.contains("allow_open_key_files"), "{err}");
        let allowed = load_or_create_node_key(dir.path(), OpenKeyFiles::Allow).unwrap();
        assert_eq!(allowed.public().to_peer_id(), created.public().to_peer_id());
    }

    #[test]
    fn an_account_key_file_others_can_read_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.key");
        // anvil's first dev account.
        let secret = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        std::fs::write(&path, secret).unwrap();
        make_readable_by_all(&path);
        let source = AccountKeySource::File(path.clone());
        let err = load_account_key(&source, OpenKeyFiles::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(err.contains("allow_open_key_files"), "{err}");
        assert!(!err.contains(&secret[2..]), "{err}");
        let signer = load_account_key(&source, OpenKeyFiles::Allow).unwrap();
        assert_eq!(
            signer.address().to_string().to_lowercase(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
    }
}
