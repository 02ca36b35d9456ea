//! A room's documents: who may change them, how fast, and how large they may grow.

use std::collections::BTreeMap;
use std::time::Instant;

use thiserror::Error;
use tracing::debug;

use crate::rate::TokenBucket;
use crate::{Applied, DocName, Document, NameError, StateVectorError, SyncMessage, UpdateError};

/// Whether the author of an update may change the room's documents. The room's roles decide
/// (speakers and up in conferences, by policy elsewhere); this store only obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The author may edit.
    Edit,
    /// The author may only read: its updates are refused and change nothing.
    ReadOnly,
}

/// Limits of a room's [`Documents`].
#[derive(Debug, Clone)]
pub struct DocumentsConfig {
    /// Most documents a room holds. Default 16.
    pub max_documents: usize,
    /// Largest update an author may send, in bytes. Default 128 KiB: a long paste; typing
    /// makes updates of 20–40 bytes. Catch-up diffs and stored documents are bounded by
    /// `max_document_bytes` instead.
    pub max_update_bytes: usize,
    /// Largest document, in bytes of its compacted encoding (pending changes included).
    /// Default 2 MiB: a 1 MB text with room for its edit history.
    pub max_document_bytes: usize,
    /// Bytes an author may send at once (the token bucket's capacity), counting
    /// `update_overhead_bytes` per update. Default 256 KiB. Never below one largest update
    /// and its overhead: a smaller value is raised to that.
    pub author_burst_bytes: u64,
    /// Bytes per second an author's allowance refills. Default 32 KiB/s (a typist makes
    /// about 1 KiB/s with overheads).
    pub author_bytes_per_sec: u64,
    /// What each update costs on top of its bytes, so a flood of tiny updates is bounded
    /// too. Default 256 bytes: at the default refill, at most 128 updates a second.
    pub update_overhead_bytes: u64,
    /// Most authors whose allowance is kept. Past it, full allowances (which say nothing a
    /// new one would not) are forgotten, then the fullest. Default 4096.
    pub max_tracked_authors: usize,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            max_documents: 16,
            max_update_bytes: 128 * 1024,
            max_document_bytes: 2 * 1024 * 1024,
            author_burst_bytes: 256 * 1024,
            author_bytes_per_sec: 32 * 1024,
            update_overhead_bytes: 256,
            max_tracked_authors: 4096,
        }
    }
}

/// Why a sync message could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The document name is not one this store accepts.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A SyncStep1 whose state vector does not decode.
    #[error(transparent)]
    StateVector(#[from] StateVectorError),
    /// A SyncStep2 or Update that was refused.
    #[error(transparent)]
    Update(#[from] UpdateError),
}

/// A room's named shared documents.
///
/// Authors are identified by `A` (the caller's choice: a node or account id); each has one
/// allowance for all the room's documents.
#[derive(Debug)]
pub struct Documents<A> {
    config: DocumentsConfig,
    documents: BTreeMap<DocName, Document>,
    authors: BTreeMap<A, TokenBucket>,
}

impl<A: Ord + Clone> Documents<A> {
    /// A room without documents.
    pub fn new(config: DocumentsConfig) -> Self {
        Self {
            config,
            documents: BTreeMap::new(),
            authors: BTreeMap::new(),
        }
    }

    /// An author's live edit of a document (a v1 update, as a yjs `update` event gives it),
    /// opening the document if the room has none of that name. Refused when the author may
    /// only read, the update is too large or malformed, the author goes faster than its
    /// allowance, the room holds its most documents, or the document would grow past its cap;
    /// a refused update changes nothing (a malformed one still costs the author allowance).
    pub fn handle_update(
        &mut self,
        now: Instant,
        author: &A,
        access: Access,
        name: &str,
        update: &[u8],
    ) -> Result<Applied, UpdateError> {
        let name = DocName::new(name)?;
        if access == Access::ReadOnly {
            return Err(UpdateError::ReadOnly);
        }
        let max = self.config.max_update_bytes;
        if update.len() > max {
            return Err(UpdateError::TooLarge {
                len: update.len(),
                max,
            });
        }
        self.check_room_for(&name)?;
        self.charge(now, author, update.len())?;
        self.apply(name, update)
    }

    /// A member's answer to this node's state vector (SyncStep2): a diff holding many
    /// authors' edits. The caller says whether it takes edits from that member at all. Bounded
    /// by the document cap rather than the update cap, and by no rate: this node asked for it.
    pub fn handle_sync_step2(
        &mut self,
        access: Access,
        name: &str,
        diff: &[u8],
    ) -> Result<Applied, UpdateError> {
        let name = DocName::new(name)?;
        if access == Access::ReadOnly {
            return Err(UpdateError::ReadOnly);
        }
        self.check_room_for(&name)?;
        self.apply(name, diff)
    }

    /// A y-protocols sync message about a document, as `y-protocols/sync.js` `readSyncMessage`
    /// handles it: a SyncStep1 is answered with the SyncStep2 it asks for; a SyncStep2 goes to
    /// [`Self::handle_sync_step2`] and an Update to [`Self::handle_update`].
    pub fn handle_sync_message(
        &mut self,
        now: Instant,
        author: &A,
        access: Access,
        name: &str,
        message: &SyncMessage,
    ) -> Result<Option<SyncMessage>, SyncError> {
        Ok(match message {
            SyncMessage::SyncStep1 { state_vector } => Some(SyncMessage::SyncStep2 {
                update: self.diff(name, state_vector)?,
            }),
            SyncMessage::SyncStep2 { update } => {
                self.handle_sync_step2(access, name, update)?;
                None
            }
            SyncMessage::Update { update } => {
                self.handle_update(now, author, access, name, update)?;
                None
            }
        })
    }

    /// Loads a document from its compacted form ([`Document::compact`]), as the store kept
    /// it, merging it into the document of that name if the room has one already.
    pub fn load(&mut self, name: &str, compacted: &[u8]) -> Result<Applied, UpdateError> {
        let name = DocName::new(name)?;
        self.check_room_for(&name)?;
        self.apply(name, compacted)
    }

    /// Drops a document (the room deleted it, or it is no longer wanted in memory).
    pub fn remove(&mut self, name: &str) -> Option<Document> {
        self.documents.remove(name)
    }

    /// The state vector of a document (SyncStep1); a document the room does not hold has the
    /// empty one, so asking a member for it fetches all of it.
    pub fn state_vector(&self, name: &str) -> Result<Vec<u8>, NameError> {
        let name = DocName::new(name)?;
        Ok(match self.documents.get(&name) {
            Some(document) => document.state_vector(),
            None => Document::new().state_vector(),
        })
    }

    /// What a document holds that a member's state vector does not cover (SyncStep2). A
    /// document the room does not hold yields an empty update.
    pub fn diff(&self, name: &str, remote_state_vector: &[u8]) -> Result<Vec<u8>, SyncError> {
        let name = DocName::new(name)?;
        Ok(match self.documents.get(&name) {
            Some(document) => document.diff(remote_state_vector)?,
            None => Document::new().diff(remote_state_vector)?,
        })
    }

    /// Whether a member's state vector of a document covers edits this store lacks (all of
    /// them, for a document the room does not hold).
    pub fn lacks(&self, name: &str, remote_state_vector: &[u8]) -> Result<bool, SyncError> {
        let name = DocName::new(name)?;
        Ok(match self.documents.get(&name) {
            Some(document) => document.lacks(remote_state_vector)?,
            None => Document::new().lacks(remote_state_vector)?,
        })
    }

    /// Whether this store holds insertions of a document that a member's state vector does
    /// not cover (none, for a document the room does not hold).
    pub fn ahead_of(&self, name: &str, remote_state_vector: &[u8]) -> Result<bool, SyncError> {
        let name = DocName::new(name)?;
        Ok(match self.documents.get(&name) {
            Some(document) => document.ahead_of(remote_state_vector)?,
            None => false,
        })
    }

    /// A document by name.
    pub fn document(&self, name: &str) -> Option<&Document> {
        self.documents.get(name)
    }

    /// The room's documents, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&DocName, &Document)> {
        self.documents.iter()
    }

    /// How many documents the room holds.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// Whether the room holds no document.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// The limits this store keeps.
    pub fn config(&self) -> &DocumentsConfig {
        &self.config
    }

    /// How many authors' allowances are kept.
    #[cfg(test)]
    pub(crate) fn tracked_authors(&self) -> usize {
        self.authors.len()
    }

    /// Refuses to open a document past the room's cap.
    fn check_room_for(&self, name: &DocName) -> Result<(), UpdateError> {
        let max = self.config.max_documents;
        if !self.documents.contains_key(name) && self.documents.len() >= max {
            return Err(UpdateError::TooManyDocuments { max });
        }
        Ok(())
    }

    /// Takes an update's cost from its author's allowance.
    fn charge(&mut self, now: Instant, author: &A, len: usize) -> Result<(), UpdateError> {
        let config = &self.config;
        let cost = (len as u64).saturating_add(config.update_overhead_bytes);
        let capacity = config
            .author_burst_bytes
            .max((config.max_update_bytes as u64).saturating_add(config.update_overhead_bytes));
        let refill = config.author_bytes_per_sec;
        if !self.authors.contains_key(author) {
            self.make_room_for_author(now, capacity, refill);
        }
        let bucket = self
            .authors
            .entry(author.clone())
            .or_insert_with(|| TokenBucket::full(capacity, now));
        bucket
            .take(now, cost, capacity, refill)
            .map_err(|retry_after| {
                debug!(?retry_after, "update refused: author over its rate");
                UpdateError::RateLimited { retry_after }
            })
    }

    /// Keeps the allowances tracked under the cap before one more is added.
    fn make_room_for_author(&mut self, now: Instant, capacity: u64, refill: u64) {
        let max = self.config.max_tracked_authors.max(1);
        if self.authors.len() < max {
            return;
        }
        self.authors
            .retain(|_, bucket| !bucket.is_full(now, capacity, refill));
        while self.authors.len() >= max {
            let fullest = self
                .authors
                .iter()
                .max_by(|a, b| {
                    let level = |bucket: &TokenBucket| bucket.level(now, capacity, refill);
                    level(a.1).total_cmp(&level(b.1))
                })
                .map(|(author, _)| author.clone());
            let Some(fullest) = fullest else { break };
            self.authors.remove(&fullest);
        }
    }

    /// Applies checked bytes to a document, opening it if new (and only if the bytes apply).
    fn apply(&mut self, name: DocName, update: &[u8]) -> Result<Applied, UpdateError> {
        let max = self.config.max_document_bytes;
        if let Some(document) = self.documents.get_mut(&name) {
            return document.apply(update, max);
        }
        let mut document = Document::new();
        let applied = document.apply(update, max)?;
        debug!(document = %name, "document opened");
        self.documents.insert(name, document);
        Ok(applied)
    }
}
