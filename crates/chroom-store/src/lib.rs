//! The node's durable state in one redb file: identity facts, the peer book, the registry cache
//! with its chain cursor, room chat, and files shared in rooms with the chunks held.
//!
//! redb commits are durable when `commit()` returns, so a node that crashes right after learning
//! a peer still knows it on restart. This crate owns the schema (table names, value layout,
//! schema version) and nothing else: it does not decide which peers to keep or when to write.
//! Registry facts and the block they were read at are written in one transaction with the chain
//! cursor, so after a crash the node resumes from a cursor that matches its cache.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use chroom_types::{
    Account, HostFallback, Membership, Presenting, Role, RoomId, RoomKind, RoomPolicy,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

mod docs;
mod files;

pub use files::{FileSpace, StoredFile};

/// Bumped when a table's layout changes incompatibly.
const SCHEMA_VERSION: u64 = 1;

/// Facts about this node: `schema_version`, `peer_id`, `first_start_unix`, `starts`.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Peer book: PeerId (base58 text) -> (last seen, unix seconds; newline-separated multiaddrs).
const PEERS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("peers");

/// Registry cache: room id (32) ‖ account (20) -> encoded [`AccessRecord`].
const ACCESS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registry_access");
/// Room chat: room id (32) ‖ sent at, unix ms (8, big-endian) ‖ author PeerId bytes -> (author
/// PeerId text, account (20 bytes, or none), text). Keys sort by room, then time.
const CHAT: TableDefinition<&[u8], (&str, &[u8], &str)> = TableDefinition::new("chat");
/// Chat lines kept per room; older ones are forgotten as new ones arrive.
pub const MAX_CHAT_PER_ROOM: usize = 1000;

/// Key in `META` of the last chain block whose registry events are in `ACCESS`.
const REGISTRY_CURSOR: &str = "registry_cursor";

/// Most addresses remembered per peer; a peer advertising more is truncated, not trusted.
pub const MAX_ADDRS_PER_PEER: usize = 16;

/// Most peers in the peer book: the least recently seen is dropped for a new one, so peers
/// that come and go (or one node cycling through identities) cannot grow it without end.
pub const MAX_KNOWN_PEERS: usize = 1024;

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

/// A line of room chat as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChat {
    /// When its author sent it, unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// The author's PeerId, as text.
    pub author: String,
    /// The account the author proved, if any.
    pub account: Option<Account>,
    /// The text.
    pub text: String,
}

/// What the registry said about an account in a room, and at which block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRecord {
    /// The room's kind, or `None` if the registry has no such room.
    pub room_kind: Option<RoomKind>,
    /// The account's standing.
    pub membership: Membership,
    /// The account is in the registry's relayer directory.
    pub relayer: bool,
    /// The room's orchestration policy.
    pub room_policy: RoomPolicy,
    /// The block the facts were read at.
    pub block: u64,
}

impl AccessRecord {
    fn encode(&self) -> [u8; 11] {
        let kind = match self.room_kind {
            None => 0,
            Some(RoomKind::Conference) => 1,
            Some(RoomKind::AudioSpace) => 2,
            Some(RoomKind::Broadcast) => 3,
        };
        let membership = match self.membership {
            Membership::Banned => 0,
            Membership::NotMember => 1,
            Membership::Member(Role::Listener) => 2,
            Membership::Member(Role::Speaker) => 3,
            Membership::Member(Role::Host) => 4,
            Membership::Member(Role::Admin) => 5,
            Membership::Member(Role::Owner) => 6,
        };
        let mut out = [0u8; 11];
        // The top bit of the kind byte: records written before relayers were tracked read as
        // "not a relayer".
        out[0] = kind | if self.relayer { RELAYER_BIT } else { 0 };
        out[1] = membership;
        out[2..10].copy_from_slice(&self.block.to_le_bytes());
        out[10] = encode_policy(self.room_policy);
        out
    }

    /// Also reads the 10-byte records written before rooms had a policy (as the default).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (bytes, room_policy) = match bytes.len() {
            10 => (bytes, RoomPolicy::default()),
            11 => (&bytes[..10], decode_policy(bytes[10])?),
            _ => return None,
        };
        let relayer = bytes[0] & RELAYER_BIT != 0;
        let room_kind = match bytes[0] & !RELAYER_BIT {
            0 => None,
            1 => Some(RoomKind::Conference),
            2 => Some(RoomKind::AudioSpace),
            3 => Some(RoomKind::Broadcast),
            _ => return None,
        };
        let membership = match bytes[1] {
            0 => Membership::Banned,
            1 => Membership::NotMember,
            2 => Membership::Member(Role::Listener),
            3 => Membership::Member(Role::Speaker),
            4 => Membership::Member(Role::Host),
            5 => Membership::Member(Role::Admin),
            6 => Membership::Member(Role::Owner),
            _ => return None,
        };
        let block = u64::from_le_bytes(bytes[2..].try_into().ok()?);
        Some(Self {
            room_kind,
            membership,
            relayer,
            room_policy,
            block,
        })
    }
}

/// A room policy in a byte: the host fallback in bits 0–1, presenting in bit 2, an open stage
/// in bit 3.
fn encode_policy(policy: RoomPolicy) -> u8 {
    policy.host_fallback.value() | policy.presenting.value() << 2 | u8::from(policy.open_stage) << 3
}

fn decode_policy(byte: u8) -> Option<RoomPolicy> {
    if byte >> 4 != 0 {
        return None;
    }
    Some(RoomPolicy {
        host_fallback: HostFallback::from_value(byte & 0b11)?,
        presenting: Presenting::from_value(byte >> 2 & 1)?,
        open_stage: byte & 0b1000 != 0,
    })
}

const RELAYER_BIT: u8 = 0x80;

fn insert_access(
    txn: &redb::WriteTransaction,
    records: &[(RoomId, Account, AccessRecord)],
) -> Result<(), redb::Error> {
    let mut access = txn.open_table(ACCESS)?;
    for (room, account, record) in records {
        access.insert(
            access_key(*room, *account).as_slice(),
            record.encode().as_slice(),
        )?;
    }
    Ok(())
}

fn access_key(room: RoomId, account: Account) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..32].copy_from_slice(room.as_bytes());
    key[32..].copy_from_slice(account.as_bytes());
    key
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

    /// Adds or refreshes a peer in the peer book, dropping the least recently seen beyond
    /// [`MAX_KNOWN_PEERS`].
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
            let new = peers
                .insert(peer_id, (seen_unix, joined.as_str()))?
                .is_none();
            if new && peers.len()? > MAX_KNOWN_PEERS as u64 {
                let mut oldest: Option<(u64, String)> = None;
                for entry in peers.iter()? {
                    let (key, value) = entry?;
                    let seen = value.value().0;
                    if oldest.as_ref().is_none_or(|(at, _)| seen < *at) {
                        oldest = Some((seen, key.value().to_owned()));
                    }
                }
                if let Some((_, stale)) = oldest {
                    peers.remove(stale.as_str())?;
                }
            }
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

    /// Writes registry facts and advances the chain cursor to `cursor_block`, atomically.
    pub fn apply_registry(
        &self,
        records: &[(RoomId, Account, AccessRecord)],
        cursor_block: u64,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            insert_access(txn, records)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(REGISTRY_CURSOR, cursor_block.to_le_bytes().as_slice())?;
            Ok(())
        })
    }

    /// Caches facts read outside a cursor advance (a lookup at the head).
    pub fn cache_access(
        &self,
        records: &[(RoomId, Account, AccessRecord)],
    ) -> Result<(), StoreError> {
        self.write(|txn| insert_access(txn, records))
    }

    /// Drops cached facts that are no longer followed (they would go out of date).
    pub fn forget_access(&self, pairs: &[(RoomId, Account)]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut access = txn.open_table(ACCESS)?;
            for (room, account) in pairs {
                access.remove(access_key(*room, *account).as_slice())?;
            }
            Ok(())
        })
    }

    /// The cached facts about `account` in `room`.
    pub fn access(
        &self,
        room: RoomId,
        account: Account,
    ) -> Result<Option<AccessRecord>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let access = txn.open_table(ACCESS).map_err(|e| io(e.into()))?;
        let Some(value) = access
            .get(access_key(room, account).as_slice())
            .map_err(|e| io(e.into()))?
        else {
            return Ok(None);
        };
        AccessRecord::decode(value.value())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("registry record of {account} in room {}", room.fmt_short()),
            })
    }

    /// Every cached registry fact.
    pub fn all_access(&self) -> Result<Vec<(RoomId, Account, AccessRecord)>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let access = txn.open_table(ACCESS).map_err(|e| io(e.into()))?;
        let mut out = Vec::new();
        for entry in access.iter().map_err(|e| io(e.into()))? {
            let (key, value) = entry.map_err(|e| io(e.into()))?;
            let key = key.value();
            let corrupt = || StoreError::Corrupt {
                path: self.path.clone(),
                what: "registry cache entry".into(),
            };
            let room =
                RoomId::try_from(key.get(..32).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
            let account: [u8; 20] = key
                .get(32..)
                .and_then(|a| a.try_into().ok())
                .ok_or_else(corrupt)?;
            let record = AccessRecord::decode(value.value()).ok_or_else(corrupt)?;
            out.push((room, Account::from_bytes(account), record));
        }
        Ok(out)
    }

    /// The last block whose registry events are applied, if any.
    pub fn registry_cursor(&self) -> Result<Option<u64>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let meta = txn.open_table(META).map_err(|e| io(e.into()))?;
        let value = meta.get(REGISTRY_CURSOR).map_err(|e| io(e.into()))?;
        Ok(value.and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes)))
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
        // Create every table on first start so readers never see a missing one.
        txn.open_table(PEERS).map_err(|e| io(e.into()))?;
        txn.open_table(ACCESS).map_err(|e| io(e.into()))?;
        txn.commit().map_err(|e| io(e.into()))?;
        Ok(record)
    }

    /// Keeps a chat line of `room`, forgetting the room's oldest beyond [`MAX_CHAT_PER_ROOM`].
    /// The same line twice (same time and author) is kept once.
    pub fn append_chat(&self, room: RoomId, line: &StoredChat) -> Result<(), StoreError> {
        let mut key = room.as_bytes().to_vec();
        key.extend_from_slice(&line.sent_at_unix_ms.to_be_bytes());
        key.extend_from_slice(line.author.as_bytes());
        let account = line.account.map(|a| *a.as_bytes());
        let account: &[u8] = account.as_ref().map_or(&[], |a| a.as_slice());
        self.write(|txn| {
            let mut chat = txn.open_table(CHAT)?;
            chat.insert(
                key.as_slice(),
                (line.author.as_str(), account, line.text.as_str()),
            )?;
            let (start, end) = room_range(room);
            let count = chat.range(start.as_slice()..end.as_slice())?.count();
            let excess = count.saturating_sub(MAX_CHAT_PER_ROOM);
            if excess > 0 {
                let oldest: Vec<Vec<u8>> = chat
                    .range(start.as_slice()..end.as_slice())?
                    .take(excess)
                    .map(|entry| entry.map(|(k, _)| k.value().to_vec()))
                    .collect::<Result<_, _>>()?;
                for key in oldest {
                    chat.remove(key.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// The last `limit` chat lines of `room`, oldest first.
    pub fn recent_chat(&self, room: RoomId, limit: usize) -> Result<Vec<StoredChat>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        // Nothing was ever said on this node.
        let Some(chat) = self.open_read(&txn, CHAT)? else {
            return Ok(Vec::new());
        };
        let (start, end) = room_range(room);
        let mut lines = Vec::new();
        for entry in chat
            .range(start.as_slice()..end.as_slice())
            .map_err(|e| io(e.into()))?
            .rev()
            .take(limit)
        {
            let (key, value) = entry.map_err(|e| io(e.into()))?;
            let corrupt = || StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("chat line in room {}", room.fmt_short()),
            };
            let sent_at: [u8; 8] = key
                .value()
                .get(32..40)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(corrupt)?;
            let (author, account, text) = value.value();
            let account = match account.len() {
                0 => None,
                20 => Some(Account::from_bytes(
                    account.try_into().map_err(|_| corrupt())?,
                )),
                _ => return Err(corrupt()),
            };
            lines.push(StoredChat {
                sent_at_unix_ms: u64::from_be_bytes(sent_at),
                author: author.to_owned(),
                account,
                text: text.to_owned(),
            });
        }
        lines.reverse();
        Ok(lines)
    }

    /// Runs `f` in a write transaction and commits it; an error from `f` aborts it.
    pub(crate) fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.io_error(e.into()))?;
        f(&txn).map_err(|e| self.io_error(e))?;
        txn.commit().map_err(|e| self.io_error(e.into()))
    }

    /// Opens `table` for reading in `txn`; `None` if nothing was ever written to it (a table
    /// exists from its first write).
    pub(crate) fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        txn: &redb::ReadTransaction,
        table: TableDefinition<'_, K, V>,
    ) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
        match txn.open_table(table) {
            Ok(table) => Ok(Some(table)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.io_error(e.into())),
        }
    }

    fn io_error(&self, source: redb::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The key range of `room`'s chat lines.
fn room_range(room: RoomId) -> (Vec<u8>, Vec<u8>) {
    let start = room.as_bytes().to_vec();
    let mut end = start.clone();
    end.extend_from_slice(&[0xff; 9]);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at: u64, author: &str, text: &str) -> StoredChat {
        StoredChat {
            sent_at_unix_ms: at,
            author: author.into(),
            account: (author == "b").then(|| Account::from_bytes([7; 20])),
            text: text.into(),
        }
    }

    #[test]
    fn chat_is_kept_per_room_in_time_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chroom.redb");
        let (room, other) = (RoomId::from_bytes([1; 32]), RoomId::from_bytes([2; 32]));
        {
            let (store, _) = Store::open(&path, "me", 1).unwrap();
            assert!(store.recent_chat(room, 10).unwrap().is_empty());
            store.append_chat(room, &line(20, "b", "second")).unwrap();
            store.append_chat(room, &line(10, "a", "first")).unwrap();
            store
                .append_chat(other, &line(15, "a", "elsewhere"))
                .unwrap();
            // The same line again (gossip redelivery) is kept once.
            store.append_chat(room, &line(20, "b", "second")).unwrap();
        }
        let (store, _) = Store::open(&path, "me", 2).unwrap();
        assert_eq!(
            store.recent_chat(room, 10).unwrap(),
            vec![line(10, "a", "first"), line(20, "b", "second")]
        );
        assert_eq!(
            store.recent_chat(room, 1).unwrap(),
            vec![line(20, "b", "second")]
        );
        for at in 0..(MAX_CHAT_PER_ROOM as u64 + 5) {
            store
                .append_chat(other, &line(100 + at, "a", "spam"))
                .unwrap();
        }
        let kept = store.recent_chat(other, usize::MAX).unwrap();
        assert_eq!(kept.len(), MAX_CHAT_PER_ROOM);
        assert_eq!(kept[0].sent_at_unix_ms, 105);
        assert_eq!(store.recent_chat(room, 10).unwrap().len(), 2);
    }

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
    fn registry_facts_and_cursor_survive_a_restart_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let room = RoomId::from_bytes([1; 32]);
        let alice = Account::from_bytes([2; 20]);
        let record = |membership, block| AccessRecord {
            room_kind: Some(RoomKind::Broadcast),
            membership,
            relayer: false,
            room_policy: RoomPolicy::default(),
            block,
        };
        {
            let (store, _) = Store::open(&path, "me", 1).unwrap();
            assert_eq!(store.registry_cursor().unwrap(), None);
            assert_eq!(store.access(room, alice).unwrap(), None);
            let speaker = record(Membership::Member(Role::Speaker), 10);
            store.apply_registry(&[(room, alice, speaker)], 10).unwrap();
            store
                .apply_registry(&[(room, alice, record(Membership::Banned, 12))], 12)
                .unwrap();
        }
        let (store, _) = Store::open(&path, "me", 2).unwrap();
        assert_eq!(store.registry_cursor().unwrap(), Some(12));
        assert_eq!(
            store.access(room, alice).unwrap(),
            Some(record(Membership::Banned, 12))
        );
        assert_eq!(store.all_access().unwrap().len(), 1);
    }

    #[test]
    fn every_access_record_round_trips() {
        let kinds = [
            None,
            Some(RoomKind::Conference),
            Some(RoomKind::AudioSpace),
            Some(RoomKind::Broadcast),
        ];
        let memberships = [
            Membership::Banned,
            Membership::NotMember,
            Membership::Member(Role::Listener),
            Membership::Member(Role::Speaker),
            Membership::Member(Role::Host),
            Membership::Member(Role::Admin),
            Membership::Member(Role::Owner),
        ];
        for room_kind in kinds {
            for membership in memberships {
                for relayer in [false, true] {
                    let record = AccessRecord {
                        room_kind,
                        membership,
                        relayer,
                        room_policy: RoomPolicy::default(),
                        block: u64::MAX - 1,
                    };
                    assert_eq!(AccessRecord::decode(&record.encode()), Some(record));
                    // A record from before rooms had a policy.
                    assert_eq!(AccessRecord::decode(&record.encode()[..10]), Some(record));
                }
            }
        }
        for host_fallback in HostFallback::ALL {
            for presenting in Presenting::ALL {
                for open_stage in [false, true] {
                    let policy = RoomPolicy {
                        host_fallback,
                        presenting,
                        open_stage,
                    };
                    assert_eq!(decode_policy(encode_policy(policy)), Some(policy));
                }
            }
        }
        assert_eq!(decode_policy(0b11), None);
        assert_eq!(decode_policy(0x10), None);
        assert_eq!(AccessRecord::decode(&[9; 10]), None);
        assert_eq!(AccessRecord::decode(&[0; 3]), None);
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
    fn the_peer_book_keeps_the_most_recently_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path().join("s.redb"), "me", 1).unwrap();
        let addrs = ["/ip4/127.0.0.1/tcp/1".to_owned()];
        for i in 0..=MAX_KNOWN_PEERS as u64 {
            store
                .remember_peer(&format!("peer-{i}"), &addrs, 100 + i)
                .unwrap();
        }
        // Seen again: refreshed, so not the oldest any more.
        store.remember_peer("peer-0", &addrs, 10_000).unwrap();
        store.remember_peer("newcomer", &addrs, 10_001).unwrap();
        let known = store.known_peers().unwrap();
        assert_eq!(known.len(), MAX_KNOWN_PEERS);
        let ids: Vec<&str> = known.iter().map(|p| p.peer_id.as_str()).collect();
        assert!(ids.contains(&"peer-0") && ids.contains(&"newcomer"));
        assert!(!ids.contains(&"peer-1") && !ids.contains(&"peer-2"));
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
