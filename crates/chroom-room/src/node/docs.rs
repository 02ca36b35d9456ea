//! The room's shared documents as the node keeps them: its user's edits checked against its
//! own role and published, members' edits applied once the session proved their author may
//! edit, and every changed document handed to the store at most every [`STORE_INTERVAL`].
//!
//! What a document is and which updates it takes is `chroom-docs`'s; who may edit is the
//! registry's ([`Action::Edit`]); this module joins the two.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_docs::{Access, Documents, DocumentsConfig, UpdateError};
use chroom_types::{Action, MAX_DOC_UPDATE_BYTES, RoomId};

use super::doc_sync::Syncing;
use super::{CommandError, DocEdit, NodeCore, NodeOutput, Say};
use crate::access::AccessPolicy;
use crate::rate::Rate;

/// Longest a changed document waits to be stored: a node killed loses at most this much of
/// what it heard (what it wrote itself its members hold too).
pub(super) const STORE_INTERVAL: Duration = Duration::from_secs(2);

/// One room's documents, with the ones changed since they were last stored.
#[derive(Debug)]
pub(super) struct RoomDocs<P> {
    pub(super) documents: Documents<P>,
    /// Changed documents, and when they are stored at the latest.
    unstored: BTreeMap<String, Instant>,
    /// Catching up with members.
    pub(super) syncing: Syncing<P>,
}

/// How often a member's caret may move, as members relay it: a page tells its node at most
/// every 250 ms; bursts cover switching documents.
pub(super) const CURSOR_RATE: Rate = Rate {
    per_second: 8.0,
    burst: 16.0,
};

/// The limits every node applies alike: an edit travels in one room message.
fn config() -> DocumentsConfig {
    DocumentsConfig {
        max_update_bytes: MAX_DOC_UPDATE_BYTES,
        ..DocumentsConfig::default()
    }
}

impl<P: Ord + Clone> RoomDocs<P> {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            documents: Documents::new(config()),
            unstored: BTreeMap::new(),
            syncing: Syncing::new(now),
        }
    }

    pub(super) fn changed(&mut self, now: Instant, name: &str) {
        self.unstored
            .entry(name.to_owned())
            .or_insert(now + STORE_INTERVAL);
    }

    pub(super) fn store_due(&self) -> Option<Instant> {
        self.unstored.values().min().copied()
    }
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// The copies of `room`'s documents this node stored (each as one compacted update),
    /// read when it joined. A copy that does not load is reported and skipped: members hold
    /// the document too.
    pub fn handle_docs_loaded(&mut self, room: RoomId, stored: Vec<(String, Vec<u8>)>) {
        let Some(docs) = self.docs.get_mut(&room) else {
            return;
        };
        for (name, bytes) in stored {
            if let Err(e) = docs.documents.load(&name, &bytes) {
                tracing::warn!(room = %room.fmt_short(), doc = %name, error = %e, "a stored document does not load");
            }
        }
    }

    /// An edit of this node's user: applied here and returned to publish. Refused where the
    /// registry's known answer does not let the user edit (a listener reads along), and as
    /// any member's edit would be (too large, too fast, the document full).
    pub fn edit_doc(
        &mut self,
        now: Instant,
        room: RoomId,
        name: &str,
        update: Vec<u8>,
    ) -> Result<Say<P>, CommandError> {
        self.now = self.now.max(now);
        if !self.may_edit(room) {
            return Err(CommandError::ReadOnly);
        }
        let local = self.local;
        let Some(docs) = self.docs.get_mut(&room) else {
            return Err(CommandError::NotInRoom { doing: "editing" });
        };
        let applied = docs
            .documents
            .handle_update(now, &local, Access::Edit, name, &update)?;
        if applied.changed {
            docs.changed(now, name);
        }
        Ok(Say::DocUpdate {
            name: name.to_owned(),
            update,
        })
    }

    /// Where this node's user's selection is in `room`'s document `name`: returned to publish,
    /// `None` if its user moves faster than members take (the next move tells them). Refused
    /// where the user may only read: nobody shows a reader's caret.
    pub fn move_cursor(
        &mut self,
        now: Instant,
        room: RoomId,
        name: &str,
        anchor: Vec<u8>,
        head: Vec<u8>,
    ) -> Result<Option<Say<P>>, CommandError> {
        self.now = self.now.max(now);
        if !self.docs.contains_key(&room) {
            return Err(CommandError::NotInRoom { doing: "editing" });
        }
        if !self.may_edit(room) {
            return Err(CommandError::ReadOnly);
        }
        if !self.cursors.take(now, (room, self.local), CURSOR_RATE) {
            return Ok(None);
        }
        Ok(Some(Say::DocCursor {
            name: name.to_owned(),
            anchor,
            head,
        }))
    }

    /// Whether this node's user may edit `room`'s documents, as far as this node knows:
    /// refused only where the registry's known answer denies it (unknown, every member's
    /// node asks the registry anyway).
    pub fn may_edit(&self, room: RoomId) -> bool {
        self.session.access_policy() == AccessPolicy::Open
            || self
                .account
                .and_then(|account| self.session.facts(room, account))
                .is_none_or(|facts| facts.allows(Action::Edit))
    }

    /// `room`'s document `name` as one update (empty if the room has none of that name), for
    /// a page opening it.
    pub fn doc_state(&self, room: RoomId, name: &str) -> Option<Vec<u8>> {
        let docs = self.docs.get(&room)?;
        Some(
            docs.documents
                .document(name)
                .map(|doc| doc.compact())
                .unwrap_or_default(),
        )
    }

    /// The names of `room`'s documents, in order.
    pub fn doc_names(&self, room: RoomId) -> Vec<String> {
        self.docs
            .get(&room)
            .map(|docs| {
                docs.documents
                    .iter()
                    .map(|(name, _)| name.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of `room`'s document `name`, if it has one.
    pub fn doc_text(&self, room: RoomId, name: &str) -> Option<String> {
        Some(self.docs.get(&room)?.documents.document(name)?.text())
    }

    /// A member's edit, its author proven to be allowed: applied, and passed to the pages if
    /// it changed the document.
    pub(super) fn deliver_doc_update(
        &mut self,
        room: RoomId,
        author: P,
        name: String,
        update: Vec<u8>,
    ) {
        let now = self.now;
        let Some(docs) = self.docs.get_mut(&room) else {
            return;
        };
        match docs
            .documents
            .handle_update(now, &author, Access::Edit, &name, &update)
        {
            Ok(applied) => {
                if applied.changed {
                    docs.changed(now, &name);
                }
                // One that waits for an earlier update goes to the pages too: when the earlier
                // one arrives (gossip does not keep an author's order), this node integrates
                // both, and the pages, which wait the same way, need both.
                if applied.changed || applied.waiting {
                    self.outputs
                        .push_back(NodeOutput::DocUpdated(DocEdit { room, name, update }));
                }
            }
            Err(e) => {
                self.counters.doc_updates_refused += 1;
                tracing::info!(room = %room.fmt_short(), doc = %name, ?author, error = %e, "refused a document update");
            }
        }
    }

    /// Hands every document changed since it was last stored to the store now (the node
    /// stops): [`NodeOutput::StoreDoc`]s follow.
    pub fn store_all_docs(&mut self) {
        self.store_docs(self.now, Unstored::All);
    }

    /// Hands the changed documents `which` names to the store.
    pub(super) fn store_docs(&mut self, now: Instant, which: Unstored) {
        for (room, docs) in &mut self.docs {
            if matches!(which, Unstored::Of(r) if r != *room) {
                continue;
            }
            let due: Vec<String> = docs
                .unstored
                .iter()
                .filter(|(_, at)| which != Unstored::Due || **at <= now)
                .map(|(name, _)| name.clone())
                .collect();
            for name in due {
                // A copy compacted while changes wait for an earlier update can reload with
                // them stuck: wait for the gap to close (a round of catching up closes it),
                // unless the node is leaving the room or stopping.
                let waiting = docs
                    .documents
                    .document(&name)
                    .is_some_and(chroom_docs::Document::is_waiting);
                if waiting && which == Unstored::Due {
                    docs.unstored.insert(name, now + STORE_INTERVAL);
                    continue;
                }
                docs.unstored.remove(&name);
                if let Some(doc) = docs.documents.document(&name) {
                    self.outputs.push_back(NodeOutput::StoreDoc {
                        room: *room,
                        name,
                        compacted: doc.compact(),
                    });
                }
            }
        }
    }

    pub(super) fn docs_store_due(&self) -> Option<Instant> {
        self.docs.values().filter_map(RoomDocs::store_due).min()
    }
}

/// Which changed documents go to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unstored {
    /// Those whose time came.
    Due,
    /// All of a room's (this node leaves it).
    Of(RoomId),
    /// All (this node stops).
    All,
}

/// Why an edit of this node's user was refused, in its words.
impl From<UpdateError> for CommandError {
    fn from(e: UpdateError) -> Self {
        Self::Doc(e.to_string())
    }
}

/// The rooms' documents, kept while this node is present.
pub(super) type RoomsDocs<P> = HashMap<RoomId, RoomDocs<P>>;
