//! Files shared in rooms: what was offered, and the chunks held (checked before they are
//! written; the store trusts its caller for that).

use chroom_types::{Account, FileHash, RoomId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Store, StoreError};

/// Shared files: BLAKE3 hash (32) -> (room id, name, size, manifest hash, offering PeerId text,
/// offering account (20 bytes, or none), offered at (unix ms), manifest (empty until known),
/// complete).
type FileRow<'a> = (
    &'a [u8],
    &'a str,
    u64,
    &'a [u8],
    &'a str,
    &'a [u8],
    u64,
    &'a [u8],
    bool,
);
const FILES: TableDefinition<&[u8], FileRow<'static>> = TableDefinition::new("files");
/// Chunks held: (file hash, chunk number) -> bytes.
const FILE_CHUNKS: TableDefinition<(&[u8], u32), &[u8]> = TableDefinition::new("file_chunks");
/// Files of others this node fetches, once decided (they fit the automatic limits, or the user
/// asked): BLAKE3 hash (32) -> (). An incomplete file not in here is not fetched. (A table of
/// its own rather than a column, so stores written before it open unchanged.)
const FILE_FETCHES: TableDefinition<&[u8], ()> = TableDefinition::new("file_fetches");

/// A file shared in a room, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// BLAKE3 of its bytes.
    pub hash: FileHash,
    /// The room it was shared in.
    pub room: RoomId,
    /// Its name.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// BLAKE3 of its manifest.
    pub manifest_hash: [u8; 32],
    /// The PeerId (text) of the node that offered it.
    pub offered_by: String,
    /// The account that node proved, if any.
    pub account: Option<Account>,
    /// When it was offered, unix milliseconds.
    pub offered_at_unix_ms: u64,
    /// Its manifest, once fetched (and checked).
    pub manifest: Option<Vec<u8>>,
    /// Every chunk is held and the whole was checked against `hash`.
    pub complete: bool,
}

/// What a kept file takes, for counting space (its manifest left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpace {
    /// BLAKE3 of its bytes.
    pub hash: FileHash,
    /// The room it was shared in.
    pub room: RoomId,
    /// Its length in bytes.
    pub size: u64,
    /// The PeerId (text) of the node that offered it.
    pub offered_by: String,
    /// Every chunk is held and the whole was checked.
    pub complete: bool,
    /// This node fetches it ([`Store::mark_file_fetching`]).
    pub fetching: bool,
}

impl Store {
    /// Keeps an offered file. Returns false (and changes nothing) if it was kept already.
    pub fn offer_file(&self, file: &StoredFile) -> Result<bool, StoreError> {
        let mut added = false;
        self.write(|txn| {
            let mut files = txn.open_table(FILES)?;
            if files.get(file.hash.as_bytes().as_slice())?.is_none() {
                insert_file(&mut files, file)?;
                added = true;
            }
            Ok(())
        })?;
        Ok(added)
    }

    /// Keeps a file this node shares, whole: its record (complete) and every chunk, in one
    /// transaction.
    pub fn share_file<'c>(
        &self,
        file: &StoredFile,
        chunks: impl IntoIterator<Item = &'c [u8]>,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            insert_file(&mut txn.open_table(FILES)?, file)?;
            let mut table = txn.open_table(FILE_CHUNKS)?;
            for (index, chunk) in (0u32..).zip(chunks) {
                table.insert((file.hash.as_bytes().as_slice(), index), chunk)?;
            }
            Ok(())
        })
    }

    /// The file named `hash`, if kept.
    pub fn file(&self, hash: FileHash) -> Result<Option<StoredFile>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(files) = self.open_read(&txn, FILES)? else {
            return Ok(None);
        };
        let Some(row) = files
            .get(hash.as_bytes().as_slice())
            .map_err(|e| io(e.into()))?
        else {
            return Ok(None);
        };
        self.file_from_row(hash, row.value()).map(Some)
    }

    /// The files shared in `room`, oldest first.
    pub fn room_files(&self, room: RoomId) -> Result<Vec<StoredFile>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(files) = self.open_read(&txn, FILES)? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for entry in files.iter().map_err(|e| io(e.into()))? {
            let (key, row) = entry.map_err(|e| io(e.into()))?;
            if row.value().0 != room.as_bytes() {
                continue;
            }
            let hash = FileHash::try_from(key.value()).map_err(|_| self.corrupt("file key"))?;
            found.push(self.file_from_row(hash, row.value())?);
        }
        found.sort_by_key(|file| file.offered_at_unix_ms);
        Ok(found)
    }

    /// Records a file's manifest (checked by the caller against the offer).
    pub fn set_file_manifest(&self, hash: FileHash, manifest: &[u8]) -> Result<(), StoreError> {
        self.update_file(hash, |file| file.manifest = Some(manifest.to_vec()))
    }

    /// Records that every chunk of a file is held and the whole checked.
    pub fn mark_file_complete(&self, hash: FileHash) -> Result<(), StoreError> {
        self.update_file(hash, |file| file.complete = true)
    }

    /// Keeps chunks of a file (checked by the caller against its manifest), in one transaction.
    pub fn put_file_chunks(
        &self,
        hash: FileHash,
        chunks: &[(u32, &[u8])],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(FILE_CHUNKS)?;
            for (index, chunk) in chunks {
                table.insert((hash.as_bytes().as_slice(), *index), *chunk)?;
            }
            Ok(())
        })
    }

    /// Chunk `index` of a file, if held.
    pub fn file_chunk(&self, hash: FileHash, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(chunks) = self.open_read(&txn, FILE_CHUNKS)? else {
            return Ok(None);
        };
        let chunk = chunks
            .get((hash.as_bytes().as_slice(), index))
            .map_err(|e| io(e.into()))?;
        Ok(chunk.map(|chunk| chunk.value().to_vec()))
    }

    /// The numbers of the chunks of a file held, in order.
    pub fn file_chunk_indexes(&self, hash: FileHash) -> Result<Vec<u32>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(chunks) = self.open_read(&txn, FILE_CHUNKS)? else {
            return Ok(Vec::new());
        };
        let key = hash.as_bytes().as_slice();
        chunks
            .range((key, 0)..=(key, u32::MAX))
            .map_err(|e| io(e.into()))?
            .map(|entry| {
                entry
                    .map(|(key, _)| key.value().1)
                    .map_err(|e| io(e.into()))
            })
            .collect()
    }

    /// Records that this node fetches a file of another member (it fit the automatic limits,
    /// or the user asked): it goes on after a restart.
    pub fn mark_file_fetching(&self, hash: FileHash) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(FILE_FETCHES)?
                .insert(hash.as_bytes().as_slice(), ())?;
            Ok(())
        })
    }

    /// Whether this node fetches a file ([`Self::mark_file_fetching`]).
    pub fn file_fetching(&self, hash: FileHash) -> Result<bool, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(fetches) = self.open_read(&txn, FILE_FETCHES)? else {
            return Ok(false);
        };
        let found = fetches
            .get(hash.as_bytes().as_slice())
            .map_err(|e| io(e.into()))?;
        Ok(found.is_some())
    }

    /// What every kept file takes, in every room: to count it against the file quotas.
    pub fn file_spaces(&self) -> Result<Vec<FileSpace>, StoreError> {
        let io = |e: redb::Error| self.io_error(e);
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(files) = self.open_read(&txn, FILES)? else {
            return Ok(Vec::new());
        };
        let fetches = self.open_read(&txn, FILE_FETCHES)?;
        let mut found = Vec::new();
        for entry in files.iter().map_err(|e| io(e.into()))? {
            let (key, row) = entry.map_err(|e| io(e.into()))?;
            let (room, _, size, _, offered_by, _, _, _, complete) = row.value();
            let fetching = match &fetches {
                Some(fetches) => fetches
                    .get(key.value())
                    .map_err(|e| io(e.into()))?
                    .is_some(),
                None => false,
            };
            found.push(FileSpace {
                hash: FileHash::try_from(key.value()).map_err(|_| self.corrupt("file key"))?,
                room: RoomId::try_from(room).map_err(|_| self.corrupt("file room"))?,
                size,
                offered_by: offered_by.to_owned(),
                complete,
                fetching,
            });
        }
        Ok(found)
    }

    fn update_file(
        &self,
        hash: FileHash,
        change: impl FnOnce(&mut StoredFile),
    ) -> Result<(), StoreError> {
        let Some(mut file) = self.file(hash)? else {
            return Err(self.corrupt("update of a file that was never offered"));
        };
        change(&mut file);
        self.write(|txn| insert_file(&mut txn.open_table(FILES)?, &file))
    }

    fn file_from_row(&self, hash: FileHash, row: FileRow<'_>) -> Result<StoredFile, StoreError> {
        let (room, name, size, manifest_hash, offered_by, account, offered_at, manifest, complete) =
            row;
        let room = RoomId::try_from(room).map_err(|_| self.corrupt("file room"))?;
        let manifest_hash: [u8; 32] = manifest_hash
            .try_into()
            .map_err(|_| self.corrupt("file manifest hash"))?;
        let account = match account.len() {
            0 => None,
            _ => Some(Account::from_bytes(
                account
                    .try_into()
                    .map_err(|_| self.corrupt("file account"))?,
            )),
        };
        Ok(StoredFile {
            hash,
            room,
            name: name.to_owned(),
            size,
            manifest_hash,
            offered_by: offered_by.to_owned(),
            account,
            offered_at_unix_ms: offered_at,
            manifest: (!manifest.is_empty()).then(|| manifest.to_vec()),
            complete,
        })
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.to_owned(),
        }
    }
}

fn insert_file(
    files: &mut redb::Table<'_, &'static [u8], FileRow<'static>>,
    file: &StoredFile,
) -> Result<(), redb::Error> {
    let account = file.account.map(|a| *a.as_bytes());
    let account: &[u8] = account.as_ref().map_or(&[], |a| a.as_slice());
    files.insert(
        file.hash.as_bytes().as_slice(),
        (
            file.room.as_bytes().as_slice(),
            file.name.as_str(),
            file.size,
            file.manifest_hash.as_slice(),
            file.offered_by.as_str(),
            account,
            file.offered_at_unix_ms,
            file.manifest.as_deref().unwrap_or(&[]),
            file.complete,
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(hash: u8, room: RoomId, at: u64) -> StoredFile {
        StoredFile {
            hash: FileHash::from_bytes([hash; 32]),
            room,
            name: format!("file-{hash}.bin"),
            size: 70_000,
            manifest_hash: [9; 32],
            offered_by: "12D3KooWpeer".into(),
            account: hash.is_multiple_of(2).then(|| Account::from_bytes([3; 20])),
            offered_at_unix_ms: at,
            manifest: None,
            complete: false,
        }
    }

    #[test]
    fn files_and_their_chunks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chroom.redb");
        let (room, other) = (RoomId::from_bytes([1; 32]), RoomId::from_bytes([2; 32]));
        let (a, b) = (offered(1, room, 20), offered(2, room, 10));
        {
            let (store, _) = Store::open(&path, "me", 1).unwrap();
            assert_eq!(store.file(a.hash).unwrap(), None);
            assert!(store.offer_file(&a).unwrap());
            assert!(!store.offer_file(&a).unwrap(), "kept once");
            store
                .share_file(&b, [&[1u8; 5][..], &[2u8; 3][..]])
                .unwrap();
            store.offer_file(&offered(3, other, 5)).unwrap();
            store.set_file_manifest(a.hash, &[4; 96]).unwrap();
            store
                .put_file_chunks(a.hash, &[(2, b"two"), (0, b"zero")])
                .unwrap();
        }
        let (store, _) = Store::open(&path, "me", 2).unwrap();
        let kept: Vec<FileHash> = store
            .room_files(room)
            .unwrap()
            .iter()
            .map(|f| f.hash)
            .collect();
        assert_eq!(kept, [b.hash, a.hash], "oldest first, this room only");
        let a_kept = store.file(a.hash).unwrap().unwrap();
        assert_eq!(a_kept.manifest, Some(vec![4; 96]));
        assert!(!a_kept.complete);
        assert_eq!(store.file_chunk_indexes(a.hash).unwrap(), [0, 2]);
        assert_eq!(store.file_chunk(a.hash, 2).unwrap(), Some(b"two".to_vec()));
        assert_eq!(store.file_chunk(a.hash, 1).unwrap(), None);
        assert_eq!(store.file_chunk_indexes(b.hash).unwrap(), [0, 1]);
        store.mark_file_complete(a.hash).unwrap();
        assert!(store.file(a.hash).unwrap().unwrap().complete);
        assert_eq!(store.file(b.hash).unwrap().unwrap().account, b.account);
    }

    #[test]
    fn the_files_fetched_are_remembered_with_the_space_they_take() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chroom.redb");
        let (room, other) = (RoomId::from_bytes([1; 32]), RoomId::from_bytes([2; 32]));
        let (a, b) = (offered(1, room, 20), offered(2, other, 10));
        {
            let (store, _) = Store::open(&path, "me", 1).unwrap();
            assert_eq!(store.file_spaces().unwrap(), []);
            store.offer_file(&a).unwrap();
            store.offer_file(&b).unwrap();
            assert!(!store.file_fetching(a.hash).unwrap());
            store.mark_file_fetching(a.hash).unwrap();
        }
        let (store, _) = Store::open(&path, "me", 2).unwrap();
        assert!(store.file_fetching(a.hash).unwrap());
        assert!(!store.file_fetching(b.hash).unwrap());
        let mut spaces = store.file_spaces().unwrap();
        spaces.sort_by_key(|space| space.room);
        assert_eq!(
            spaces,
            [
                FileSpace {
                    hash: a.hash,
                    room,
                    size: 70_000,
                    offered_by: "12D3KooWpeer".into(),
                    complete: false,
                    fetching: true,
                },
                FileSpace {
                    hash: b.hash,
                    room: other,
                    size: 70_000,
                    offered_by: "12D3KooWpeer".into(),
                    complete: false,
                    fetching: false,
                },
            ]
        );
    }
}
