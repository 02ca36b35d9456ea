//! File sharing's bookkeeping, without IO: how a file is cut into chunks and proved, and what a
//! download holds and still needs.
//!
//! A file is named by the BLAKE3 hash of its bytes ([`FileHash`]). It travels in
//! [`FILE_CHUNK_BYTES`] chunks. Its *manifest* lists each chunk's BLAKE3 hash, and the room's
//! offer names the manifest by its own hash. A receiver so checks the manifest against the offer,
//! every chunk against the manifest as it arrives (a lying peer costs one chunk, not the file),
//! and the whole file against its name before offering it for download.
//!
//! An offer is a claim: its size bounds what a download holds. The manifest must list exactly
//! the chunks of a file of that size and every chunk must have exactly its length, so a sender
//! cannot make a receiver keep more bytes than it offered.
//!
//! [`FileLedger`] decides which offered files a node fetches at all, within [`FileLimits`]:
//! small ones at once, larger ones when the user asks, none beyond the node's file space for
//! the room or for all rooms, and no more than so many offers tracked per room.

use std::collections::BTreeSet;

use chroom_types::{FILE_CHUNK_BYTES, FileHash, MAX_FILE_BYTES};

mod ledger;

pub use ledger::{
    FetchDecision, FetchTrigger, FileLedger, FileLimits, KeptFile, QuotaExceeded, TooManyFiles,
    fmt_bytes,
};

/// Why shared bytes were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Over [`MAX_FILE_BYTES`], or empty.
    #[error("files of {size} bytes cannot be shared (1 byte to {MAX_FILE_BYTES} bytes)")]
    BadSize {
        /// The size offered.
        size: u64,
    },
    /// The manifest does not match the offer.
    #[error("the manifest does not match the offer: {reason}")]
    BadManifest {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A chunk the file does not have.
    #[error("chunk {index} is outside the file")]
    NoSuchChunk {
        /// Its index.
        index: u32,
    },
    /// A chunk whose length or hash is not the manifest's.
    #[error("chunk {index} does not match its hash")]
    BadChunk {
        /// Its index.
        index: u32,
    },
    /// Every chunk matched but the whole does not hash to the file's name.
    #[error("the file's bytes do not hash to its name")]
    WrongFile,
}

/// How many chunks a file of `size` bytes has.
pub fn chunk_count(size: u64) -> u32 {
    // MAX_FILE_BYTES / FILE_CHUNK_BYTES chunks at most: a u32 holds them.
    u32::try_from(size.div_ceil(FILE_CHUNK_BYTES as u64)).unwrap_or(u32::MAX)
}

/// The length of chunk `index` of a file of `size` bytes.
pub fn chunk_len(size: u64, index: u32) -> usize {
    let start = u64::from(index) * FILE_CHUNK_BYTES as u64;
    // At most FILE_CHUNK_BYTES: fits a usize.
    size.saturating_sub(start).min(FILE_CHUNK_BYTES as u64) as usize
}

/// The bytes in `chunks` (their numbers) of a file of `size` bytes.
pub fn bytes_in(size: u64, chunks: impl IntoIterator<Item = u32>) -> u64 {
    chunks
        .into_iter()
        .map(|index| chunk_len(size, index) as u64)
        .sum()
}

fn check_size(size: u64) -> Result<(), FileError> {
    if size == 0 || size > MAX_FILE_BYTES {
        return Err(FileError::BadSize { size });
    }
    Ok(())
}

/// The BLAKE3 hash of the bytes of `chunks`, in order: the name of the file they make up.
pub fn hash_of<C: AsRef<[u8]>>(chunks: impl IntoIterator<Item = C>) -> FileHash {
    let mut hasher = blake3::Hasher::new();
    for chunk in chunks {
        hasher.update(chunk.as_ref());
    }
    FileHash::from_bytes(*hasher.finalize().as_bytes())
}

/// Each chunk's BLAKE3 hash, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    chunks: Vec<[u8; 32]>,
}

impl Manifest {
    /// Cuts `file` into chunks: the file's name and its manifest.
    pub fn of(file: &[u8]) -> Result<(FileHash, Self), FileError> {
        check_size(file.len() as u64)?;
        let chunks = file
            .chunks(FILE_CHUNK_BYTES)
            .map(|chunk| *blake3::hash(chunk).as_bytes())
            .collect();
        Ok((hash_of([file]), Self { chunks }))
    }

    /// The manifest's own hash, which the room's offer carries.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// The manifest as it travels: the chunk hashes, concatenated.
    pub fn encode(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    /// Reads a manifest that must hash to `expected` and describe a file of `size` bytes.
    pub fn decode(bytes: &[u8], size: u64, expected: [u8; 32]) -> Result<Self, FileError> {
        check_size(size)?;
        if bytes.len() != chunk_count(size) as usize * 32 {
            return Err(FileError::BadManifest {
                reason: "wrong number of chunk hashes for the file's size",
            });
        }
        if *blake3::hash(bytes).as_bytes() != expected {
            return Err(FileError::BadManifest {
                reason: "it does not hash to the offer's manifest hash",
            });
        }
        let chunks = bytes
            .chunks_exact(32)
            .map(|hash| hash.try_into().unwrap_or([0; 32]))
            .collect();
        Ok(Self { chunks })
    }

    /// Checks chunk `index` of a file of `size` bytes.
    pub fn check_chunk(&self, size: u64, index: u32, data: &[u8]) -> Result<(), FileError> {
        let expected = self
            .chunks
            .get(index as usize)
            .ok_or(FileError::NoSuchChunk { index })?;
        if data.len() != chunk_len(size, index) || blake3::hash(data).as_bytes() != expected {
            return Err(FileError::BadChunk { index });
        }
        Ok(())
    }
}

/// A part of a file to ask a peer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Want {
    /// The manifest.
    Manifest,
    /// One chunk.
    Chunk(u32),
}

/// What a download of one file holds and still needs. Chunks already held (kept from before a
/// restart or a lost connection) are never asked for again.
#[derive(Debug, Clone)]
pub struct Download {
    size: u64,
    manifest_hash: [u8; 32],
    manifest: Option<Manifest>,
    have: Vec<bool>,
    held: u32,
    in_flight: BTreeSet<Want>,
}

impl Download {
    /// A download of a `size`-byte file whose manifest hashes to `manifest_hash`, holding the
    /// manifest and the chunks in `have` if kept from before.
    pub fn new(
        size: u64,
        manifest_hash: [u8; 32],
        manifest: Option<Manifest>,
        have: &[u32],
    ) -> Result<Self, FileError> {
        check_size(size)?;
        let mut held = vec![false; chunk_count(size) as usize];
        // Kept chunks count only with the manifest that proved them.
        if manifest.is_some() {
            for &index in have {
                if let Some(slot) = held.get_mut(index as usize) {
                    *slot = true;
                }
            }
        }
        Ok(Self {
            size,
            manifest_hash,
            manifest,
            held: held.iter().filter(|h| **h).count() as u32,
            have: held,
            in_flight: BTreeSet::new(),
        })
    }

    /// What to ask for next, keeping at most `max_in_flight` requests out: the manifest first,
    /// then missing chunks in order.
    pub fn next_wants(&mut self, max_in_flight: usize) -> Vec<Want> {
        let mut wants = Vec::new();
        if self.manifest.is_none() {
            if self.in_flight.insert(Want::Manifest) {
                wants.push(Want::Manifest);
            }
            return wants;
        }
        let missing = (0..self.have.len() as u32).filter(|i| !self.have[*i as usize]);
        for index in missing {
            if self.in_flight.len() >= max_in_flight {
                break;
            }
            if self.in_flight.insert(Want::Chunk(index)) {
                wants.push(Want::Chunk(index));
            }
        }
        wants
    }

    /// The manifest arrived: keeps it if it matches the offer.
    pub fn manifest_arrived(&mut self, bytes: &[u8]) -> Result<&Manifest, FileError> {
        self.in_flight.remove(&Want::Manifest);
        let manifest = Manifest::decode(bytes, self.size, self.manifest_hash)?;
        Ok(self.manifest.insert(manifest))
    }

    /// Chunk `index` arrived: keeps it if it matches the manifest (the caller stores it).
    pub fn chunk_arrived(&mut self, index: u32, data: &[u8]) -> Result<(), FileError> {
        self.in_flight.remove(&Want::Chunk(index));
        let manifest = self.manifest.as_ref().ok_or(FileError::BadManifest {
            reason: "a chunk came before the manifest",
        })?;
        manifest.check_chunk(self.size, index, data)?;
        let slot = &mut self.have[index as usize];
        if !*slot {
            *slot = true;
            self.held += 1;
        }
        Ok(())
    }

    /// Asking for `want` failed: it will be asked for again.
    pub fn failed(&mut self, want: Want) {
        self.in_flight.remove(&want);
    }

    /// The manifest, once known.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Bytes held so far.
    pub fn received_bytes(&self) -> u64 {
        bytes_in(
            self.size,
            (0..self.have.len() as u32).filter(|i| self.have[*i as usize]),
        )
    }

    /// Chunks held so far.
    pub fn chunks_held(&self) -> u32 {
        self.held
    }

    /// Every chunk is held (and proved by the manifest).
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some() && self.held as usize == self.have.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn chunk(file: &[u8], index: u32) -> &[u8] {
        let start = index as usize * FILE_CHUNK_BYTES;
        &file[start..(start + FILE_CHUNK_BYTES).min(file.len())]
    }

    #[test]
    fn a_file_is_cut_into_chunks_its_manifest_proves() {
        let bytes = file(2 * FILE_CHUNK_BYTES + 10);
        let (hash, manifest) = Manifest::of(&bytes).unwrap();
        assert_eq!(hash, hash_of([&bytes]));
        assert_eq!(chunk_count(bytes.len() as u64), 3);
        assert_eq!(chunk_len(bytes.len() as u64, 2), 10);
        let size = bytes.len() as u64;
        let decoded = Manifest::decode(&manifest.encode(), size, manifest.hash()).unwrap();
        assert_eq!(decoded, manifest);
        for index in 0..3 {
            manifest
                .check_chunk(size, index, chunk(&bytes, index))
                .unwrap();
        }
        assert_eq!(
            manifest.check_chunk(size, 1, chunk(&bytes, 0)),
            Err(FileError::BadChunk { index: 1 })
        );
        assert_eq!(
            manifest.check_chunk(size, 2, &bytes[..9]),
            Err(FileError::BadChunk { index: 2 })
        );
        assert_eq!(
            manifest.check_chunk(size, 3, b""),
            Err(FileError::NoSuchChunk { index: 3 })
        );
        // Bytes split anywhere hash to the same name.
        assert_eq!(hash_of([&bytes[..5], &bytes[5..]]), hash);
    }

    #[test]
    fn a_manifest_that_is_not_the_offers_is_refused() {
        let bytes = file(FILE_CHUNK_BYTES + 1);
        let (_, manifest) = Manifest::of(&bytes).unwrap();
        let size = bytes.len() as u64;
        let mut forged = manifest.encode();
        forged[0] ^= 1;
        assert!(matches!(
            Manifest::decode(&forged, size, manifest.hash()),
            Err(FileError::BadManifest { .. })
        ));
        assert!(matches!(
            Manifest::decode(&manifest.encode()[..32], size, manifest.hash()),
            Err(FileError::BadManifest { .. })
        ));
        assert_eq!(
            Manifest::decode(&[], MAX_FILE_BYTES + 1, [0; 32]),
            Err(FileError::BadSize {
                size: MAX_FILE_BYTES + 1
            })
        );
        assert_eq!(Manifest::of(&[]), Err(FileError::BadSize { size: 0 }));
    }

    #[test]
    fn a_download_asks_for_the_manifest_then_missing_chunks_and_retries_failures() {
        let bytes = file(5 * FILE_CHUNK_BYTES);
        let (_, manifest) = Manifest::of(&bytes).unwrap();
        let size = bytes.len() as u64;
        let mut download = Download::new(size, manifest.hash(), None, &[]).unwrap();
        assert_eq!(download.next_wants(4), [Want::Manifest]);
        assert!(download.next_wants(4).is_empty(), "asked twice");
        download.manifest_arrived(&manifest.encode()).unwrap();
        assert_eq!(
            download.next_wants(2),
            [Want::Chunk(0), Want::Chunk(1)],
            "at most two out"
        );
        download.chunk_arrived(0, chunk(&bytes, 0)).unwrap();
        download.failed(Want::Chunk(1));
        assert_eq!(download.next_wants(2), [Want::Chunk(1), Want::Chunk(2)]);
        // A bad chunk is not kept, and is asked for again.
        assert_eq!(
            download.chunk_arrived(1, chunk(&bytes, 2)),
            Err(FileError::BadChunk { index: 1 })
        );
        assert_eq!(download.received_bytes(), FILE_CHUNK_BYTES as u64);
        assert_eq!(download.next_wants(2), [Want::Chunk(1)]);
        for index in 1..5 {
            download.chunk_arrived(index, chunk(&bytes, index)).unwrap();
        }
        assert!(download.is_complete());
        assert_eq!(download.received_bytes(), size);
        assert!(download.next_wants(4).is_empty());
    }

    #[test]
    fn a_resumed_download_asks_only_for_what_it_lacks() {
        let bytes = file(4 * FILE_CHUNK_BYTES);
        let (_, manifest) = Manifest::of(&bytes).unwrap();
        let size = bytes.len() as u64;
        let hash = manifest.hash();
        let mut resumed = Download::new(size, hash, Some(manifest), &[0, 2, 9]).unwrap();
        assert_eq!(resumed.chunks_held(), 2);
        assert_eq!(resumed.next_wants(8), [Want::Chunk(1), Want::Chunk(3)]);
        // Kept chunks without the manifest that proved them are not trusted.
        let mut fresh = Download::new(size, hash, None, &[0, 1]).unwrap();
        assert_eq!(fresh.chunks_held(), 0);
        assert_eq!(fresh.next_wants(8), [Want::Manifest]);
    }

    #[test]
    fn a_sender_cannot_make_a_download_hold_more_than_it_offered() {
        // The real file is three chunks; the offer claims one chunk and a bit.
        let bytes = file(3 * FILE_CHUNK_BYTES);
        let (_, manifest) = Manifest::of(&bytes).unwrap();
        let claimed = FILE_CHUNK_BYTES as u64 + 1;
        // A manifest listing more chunks than the offered size has is refused, even when it is
        // the one the offer names.
        let mut download = Download::new(claimed, manifest.hash(), None, &[]).unwrap();
        assert_eq!(download.next_wants(4), [Want::Manifest]);
        assert!(matches!(
            download.manifest_arrived(&manifest.encode()),
            Err(FileError::BadManifest { .. })
        ));
        assert!(download.manifest().is_none());
        // With a manifest of the claimed shape, chunks past the claimed size or longer than
        // their place in it are refused before anything is kept.
        let short = [
            chunk(&bytes, 0),
            &bytes[FILE_CHUNK_BYTES..=FILE_CHUNK_BYTES],
        ]
        .concat();
        let (_, small) = Manifest::of(&short).unwrap();
        let mut download = Download::new(claimed, small.hash(), None, &[]).unwrap();
        let _ = download.next_wants(4);
        download.manifest_arrived(&small.encode()).unwrap();
        assert_eq!(download.next_wants(8), [Want::Chunk(0), Want::Chunk(1)]);
        assert_eq!(
            download.chunk_arrived(2, chunk(&bytes, 2)),
            Err(FileError::NoSuchChunk { index: 2 })
        );
        assert_eq!(
            download.chunk_arrived(1, chunk(&bytes, 1)),
            Err(FileError::BadChunk { index: 1 }),
            "a whole chunk where one byte was offered"
        );
        assert_eq!(download.received_bytes(), 0);
        // Nor can an offer claim more than a file may be.
        assert_eq!(
            Download::new(MAX_FILE_BYTES + 1, [0; 32], None, &[]).unwrap_err(),
            FileError::BadSize {
                size: MAX_FILE_BYTES + 1
            }
        );
    }
}
