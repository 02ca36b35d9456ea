//! The node actor's commands from the rest of the process (the handle).

use super::outputs::keep_chat;
use super::*;
use crate::node::{DocCommand, OpenedDoc};

impl NodeActor {
    pub(super) fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::CheckOwnAccess {
                room,
                action,
                reply,
            } => {
                let id = OwnCheckId(self.next_check);
                self.next_check += 1;
                self.own_checks.insert(id, reply);
                self.core.check_own_access(now, id, room, action);
            }
            Command::Join {
                room,
                participation,
                presence,
                done,
            } => {
                tracing::info!(room = %room.fmt_short(), ?participation, "taking part in room");
                let (joined, wait) = oneshot::channel();
                // Queued before what the core publishes on joining: the topic comes first.
                self.outbox.join_topic(room, presence, joined);
                let arriving = !self.core.is_present(room);
                self.core.join(now, unix_now_ms(), room, participation);
                if arriving && self.core.is_present(room) {
                    self.load_docs(room);
                }
                tokio::spawn(async move {
                    let result = match wait.await {
                        Ok(result) => result.map_err(Into::into),
                        Err(_) => Err(anyhow::anyhow!("node stopped")),
                    };
                    let _ = done.send(result);
                });
            }
            Command::Leave { room, done } => match self.core.leave(now, room) {
                Some(goodbye) => {
                    let (sent, wait) = oneshot::channel();
                    self.publish(room, goodbye, Some(sent));
                    tokio::spawn(async move {
                        let _ = wait.await;
                        let _ = done.send(());
                    });
                }
                None => {
                    let _ = done.send(());
                }
            },
            Command::Moderate {
                room,
                target,
                action,
                done,
            } => {
                if chroom_net::node_id_of(&target).is_none() {
                    let _ = done.send(Err(anyhow::anyhow!("{target} is not a Chroom node")));
                    return;
                }
                match self.core.moderate(now, room, target, action) {
                    Ok(say) => self.publish_then(room, say, done, false),
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Command::Cue { room, cue, done } => {
                match self.core.cue(now, unix_now_ms(), room, cue) {
                    // Taken here already; alone in the room, members arriving are told then.
                    Ok(say) => self.publish_then(room, say, done, true),
                    Err(e) => {
                        let _ = done.send(Err(e.into()));
                    }
                }
            }
            Command::Ask { room, text, done } => match self.core.ask(now, room, text) {
                Ok(say) => self.publish_then(room, say, done, false),
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                }
            },
            Command::SetDisplayName { name, done } => {
                let _ = done.send(self.core.set_display_name(name).map_err(Into::into));
            }
            Command::OfferFile { room, offer, done } => match self.core.offer_file(room, offer) {
                // Alone in the room: members arriving are offered it then.
                Ok(say) => self.publish_then(room, say, done, true),
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                }
            },
            Command::OwnSourceOpened { link } => self.core.handle_own_source_opened(link),
            Command::RoomStatus { room, reply } => {
                let _ = reply.send(self.core.room_status(room));
            }
            Command::Participants { room, reply } => {
                let _ = reply.send(self.core.participants(room));
            }
            Command::Rooms(reply) => {
                let _ = reply.send(self.room_reports());
            }
            Command::Receiving { room, reply } => {
                let _ = reply.send(self.core.session().media_links(room));
            }
            Command::SendChat { room, text, done } => self.send_chat(room, text, done),
            Command::Doc(command) => self.doc_command(now, command),
            Command::ShareScreen {
                room,
                sharing,
                done,
            } => {
                self.core.share_screen(room, sharing);
                let _ = done.send(());
            }
            Command::SignIn { binding, done } => {
                let _ = done.send(self.sign_in(binding));
            }
            Command::Stats(reply) => {
                let counters = self.core.counters().clone();
                let (receiving_links, sending_links) = self.parts.links.counts();
                let _ = reply.send(NodeStats {
                    receiving_links,
                    sending_links,
                    requests_refused: counters.requests_refused,
                    malformed_requests: counters.malformed_requests,
                    registry_stale: counters.registry_stale,
                    registry_unreachable_secs: self
                        .core
                        .session()
                        .registry_unreachable_since()
                        .map(|since| now.saturating_duration_since(since).as_secs()),
                    registry_cache_expired: self.core.session().registry_cache_expired(),
                    registry: self.parts.registry.as_ref().map(RegistryHandle::stats),
                    last_refusal: counters.last_refusal,
                    peers_with_accounts: self.core.peers_with_accounts(),
                    gossip_delivered: counters.gossip_delivered,
                    gossip_rejected: counters.gossip_rejected,
                    sealed_unread: counters.sealed_unread,
                    tree_attachments: counters.tree_attachments,
                    tree_messages_refused: counters.tree_messages_refused,
                    roots_refused: counters.roots_refused,
                    links_unverified: counters.links_unverified,
                    lookups_throttled: self.core.session().lookups_throttled(),
                    frames_dropped: self.parts.frames.dropped.load(Ordering::Relaxed),
                    relay: Default::default(),
                    bandwidth_estimates: Vec::new(),
                    camera_layers: Vec::new(),
                });
            }
            Command::Assignments { room, reply } => {
                let _ = reply.send(self.core.assignments(room));
            }
            Command::Tree { room, reply } => {
                let session = self.core.session();
                let _ = reply.send(TreePosition {
                    parent: session.tree_parent(room),
                    children: session.tree_children(room),
                });
            }
        }
    }

    /// Every room this node is in, for `chroom status` and `/metrics`.
    fn room_reports(&self) -> Vec<RoomReport> {
        let session = self.core.session();
        session
            .rooms()
            .map(|(room, participation)| {
                let members = self
                    .core
                    .participants(room)
                    .iter()
                    .filter(|member| !member.is_self)
                    .count();
                RoomReport {
                    room,
                    part: participation.name(),
                    members,
                    media_links: session.media_links(room).len(),
                    feeding: session.subscriber_count(room) + session.tree_children(room).len(),
                    tree_parent: session.tree_parent(room),
                }
            })
            .collect()
    }

    /// Publishes `say` and tells `done` how it went (`alone_is_fine`: nobody listening in the
    /// room is no failure).
    pub(super) fn publish_then(
        &mut self,
        room: RoomId,
        say: Say<PeerId>,
        done: oneshot::Sender<anyhow::Result<()>>,
        alone_is_fine: bool,
    ) {
        let (sent, wait) = oneshot::channel();
        self.publish(room, say, Some(sent));
        tokio::spawn(async move {
            let result = match wait.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(NetError::NobodyListening)) if alone_is_fine => Ok(()),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(anyhow::anyhow!("node stopped")),
            };
            let _ = done.send(result);
        });
    }

    fn doc_command(&mut self, now: Instant, command: DocCommand) {
        match command {
            DocCommand::Open { room, name, reply } => {
                let opened = self.core.doc_state(room, &name).map(|state| OpenedDoc {
                    state,
                    editable: self.core.may_edit(room),
                    names: self.core.doc_names(room),
                });
                let _ = reply.send(opened);
            }
            DocCommand::Edit {
                room,
                name,
                update,
                done,
            } => match self.core.edit_doc(now, room, &name, update) {
                // Alone in the room: members arriving catch up from this node's copy.
                Ok(say) => self.publish_then(room, say, done, true),
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                }
            },
            DocCommand::Text { room, name, reply } => {
                let _ = reply.send(self.core.doc_text(room, &name));
            }
            DocCommand::Cursor {
                room,
                name,
                anchor,
                head,
                done,
            } => match self.core.move_cursor(now, room, &name, anchor, head) {
                Ok(Some(say)) => self.publish_then(room, say, done, true),
                Ok(None) => {
                    let _ = done.send(Ok(()));
                }
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                }
            },
        }
    }

    /// Starts `room`'s documents from the copies this node stored. Read on the loop: a few
    /// documents of at most a few MiB, once per visit.
    fn load_docs(&mut self, room: RoomId) {
        match self.parts.store.room_docs(room) {
            Ok(stored) => self.core.handle_docs_loaded(room, stored),
            Err(e) => {
                tracing::warn!(room = %room.fmt_short(), error = %e, "stored documents unreadable")
            }
        }
    }

    pub(super) fn send_chat(
        &mut self,
        room: RoomId,
        text: String,
        done: oneshot::Sender<anyhow::Result<ChatMessage>>,
    ) {
        let line = ChatMessage {
            room,
            author: self.local,
            account: self.own_binding().map(|b| b.account),
            sent_at_unix_ms: unix_now_ms(),
            text: text.clone(),
            question: false,
        };
        let Some(bytes) = self.encode_own(room, Say::Chat { text }, line.sent_at_unix_ms) else {
            return;
        };
        let (sent, wait) = oneshot::channel();
        self.outbox.publish(room, bytes, Some(sent));
        let store = self.parts.store.clone();
        tokio::spawn(async move {
            let result = match wait.await {
                Ok(Ok(())) => {
                    keep_chat(&store, &line);
                    Ok(line)
                }
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(anyhow::anyhow!("node stopped")),
            };
            let _ = done.send(result);
        });
    }

    /// Adopts a binding the user's wallet signed (if the core lets this node change account)
    /// and tells connected peers.
    pub(super) fn sign_in(
        &mut self,
        binding: IdentityBinding,
    ) -> anyhow::Result<chroom_types::Account> {
        self.core.check_sign_in(binding.account)?;
        let account = chroom_registry::verify(&binding, &self.local.to_base58(), unix_now())?;
        tracing::info!(%account, expires_at_unix = binding.expires_at_unix, "signed in with a wallet");
        let wallet_until_unix = Some(binding.expires_at_unix);
        self.parts.identity = Some(OwnBinding::signed_elsewhere(binding));
        self.core.set_account(Some(account));
        self.parts.account.send_replace(Some(Acting {
            account,
            wallet_until_unix,
        }));
        let (net, results) = (self.parts.net.clone(), self.results.clone());
        tokio::spawn(async move {
            if let Ok(peers) = net.connected_peers().await {
                let _ = results.send(StepResult::Reintroduce { peers }).await;
            }
        });
        Ok(account)
    }
}
