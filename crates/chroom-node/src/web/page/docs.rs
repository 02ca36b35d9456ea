//! The page's shared documents: opening one, the page's edits to the node, members' edits to
//! the page. Updates travel base64 in the JSON messages; the node checks them as it checks a
//! member's (the core's `edit_doc`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chroom_proto::page::ServerMessage;

use super::{Closed, PageSession};
use crate::node::{DocCursor, DocEdit, DocEvent};

impl PageSession {
    pub(super) async fn open_doc(&mut self, name: &str) -> Result<(), Closed> {
        let Some(room) = self.room.clone() else {
            return self.error("join a room before opening its documents").await;
        };
        if let Err(reason) = chroom_types::check_doc_name(name) {
            return self.error(reason).await;
        }
        let opened = match self.node.open_doc(room.id(), name).await {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                return self
                    .error("join the room before opening its documents")
                    .await;
            }
            Err(e) => return self.error(format!("{e:#}")).await,
        };
        self.open_docs.insert(name.to_owned());
        self.send(&ServerMessage::Doc {
            room: room.as_str().to_owned(),
            name: name.to_owned(),
            state: STANDARD.encode(&opened.state),
            editable: opened.editable,
            names: opened.names,
        })
        .await
    }

    pub(super) async fn edit_doc(&mut self, name: &str, update: &str) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref().map(|r| r.id()) else {
            return self.error("join a room before editing its documents").await;
        };
        let refused = match STANDARD.decode(update) {
            Err(e) => format!("an edit is a base64 Yjs update: {e}"),
            Ok(update) => match self.node.edit_doc(room, name, update).await {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            },
        };
        // The page applied its edit already: it starts over from the node's copy.
        self.send(&ServerMessage::DocRefused {
            name: name.to_owned(),
            message: refused,
        })
        .await?;
        self.open_doc(name).await
    }

    pub(super) async fn move_doc_cursor(
        &mut self,
        name: &str,
        anchor: &str,
        head: &str,
    ) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref().map(|r| r.id()) else {
            return self.error("join a room before editing its documents").await;
        };
        let (Ok(anchor), Ok(head)) = (STANDARD.decode(anchor), STANDARD.decode(head)) else {
            return self
                .error("a caret is two base64 Yjs relative positions")
                .await;
        };
        match self.node.move_doc_cursor(room, name, anchor, head).await {
            Ok(()) => Ok(()),
            // Readers have no caret to show: nothing to tell the page.
            Err(e) => {
                tracing::debug!(error = %e, "caret not told");
                Ok(())
            }
        }
    }

    pub(super) async fn forward_doc_event(&mut self, event: DocEvent) -> Result<(), Closed> {
        match event {
            DocEvent::Edit(edit) => self.forward_doc_edit(edit).await,
            DocEvent::Cursor(cursor) => self.forward_doc_cursor(cursor).await,
        }
    }

    /// A member's caret, for the page if it shows that document.
    async fn forward_doc_cursor(&mut self, cursor: DocCursor) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref() else {
            return Ok(());
        };
        if room.id() != cursor.room || !self.open_docs.contains(&cursor.name) {
            return Ok(());
        }
        let room = room.as_str().to_owned();
        self.send(&ServerMessage::DocCursor {
            room,
            name: cursor.name,
            peer_id: cursor.author.to_base58(),
            account: cursor.account.map(|a| a.to_string()),
            anchor: STANDARD.encode(&cursor.anchor),
            head: STANDARD.encode(&cursor.head),
        })
        .await
    }

    /// A member's edit, for the page if it shows that document.
    async fn forward_doc_edit(&mut self, edit: DocEdit) -> Result<(), Closed> {
        let Some(room) = self.room.as_ref() else {
            return Ok(());
        };
        if room.id() != edit.room || !self.open_docs.contains(&edit.name) {
            return Ok(());
        }
        let room = room.as_str().to_owned();
        self.send(&ServerMessage::DocUpdate {
            room,
            name: edit.name,
            update: STANDARD.encode(&edit.update),
        })
        .await
    }

    /// Edits the page missed (the node's queue to it overflowed): it starts over from the
    /// node's copy of each document it shows.
    pub(super) async fn reopen_docs(&mut self) -> Result<(), Closed> {
        let names: Vec<String> = self.open_docs.iter().cloned().collect();
        for name in names {
            self.open_doc(&name).await?;
        }
        Ok(())
    }
}
