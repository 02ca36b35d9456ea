//! Carrying out the core's outputs: each becomes IO on the network, the media actor, the
//! store or the registry.

use super::*;
use crate::node::DocEvent;

impl NodeActor {
    /// Carries out every output of the core.
    pub(super) fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                NodeOutput::Session(output) => self.carry_out_session(output),
                NodeOutput::Chat(line) => {
                    tracing::info!(room = %line.room.fmt_short(), author = %short(&line.author), "chat message");
                    // Questions are for the hosts now, not the room's chat history.
                    if !line.question {
                        keep_chat(&self.parts.store, &line);
                    }
                    // No receiver is fine: nobody is reading chat on this node.
                    let _ = self.parts.chat.send(line);
                }
                NodeOutput::FetchFile {
                    room,
                    from,
                    account,
                    offered_at_unix_ms,
                    offer,
                } => {
                    let files = &self.parts.files;
                    files.offered(room, (from, account), offered_at_unix_ms, offer);
                }
                NodeOutput::Gossip { id, verdict } => self.report_gossip(id, verdict),
                NodeOutput::Moderated(notice) => {
                    tracing::info!(room = %notice.room.fmt_short(), target = %short(&notice.target), action = ?notice.action, by = %short(&notice.by), "host decision");
                    // Nobody listening is fine: no page is open.
                    let _ = self.parts.notices.send(notice);
                }
                NodeOutput::OfferFilesAgain { room } => {
                    let (files, results, own) =
                        (self.parts.files.clone(), self.results.clone(), self.local);
                    tokio::spawn(async move {
                        match files.own_offers(room, own).await {
                            Ok(offers) if !offers.is_empty() => {
                                let _ = results.send(StepResult::OwnFiles { room, offers }).await;
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot read shared files"),
                        }
                    });
                }
                NodeOutput::OwnAccess { id, result } => {
                    if let Some(reply) = self.own_checks.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                NodeOutput::PauseFiles { room } => self.parts.files.pause(room),
                NodeOutput::Publish { room, say } => self.publish(room, say, None),
                NodeOutput::ResumeFiles { room } => self.parts.files.resume(room),
                NodeOutput::SendTree {
                    peer,
                    room,
                    message,
                } => self.send_tree(peer, room, message),
                NodeOutput::ServeFile { request } => {
                    if let Some(Inbound::File {
                        reply,
                        room,
                        file,
                        part,
                    }) = self.inbound.remove(&request)
                    {
                        self.parts.files.serve(reply, room, file, part);
                    }
                }
                NodeOutput::Studio { links } => {
                    self.outbox.order(MediaOrder::Studio(links));
                }
                NodeOutput::Silence { link, silenced } => {
                    self.outbox.order(MediaOrder::Silence { link, silenced });
                }
                NodeOutput::GrantRelay {
                    request,
                    peer,
                    kbps,
                } => {
                    if let Some(Inbound::Relay { reply }) = self.inbound.remove(&request) {
                        self.grant_relay(reply, peer, kbps);
                    }
                }
                // No receiver is fine: no page is open.
                NodeOutput::DocUpdated(edit) => {
                    let _ = self.parts.doc_events.send(DocEvent::Edit(edit));
                }
                NodeOutput::DocCursor(caret) => {
                    let _ = self.parts.doc_events.send(DocEvent::Cursor(caret));
                }
                NodeOutput::PullDoc { room, peer, pull } => self.pull_doc(room, peer, pull),
                NodeOutput::ServeDocPart { request } => self.serve_doc_part(request),
                NodeOutput::AskRoomKey { room, peer } => self.ask_room_key(room, peer),
                NodeOutput::ServeRoomKey { request, key } => self.serve_room_key(request, key),
                NodeOutput::StoreDoc {
                    room,
                    name,
                    compacted,
                } => self.store_doc(room, &name, &compacted),
                NodeOutput::SeekRelay { room } => {
                    let (net, media) = (self.parts.net.clone(), self.parts.media.clone());
                    let results = self.results.clone();
                    self.steps.spawn(async move {
                        let found = relay::seek(net, media, room).await;
                        let _ = results.send(StepResult::RelaySought { found }).await;
                    });
                }
                _ => {}
            }
        }
    }

    pub(super) fn carry_out_session(&mut self, output: Output<PeerId>) {
        match output {
            Output::FindPublishers { room } => {
                let (net, results) = (self.parts.net.clone(), self.results.clone());
                self.steps.spawn(async move {
                    // Act on each answer as it comes rather than after the whole query.
                    match net.stream_providers(room, Presence::Publisher).await {
                        Ok(mut found) => {
                            while let Some(peers) = found.recv().await {
                                let _ = results.send(StepResult::Publishers { room, peers }).await;
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "provider lookup failed"),
                    }
                    let _ = results.send(StepResult::LookupFinished { room }).await;
                });
            }
            Output::Subscribe {
                id,
                room,
                peer,
                kinds,
                send,
                mode,
            } => {
                let (net, media, results, own) = self.signaling();
                self.steps.spawn(async move {
                    let (result, binding) =
                        subscribe(&net, &media, (room, peer), (&kinds, &send), mode, own).await;
                    let subscribed = StepResult::Subscribed {
                        id,
                        peer,
                        binding,
                        result,
                    };
                    let _ = results.send(subscribed).await;
                });
            }
            Output::AcceptSubscriber {
                request,
                room,
                peer,
                mode,
            } => {
                let Some(Inbound::Subscribe { reply, offer_sdp }) = self.inbound.remove(&request)
                else {
                    return;
                };
                let (net, media, results, own) = self.signaling();
                self.steps.spawn(async move {
                    let offer = (reply, offer_sdp);
                    if let Some(link) = accept(&net, &media, offer, peer, mode, own).await {
                        let linked = StepResult::SubscriberLinked { room, peer, link };
                        let _ = results.send(linked).await;
                    }
                });
            }
            Output::Refuse {
                request,
                peer,
                error,
            } => {
                let Some(inbound) = self.inbound.remove(&request) else {
                    return;
                };
                tracing::warn!(%peer, %error, "refused signaling request");
                refuse(&self.parts.net, inbound.reply(), error);
            }
            Output::AckTree { request, .. } => {
                if let Some(inbound) = self.inbound.remove(&request) {
                    let net = self.parts.net.clone();
                    tokio::spawn(async move {
                        let _ = net.respond(inbound.reply(), SignalResponse::Ack).await;
                    });
                }
            }
            Output::Forward {
                upstream,
                downstream,
                version,
            } => self.outbox.order(MediaOrder::Forward {
                upstream,
                downstream,
                version,
            }),
            Output::LookupAccess { room, account } => match &self.parts.registry {
                Some(registry) => registry.lookup(room, account),
                None => tracing::error!("access lookup without a registry: a bug"),
            },
            Output::CloseLink { link } => self.outbox.order(MediaOrder::Close(link)),
            Output::Hold { link, held } => self.outbox.order(MediaOrder::Hold { link, held }),
            Output::LearnAccount { peer } => self.say_hello(peer),
            Output::Event(event) => log_room_event(&event),
            _ => {}
        }
    }

    /// What a spawned signaling step needs: the network, the media actor, where to report, and
    /// this node's binding to show.
    fn signaling(
        &mut self,
    ) -> (
        NetHandle,
        MediaHandle,
        mpsc::Sender<StepResult>,
        Option<IdentityBinding>,
    ) {
        let own = self.own_binding();
        (
            self.parts.net.clone(),
            self.parts.media.clone(),
            self.results.clone(),
            own,
        )
    }

    pub(super) fn report_gossip(&mut self, id: GossipId, verdict: GossipVerdict) {
        let Some(message) = self.gossip.remove(&id) else {
            return;
        };
        let acceptance = match verdict {
            GossipVerdict::Deliver => GossipAcceptance::Accept,
            GossipVerdict::Reject(error) => {
                tracing::warn!(target: "chroom::_events::gossip_rejected", reason = %error, "rejected room message");
                GossipAcceptance::Reject
            }
            GossipVerdict::Ignore(reason) => {
                tracing::debug!(%reason, "ignored room message");
                GossipAcceptance::Ignore
            }
        };
        let net = self.parts.net.clone();
        tokio::spawn(async move { net.report_message(message, acceptance).await });
    }

    /// Sends a tree message and reports how it fared.
    pub(super) fn send_tree(
        &mut self,
        peer: PeerId,
        room: RoomId,
        message: chroom_overlay::Message<PeerId>,
    ) {
        let Some(message) = tree_to_nodes(message) else {
            tracing::warn!(peer = %short(&peer), "tree message names a node without an ed25519 key");
            let delivery = TreeDelivery::Misanswered;
            return self
                .core
                .handle_tree_delivery(Instant::now(), peer, room, delivery);
        };
        let (net, results) = (self.parts.net.clone(), self.results.clone());
        tokio::spawn(async move {
            let request = SignalRequest::Tree(chroom_proto::TreeMessage { room, message });
            let delivery = match net.request(peer, request).await {
                Ok(SignalResponse::Ack) => TreeDelivery::Acknowledged,
                Ok(SignalResponse::Error(error)) => TreeDelivery::Refused(error),
                Ok(other) => {
                    tracing::debug!(peer = %short(&peer), ?other, "unexpected answer to a tree message");
                    TreeDelivery::Misanswered
                }
                Err(e) => {
                    tracing::debug!(peer = %short(&peer), error = %e, "tree message not delivered");
                    TreeDelivery::Unreachable
                }
            };
            let sent = StepResult::TreeSent {
                peer,
                room,
                delivery,
            };
            let _ = results.send(sent).await;
        });
    }
}

impl NodeActor {
    /// Opens the allocation the core granted `peer` and answers its request with it; a
    /// failure is answered as such and frees the budget again.
    fn grant_relay(&mut self, reply: SignalReplyId, peer: PeerId, kbps: u32) {
        let (net, media, results) = (
            self.parts.net.clone(),
            self.parts.media.clone(),
            self.results.clone(),
        );
        self.steps.spawn(async move {
            let (response, token) = match media.allocate_relay(kbps).await {
                Ok(grant) => {
                    let granted = chroom_proto::RelayGrant {
                        server: grant.server,
                        relayed: grant.relayed,
                        token: grant.token,
                        kbps,
                    };
                    (SignalResponse::Relay(granted), Some(grant.token))
                }
                Err(e) => {
                    tracing::warn!(peer = %short(&peer), error = %e, "relay allocation failed");
                    let error = SignalError::new(ErrorCode::Internal, e.to_string());
                    (SignalResponse::Error(error), None)
                }
            };
            let _ = net.respond(reply, response).await;
            let _ = results.send(StepResult::RelayOpened { peer, token }).await;
        });
    }
}

/// Keeps a chat line in the store, off the async threads (redb fsyncs on commit); a failure is
/// logged, the line was delivered anyway.
pub(super) fn keep_chat(store: &Arc<Store>, line: &ChatMessage) {
    let room = line.room;
    let stored = chroom_store::StoredChat {
        sent_at_unix_ms: line.sent_at_unix_ms,
        author: line.author.to_base58(),
        account: line.account,
        text: line.text.clone(),
    };
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.append_chat(room, &stored) {
            tracing::warn!(room = %room.fmt_short(), error = %e, "chat line not kept");
        }
    });
}
