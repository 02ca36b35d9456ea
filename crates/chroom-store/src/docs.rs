//! Rooms' shared documents, each kept as one compacted update (the documents core makes it;
//! the store only keeps the bytes), so a node that was away starts from its own copy.

use chroom_types::RoomId;
use redb::{ReadableDatabase, TableDefinition};

use crate::{Store, StoreError};

/// Documents: room id (32) then the document's name (UTF-8) -> the document as one update.
const DOCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("docs");

fn key(room: RoomId, name: &str) -> Vec<u8> {
    let mut key = room.as_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

impl Store {
    /// Keeps `compacted` as `room`'s document `name`, in place of the copy before.
    pub fn put_doc(&self, room: RoomId, name: &str, compacted: &[u8]) -> Result<(), StoreError> {
        let key = key(room, name);
        self.write(|txn| {
            txn.open_table(DOCS)?.insert(key.as_slice(), compacted)?;
            Ok(())
        })
    }

    /// Every document kept for `room`, by name.
    pub fn room_docs(&self, room: RoomId) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let io = |e: redb::Error| StoreError::Io {
            path: self.path.clone(),
            source: e,
        };
        let txn = self.db.begin_read().map_err(|e| io(e.into()))?;
        let Some(docs) = self.open_read(&txn, DOCS)? else {
            return Ok(Vec::new());
        };
        let start = room.as_bytes().to_vec();
        let mut kept = Vec::new();
        for entry in docs.range(start.as_slice()..).map_err(|e| io(e.into()))? {
            let (key, value) = entry.map_err(|e| io(e.into()))?;
            let Some(name) = key.value().strip_prefix(start.as_slice()) else {
                break;
            };
            let name = String::from_utf8(name.to_vec()).map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("a document name in room {}", room.fmt_short()),
            })?;
            kept.push((name, value.value().to_vec()));
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_kept_per_room_and_replaced_by_newer_copies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chroom.redb");
        let (room, other) = (RoomId::from_bytes([1; 32]), RoomId::from_bytes([2; 32]));
        {
            let (store, _) = Store::open(&path, "me", 1).unwrap();
            assert!(store.room_docs(room).unwrap().is_empty());
            store.put_doc(room, "notes", b"first").unwrap();
            store.put_doc(room, "notes", b"second").unwrap();
            store.put_doc(room, "agenda", b"items").unwrap();
            store.put_doc(other, "notes", b"elsewhere").unwrap();
        }
        let (store, _) = Store::open(&path, "me", 1).unwrap();
        assert_eq!(
            store.room_docs(room).unwrap(),
            vec![
                ("agenda".to_owned(), b"items".to_vec()),
                ("notes".to_owned(), b"second".to_vec()),
            ]
        );
        assert_eq!(
            store.room_docs(other).unwrap(),
            vec![("notes".to_owned(), b"elsewhere".to_vec())]
        );
    }
}
