//! The node's durable state in one redb file: identity facts and the peer book.
//!
//! redb commits are durable when `commit()` returns, so a node that crashes right after learning
//! a peer still knows it on restart. This crate owns the schema (table names, value layout,
//! schema version) and nothing else: it does not decide which peers to keep or when to write.
//! Later issues add the registry cache with its chain cursor and file chunks here.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Bumped when a table's layout changes incompatibly.
const SCHEMA_VERSION: u64 = 1;

/// Facts about this node: `schema_version`, `peer_id`, `first_start_unix`, `starts`.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Peer book: PeerId (base58 text) -> (last seen, unix seconds; newline-separated multiaddrs).
const PEERS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("peers");

/// Most addresses remembered per peer; a peer advertising more is truncated, not trusted.
pub const MAX_ADDRS_PER_PEER: usize = 16;

/// The node's store. Cheap to share behind an `Arc`: redb serialises writers internally.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// What the store knew about this node when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRecord {
    /// When the store was first opened by this node, unix seconds.
    pub first_start_unix: u64,
    /// How many times the node has started with this store, this start included.
    pub starts: u64,
    /// The PeerId recorded by an earlier start, if it differs from the current one.
    pub previous_peer_id: Option<String>,
}

/// A peer from the peer book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPeer {
    /// Its PeerId, as text.
    pub peer_id: String,
    /// Multiaddrs it was reachable at, as text.
    pub addrs: Vec<String>,
    /// When it was last seen, unix seconds.
    pub last_seen_unix: u64,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("opening store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },
    /// The file was written by an incompatible version of chroom.
    #[error("store {path} has schema version {found}, this chroom understands {SCHEMA_VERSION}")]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// A stored value is not in the expected layout.
    #[error("store {path} is corrupt: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// A read or write failed.
    #[error("store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::Error,
    },
}

impl Store {
    /// Opens (or creates) the store at `path` and records this start for `peer_id`.
    pub fn open(
        path: impl AsRef<Path>,
        peer_id: &str,
        now_unix: u64,
    ) -> Result<(Self, StartRecord), StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let store = Self { db, path };
        let record = store.record_start(peer_id, now_unix)?;
        Ok((store, record))
    }

    /// Adds or refreshes a peer in the peer book.
    pub fn remember_peer(
        &self,
        peer_id: &str,
        addrs: &[String],
        seen_unix: u64,
    ) -> Result<(), StoreError> {
        let joined = addrs
            .iter()
            .take(MAX_ADDRS_PER_PEER)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        self.write(|txn| {
            let mut peers = txn.open_table(PEERS)?;
            peers.insert(peer_id, (seen_unix, joined.as_str()))?;
            Ok(())
        })
    }

    /// Every peer in the peer book, most recently seen first.
    pub fn known_peers(&self) -> Result<Vec<KnownPeer>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let peers = txn.open_table(PEERS).map_err(|e| io(e.into()))?;
        let mut out = Vec::new();
        for entry in peers.iter().map_err(|e| io(e.into()))? {
            let (key, value) = entry.map_err(|e| io(e.into()))?;
            let (last_seen_unix, addrs) = value.value();
            out.push(KnownPeer {
                peer_id: key.value().to_owned(),
                addrs: addrs
                    .split('\n')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
                last_seen_unix,
            });
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.last_seen_unix));
        Ok(out)
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record_start(&self, peer_id: &str, now_unix: u64) -> Result<StartRecord, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_write().map_err(|e| io(e.into()))?;
        let record = {
            let mut meta = txn.open_table(META).map_err(|e| io(e.into()))?;
            let read_u64 = |meta: &redb::Table<&str, &[u8]>, key: &str| {
                meta.get(key)
                    .map(|v| v.and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes)))
                    .map_err(|e| io(e.into()))
            };
            if let Some(found) = read_u64(&meta, "schema_version")?
                && found != SCHEMA_VERSION
            {
                // Dropping the transaction aborts it: nothing of this start is written.
                return Err(StoreError::SchemaVersion {
                    path: self.path.clone(),
                    found,
                });
            }
            let first_start_unix = read_u64(&meta, "first_start_unix")?.unwrap_or(now_unix);
            let starts = read_u64(&meta, "starts")?.unwrap_or(0) + 1;
            let previous_peer_id = meta
                .get("peer_id")
                .map_err(|e| io(e.into()))?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned())
                .filter(|previous| previous != peer_id);
            let writes: [(&str, &[u8]); 4] = [
                ("schema_version", &SCHEMA_VERSION.to_le_bytes()),
                ("first_start_unix", &first_start_unix.to_le_bytes()),
                ("starts", &starts.to_le_bytes()),
                ("peer_id", peer_id.as_bytes()),
            ];
            for (key, value) in writes {
                meta.insert(key, value).map_err(|e| io(e.into()))?;
            }
            StartRecord {
                first_start_unix,
                starts,
                previous_peer_id,
            }
        };
        // Create the peer book on first start so readers never see a missing table.
        txn.open_table(PEERS).map_err(|e| io(e.into()))?;
        txn.commit().map_err(|e| io(e.into()))?;
        Ok(record)
    }

    /// Runs `f` in a write transaction and commits it; an error from `f` aborts it.
    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.io_error(e.into()))?;
        f(&txn).map_err(|e| self.io_error(e))?;
        txn.commit().map_err(|e| self.io_error(e.into()))
    }

    fn io_error(&self, source: redb::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_keeps_start_count_and_peers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chroom.redb");
        {
            let (store, record) = Store::open(&path, "peer-a", 100).unwrap();
            assert_eq!(record.starts, 1);
            assert_eq!(record.previous_peer_id, None);
            store
                .remember_peer("peer-b", &["/ip4/127.0.0.1/tcp/1".into()], 150)
                .unwrap();
        }
        let (store, record) = Store::open(&path, "peer-a", 200).unwrap();
        assert_eq!(
            record,
            StartRecord {
                first_start_unix: 100,
                starts: 2,
                previous_peer_id: None
            }
        );
        assert_eq!(
            store.known_peers().unwrap(),
            vec![KnownPeer {
                peer_id: "peer-b".into(),
                addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                last_seen_unix: 150,
            }]
        );
    }

    #[test]
    fn a_changed_peer_id_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chroom.redb");
        drop(Store::open(&path, "peer-a", 1).unwrap());
        let (_, record) = Store::open(&path, "peer-z", 2).unwrap();
        assert_eq!(record.previous_peer_id.as_deref(), Some("peer-a"));
    }

    #[test]
    fn addresses_per_peer_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path().join("s.redb"), "me", 1).unwrap();
        let many: Vec<String> = (0..100)
            .map(|i| format!("/ip4/127.0.0.1/tcp/{i}"))
            .collect();
        store.remember_peer("p", &many, 1).unwrap();
        assert_eq!(
            store.known_peers().unwrap()[0].addrs.len(),
            MAX_ADDRS_PER_PEER
        );
    }
}
