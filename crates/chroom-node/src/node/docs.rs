//! The room's shared documents between the node and its pages: a page opens a document (its
//! state, whether it may edit, the room's other documents), sends its edits, and hears the
//! members' edits. Deciding which edits count is the core's (`chroom_room::node`).

use chroom_net::PeerId;
use chroom_types::RoomId;
use tokio::sync::{broadcast, oneshot};

use super::handle::{Command, NodeHandle};

pub use chroom_room::node::DocEdit;

/// Where a member's selection is in one of a room's documents.
pub type DocCursor = chroom_room::node::DocCaret<PeerId>;

/// What members do in a room's documents, for the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocEvent {
    /// A member's edit changed a document.
    Edit(DocEdit),
    /// A member's selection moved.
    Cursor(DocCursor),
}

/// A document as a page opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedDoc {
    /// The whole document as one Yjs update (empty if the room has none of that name yet).
    pub state: Vec<u8>,
    /// This node's user may edit it (as far as the registry's known answer goes).
    pub editable: bool,
    /// The names of the room's documents.
    pub names: Vec<String>,
}

/// Commands about documents, carried to the node actor.
#[derive(Debug)]
pub(crate) enum DocCommand {
    Open {
        room: RoomId,
        name: String,
        reply: oneshot::Sender<Option<OpenedDoc>>,
    },
    Edit {
        room: RoomId,
        name: String,
        update: Vec<u8>,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
    Text {
        room: RoomId,
        name: String,
        reply: oneshot::Sender<Option<String>>,
    },
    Cursor {
        room: RoomId,
        name: String,
        anchor: Vec<u8>,
        head: Vec<u8>,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
}

impl NodeHandle {
    /// `room`'s document `name` for a page: `None` if this node is not present in the room.
    pub async fn open_doc(&self, room: RoomId, name: &str) -> anyhow::Result<Option<OpenedDoc>> {
        let name = name.to_owned();
        self.ask(|reply| Command::Doc(DocCommand::Open { room, name, reply }))
            .await
    }

    /// This node's user's edit of `room`'s document `name`: applied here and published to the
    /// room, or refused with the reason (read-only, too large, too fast, the document full).
    pub async fn edit_doc(&self, room: RoomId, name: &str, update: Vec<u8>) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.ask(|done| {
            Command::Doc(DocCommand::Edit {
                room,
                name,
                update,
                done,
            })
        })
        .await?
    }

    /// The text of `room`'s document `name` as this node holds it.
    pub async fn doc_text(&self, room: RoomId, name: &str) -> anyhow::Result<Option<String>> {
        let name = name.to_owned();
        self.ask(|reply| Command::Doc(DocCommand::Text { room, name, reply }))
            .await
    }

    /// Where this node's user's selection is in `room`'s document `name`, for the members'
    /// pages (not stored; a move faster than members take is dropped, the next one counts).
    pub async fn move_doc_cursor(
        &self,
        room: RoomId,
        name: &str,
        anchor: Vec<u8>,
        head: Vec<u8>,
    ) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.ask(|done| {
            Command::Doc(DocCommand::Cursor {
                room,
                name,
                anchor,
                head,
                done,
            })
        })
        .await?
    }

    /// Members' edits and carets, from now on. Each call gives an independent receiver.
    pub fn doc_events(&self) -> broadcast::Receiver<DocEvent> {
        self.doc_events.subscribe()
    }
}
