//! One shared document: a yrs `Doc` holding the shared text, with its size kept in check.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use thiserror::Error;
use tracing::{debug, error};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, TextRef, Transact, Update,
};

use crate::scan;

/// The name of the shared text in every document: the page's yjs must use the same
/// (`ydoc.getText("text")`).
pub const TEXT_NAME: &str = "text";

/// How much an update can grow a document's encoded state per byte of the update, at worst.
/// A delete range of two bytes can split a string in three, adding two struct headers of up to
/// ~25 bytes each; inserts grow it by less. Below the document cap by this margin an update is
/// applied at once; nearer, the document is measured and the update undone if it went over.
const GROWTH_PER_UPDATE_BYTE: usize = 32;

/// The client id of a node's own copy. It never authors edits, so its id never appears in
/// any update; a fixed one keeps the core free of global randomness.
const OWN_CLIENT_ID: u64 = 0;

/// What applying an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The document changed (an update already applied, or one that only waits, changes
    /// nothing). Only a change needs passing on or storing.
    pub changed: bool,
    /// Some changes wait for earlier updates this document has not seen (they were lost or
    /// are late): a state vector exchange with a member repairs the gap.
    pub waiting: bool,
}

/// Why an update was refused. A refused update leaves the document as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Applying it would take the document past its size cap.
    #[error("the document would grow to {would_be} bytes, over its cap of {max} bytes")]
    DocumentFull {
        /// The encoded size the document would have had.
        would_be: usize,
        /// The cap ([`crate::DocumentsConfig::max_document_bytes`]).
        max: usize,
    },
    /// The document name is not one this store accepts.
    #[error(transparent)]
    InvalidName(#[from] crate::NameError),
    /// The bytes are not a v1 update this store accepts.
    #[error("malformed update: {0}")]
    Malformed(#[from] MalformedUpdate),
    /// The author has sent more than its rate allows; it may send again after `retry_after`.
    #[error("too many updates from this author: retry in {retry_after:?}")]
    RateLimited {
        /// When the author's bucket holds enough for this update again.
        retry_after: std::time::Duration,
    },
    /// The author may only read the room's documents.
    #[error("the author may only read this document")]
    ReadOnly,
    /// The update alone is larger than an update may be.
    #[error("the update has {len} bytes, over the cap of {max} bytes per update")]
    TooLarge {
        /// The update's length.
        len: usize,
        /// The cap ([`crate::DocumentsConfig::max_update_bytes`]).
        max: usize,
    },
    /// The update would open a document and the room holds as many as it may.
    #[error("the room already holds its cap of {max} documents")]
    TooManyDocuments {
        /// The cap ([`crate::DocumentsConfig::max_documents`]).
        max: usize,
    },
}

/// Why bytes are not an update this store applies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MalformedUpdate {
    /// A client id past 53 bits (yjs makes 32-bit ones).
    #[error("client id past 53 bits")]
    ClientTooLarge,
    /// A clock past 2^31 - 1 (yrs computes with clocks as `i32`).
    #[error("clock past 31 bits")]
    ClockOverflow,
    /// yrs refused to decode it (bad UTF-8, a number out of range, ...).
    #[error("undecodable: {0}")]
    Decode(String),
    /// An item's origins cannot be real: the same character on both sides, or a later
    /// change of its own author.
    #[error("forged origins")]
    ForgedOrigin,
    /// yrs refused to apply it: an item names as its parent an item that holds no type.
    #[error("unappliable: {0}")]
    Integrate(String),
    /// The legacy JSON content kind, which yjs no longer writes.
    #[error("legacy JSON content")]
    LegacyJson,
    /// Values nested deeper than this store walks.
    #[error("values nested deeper than {max} levels")]
    NestedTooDeep {
        /// The deepest nesting accepted.
        max: usize,
    },
    /// yrs panicked on it (a yrs bug; the document was restored).
    #[error("yrs panicked on it")]
    Panicked,
    /// A client's changes written twice in one update (yjs writes each once).
    #[error("a client written twice")]
    RepeatedClient,
    /// A subdocument: documents here hold no documents.
    #[error("subdocuments are not supported")]
    Subdocument,
    /// The bytes end before the update does.
    #[error("ends early")]
    Truncated,
    /// A string that is not UTF-8.
    #[error("a string is not UTF-8")]
    Utf8,
    /// An item of a content kind that does not exist.
    #[error("unknown content kind {0}")]
    UnknownContent(u8),
    /// A shared type that does not exist.
    #[error("unknown shared type {0}")]
    UnknownType(u8),
    /// A value of a kind that does not exist.
    #[error("unknown value kind {0}")]
    UnknownValue(u8),
}

/// Why bytes are not a state vector.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StateVectorError {
    /// The bytes are not an encoded (v1) state vector.
    #[error("malformed state vector: {0}")]
    Malformed(String),
}

/// One named document of a room: the CRDT state of its shared text.
///
/// Changed only through [`crate::Documents`], which checks who may edit and how much.
pub struct Document {
    doc: Doc,
    text: TextRef,
    /// The encoded size when last measured (compacted, pending updates included).
    measured_bytes: usize,
    /// Bytes of updates applied since: the encoded size is at most about
    /// [`GROWTH_PER_UPDATE_BYTE`] times this more than `measured_bytes`.
    unmeasured_bytes: usize,
    /// Changes waiting for earlier updates may include items naming their parent by id.
    parent_by_id_waiting: bool,
}

impl Document {
    /// An empty document.
    pub(crate) fn new() -> Self {
        let mut options =
            Options::with_guid_and_client_id(TEXT_NAME.into(), ClientID::new(OWN_CLIENT_ID));
        // Positions count UTF-16 code units, as in the page's yjs.
        options.offset_kind = OffsetKind::Utf16;
        let doc = Doc::with_options(options);
        let text = doc.get_or_insert_text(TEXT_NAME);
        let mut document = Self {
            doc,
            text,
            measured_bytes: 0,
            unmeasured_bytes: 0,
            parent_by_id_waiting: false,
        };
        document.measured_bytes = document.compact().len();
        document
    }

    /// Applies a v1 update unless it is malformed or would take the document past
    /// `max_bytes`; a refused update leaves the document as it was.
    pub(crate) fn apply(
        &mut self,
        update: &[u8],
        max_bytes: usize,
    ) -> Result<Applied, UpdateError> {
        let shape = scan::check_update_v1(update)?;
        let decoded = decode_update(update)?;
        // Items naming their parent by id are what makes yrs stop half way through an update
        // (an id that holds no type), and, waiting for an earlier update, they can integrate
        // later into a state whose own encoding yrs then refuses to load (the fuzzer found one
        // under a character). Such updates, and any update while such items wait, are applied
        // on a state that can be restored, and kept only if their result loads.
        let risky = shape.parent_by_id || (self.parent_by_id_waiting && self.is_waiting());
        let headroom = |document: &Self| {
            let bound = document.unmeasured_bytes.saturating_add(update.len());
            document
                .measured_bytes
                .saturating_add(bound.saturating_mul(GROWTH_PER_UPDATE_BYTE))
                <= max_bytes
        };
        if !risky && headroom(self) {
            self.unmeasured_bytes += update.len();
            return self.integrate(decoded, None);
        }
        // Near the cap, or risky: measure, and keep the state to go back to.
        let snapshot = self.compact();
        self.measured_bytes = snapshot.len();
        self.unmeasured_bytes = 0;
        if !risky && headroom(self) {
            self.unmeasured_bytes = update.len();
            return self.integrate(decoded, Some(&snapshot));
        }
        let applied = self.integrate(decoded, Some(&snapshot))?;
        let state = self.compact();
        if state.len() > max_bytes {
            debug!(
                would_be = state.len(),
                max_bytes, "update refused: document full"
            );
            self.restore(&snapshot);
            return Err(UpdateError::DocumentFull {
                would_be: state.len(),
                max: max_bytes,
            });
        }
        if risky {
            // The loaded copy only tells: yrs reintegrating waiting changes from an encoding
            // is less complete than in memory (see `is_waiting`), so the copy is not kept.
            let loaded = Self::new();
            let result = decode_update(&state).and_then(|update| loaded.try_integrate(update));
            if let Err(error) = result {
                debug!(%error, "update refused: its result does not load");
                self.restore(&snapshot);
                return Err(error.into());
            }
            self.parent_by_id_waiting = applied.waiting;
        }
        self.measured_bytes = state.len();
        Ok(applied)
    }

    /// Integrates a decoded update. If yrs fails or panics half way, the document goes back to
    /// `snapshot`, or without one is rebuilt from what it holds.
    fn integrate(
        &mut self,
        update: Update,
        snapshot: Option<&[u8]>,
    ) -> Result<Applied, UpdateError> {
        let error = match self.try_integrate(update) {
            Ok(applied) => return Ok(applied),
            Err(error) => error,
        };
        match snapshot {
            Some(snapshot) => self.restore(snapshot),
            None => {
                // Only items naming a parent by id make yrs fail, and those take the path with
                // a snapshot; a panic is a yrs bug. Keep what the document holds, rebuilt so
                // no half-made structure stays.
                error!(%error, "yrs failed applying an update without a snapshot; rebuilding");
                match catch_unwind(AssertUnwindSafe(|| self.compact())) {
                    Ok(state) => self.restore(&state),
                    Err(_) => error!("the document cannot be encoded after a yrs panic"),
                }
            }
        }
        Err(error.into())
    }

    /// Integrates a decoded update, turning a yrs error or panic into an error. On error the
    /// document may hold part of the update.
    fn try_integrate(&self, update: Update) -> Result<Applied, MalformedUpdate> {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            let result = txn.apply_update(update);
            let store = txn.store();
            let waiting = store.pending_update().is_some() || store.pending_ds().is_some();
            result.map(|()| Applied {
                changed: txn.has_changes(),
                waiting,
            })
        }));
        match outcome {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(error)) => Err(MalformedUpdate::Integrate(error.to_string())),
            Err(_) => Err(MalformedUpdate::Panicked),
        }
    }

    /// Replaces the document by the state `snapshot` encodes (this document's own encoding).
    /// Changes that waited come back less completely than they were held (see
    /// [`Self::is_waiting`]); the next state vector exchange fetches what stays stuck.
    fn restore(&mut self, snapshot: &[u8]) {
        let mut fresh = Self::new();
        let result = decode_update(snapshot).and_then(|update| fresh.try_integrate(update));
        if let Err(error) = result {
            // Its own encoding always decodes; should yrs disagree, the document that failed is
            // still better than nothing.
            error!(%error, "a document's own encoding does not load back; keeping it");
            return;
        }
        fresh.measured_bytes = snapshot.len();
        fresh.parent_by_id_waiting = self.parent_by_id_waiting;
        *self = fresh;
    }

    /// The document's state vector (v1): what a member sends to ask for what it lacks
    /// (SyncStep1).
    pub fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// What this document holds that a remote state vector does not cover, as one v1 update
    /// (the answer to SyncStep1: SyncStep2). Includes changes waiting for earlier updates,
    /// as yjs does.
    pub fn diff(&self, remote_state_vector: &[u8]) -> Result<Vec<u8>, StateVectorError> {
        let decoded = decode_state_vector(remote_state_vector)?;
        Ok(self.doc.transact().encode_state_as_update_v1(&decoded))
    }

    /// Whether a remote state vector covers insertions this document lacks: the member holds
    /// something this node should ask it for. (A state vector counts insertions only: what a
    /// member deleted shows in a diff, not here.)
    pub fn lacks(&self, remote_state_vector: &[u8]) -> Result<bool, StateVectorError> {
        let remote = decode_state_vector(remote_state_vector)?;
        let own = self.doc.transact().state_vector();
        Ok(remote
            .iter()
            .any(|(client, clock)| *clock > own.get(client)))
    }

    /// Whether this document holds insertions a remote state vector does not cover: the
    /// member lacks something this node can send it.
    pub fn ahead_of(&self, remote_state_vector: &[u8]) -> Result<bool, StateVectorError> {
        let remote = decode_state_vector(remote_state_vector)?;
        let own = self.doc.transact().state_vector();
        Ok(own
            .iter()
            .any(|(client, clock)| *clock > remote.get(client)))
    }

    /// The whole document as one v1 update: what the store keeps, and what
    /// [`crate::Documents::load`] takes back. Deleted text is gone from it (yrs collects it);
    /// what remains of deletions is their ids.
    pub fn compact(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Whether some changes wait for earlier updates that have not arrived (lost or late):
    /// a state vector exchange with a member fetches them. Store [`Self::compact`] when
    /// nothing waits where possible: yrs 0.28 loads waiting changes back less completely than
    /// it holds them in memory (out-of-order runs of one author can stay stuck until the next
    /// exchange).
    pub fn is_waiting(&self) -> bool {
        self.doc.transact().store().pending_update().is_some()
    }

    /// The shared text as it reads now.
    pub fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// The document's encoded size in bytes (its compacted form). Computed afresh: it costs as
    /// much as [`Self::compact`].
    pub fn encoded_len(&self) -> usize {
        self.compact().len()
    }
}

/// A member's state vector, checked before yrs decodes it.
fn decode_state_vector(bytes: &[u8]) -> Result<StateVector, StateVectorError> {
    scan::check_state_vector_v1(bytes)
        .map_err(|error| StateVectorError::Malformed(error.to_string()))?;
    catch_unwind(|| StateVector::decode_v1(bytes))
        .map_err(|_| StateVectorError::Malformed("yrs panicked".into()))?
        .map_err(|error| StateVectorError::Malformed(error.to_string()))
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("measured_bytes", &self.measured_bytes)
            .field("unmeasured_bytes", &self.unmeasured_bytes)
            .finish_non_exhaustive()
    }
}

/// Decodes a v1 update that passed the walk; yrs's own refusals become errors, and so would
/// a panic.
fn decode_update(update: &[u8]) -> Result<Update, MalformedUpdate> {
    catch_unwind(|| Update::decode_v1(update))
        .map_err(|_| MalformedUpdate::Panicked)?
        .map_err(|error| MalformedUpdate::Decode(error.to_string()))
}
