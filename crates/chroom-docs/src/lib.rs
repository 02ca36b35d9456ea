//! Shared documents: a room's named Yjs documents, as a sans-IO core.
//!
//! Each room holds a few named [`Document`]s, each a [yrs](https://docs.rs/yrs) CRDT (the Rust
//! port of Yjs, byte-compatible with the page's npm `yjs`) whose shared text is named
//! [`TEXT_NAME`]. This crate owns what is decided about them:
//!
//! - **Edits**: [`Documents::handle_update`] takes an author's update (v1 bytes, as yjs
//!   makes them) and applies it only if the author may edit (the caller passes the room's
//!   verdict as [`Access`]), it fits the per-update cap, the author keeps to its rate (a token
//!   bucket; time is an input), the room has room for the document, and the document stays
//!   under its size cap. Malformed bytes are refused without a panic, including the ones yrs
//!   itself mishandles (a stack-exhausting nesting, a use-after-free, clock overflows: every
//!   update is walked before yrs decodes it, `scan.rs`). A refused update leaves the document
//!   as it was. An update applied before changes nothing ([`Applied::changed`]).
//! - **Sync**: state vectors and diffs (Yjs SyncStep1 → SyncStep2) for a member catching up
//!   or repairing updates lost in gossip, and the y-protocols message encoding
//!   ([`SyncMessage`]) so a page running y-protocols can speak the same bytes.
//! - **Storage**: [`Document::compact`] gives the whole document as one update (deleted text
//!   collected), [`Documents::load`] takes it back; [`Document::text`] reads the text and
//!   [`Document::encoded_len`] its size.
//!
//! It does not decide who may edit (the room's roles do), sign or verify updates, carry
//! them (gossip and signaling do), store them, or track who is editing where (awareness
//! stays between pages). `docs/DOCUMENTS.md` explains the choice of Yjs and the limits.
//!
//! # Run loop
//!
//! Every input returns its output: there are no timers and no queued messages, so there is
//! nothing to poll. The driver hands each arriving update in, passes on what changed, and
//! asks a member for what it lacks when updates are missing.
//!
//! ```no_run
//! use std::time::Instant;
//! use chroom_docs::{Access, Documents, DocumentsConfig, SyncMessage};
//!
//! # fn verdict(_: &u64) -> Access { Access::Edit }
//! # let (author, update) = (7u64, Vec::<u8>::new());
//! let mut docs: Documents<u64> = Documents::new(DocumentsConfig::default());
//! // 1. An edit arrives from the page or (signature checked) from the room's gossip.
//! match docs.handle_update(Instant::now(), &author, verdict(&author), "notes", &update) {
//!     // Pass it on to the room and the page; store the compacted document now and then.
//!     Ok(applied) if applied.changed => {
//!         let _stored = docs.document("notes").map(|doc| doc.compact());
//!     }
//!     // Something was lost on the way: catch up with a member (step 2).
//!     Ok(applied) if applied.waiting => {}
//!     Ok(_) => {}
//!     // Tell the page why (the error names the cap), or count it against the peer.
//!     Err(refused) => eprintln!("{refused}"),
//! }
//! // 2. Catching up (on joining, and now and then): send this to a member...
//! let ask = SyncMessage::SyncStep1 { state_vector: docs.state_vector("notes")? };
//! // ...which answers with what the state vector lacks; its answer is applied here.
//! let answer = docs.handle_sync_message(Instant::now(), &author, Access::Edit, "notes", &ask)?;
//! if let Some(SyncMessage::SyncStep2 { update }) = answer {
//!     docs.handle_sync_step2(Access::Edit, "notes", &update)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod document;
mod documents;
mod name;
mod rate;
mod scan;
mod sync;

#[cfg(test)]
mod tests;

pub use document::{Applied, Document, MalformedUpdate, StateVectorError, TEXT_NAME, UpdateError};
pub use documents::{Access, Documents, DocumentsConfig, SyncError};
pub use name::{DocName, MAX_NAME_BYTES, NameError};
pub use sync::{SyncMessage, SyncMessageError};
