//! The relay tree's media links: the receive link from this node's parent and the send links
//! to its children, as the tree places this node, and which packets go down them.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use chroom_proto::{ErrorCode, SignalError};
use chroom_types::{LinkId, LinkMode, RoomId};

use super::broadcast::{Upstream, UpstreamLink};
use super::{InboundId, LinkRole, Output, RoomEvent, RoomSession, SubscribeFailure, SubscribeId};

impl<P: Copy + Eq + Ord + Hash + Debug> RoomSession<P> {
    /// The result of a [`Output::Subscribe`] to a tree parent; false if `id` is not one.
    pub(super) fn tree_subscribe_result(
        &mut self,
        now: Instant,
        id: SubscribeId,
        result: &Result<LinkId, SubscribeFailure>,
    ) -> bool {
        let found = self.rooms.iter().find_map(|(room, state)| {
            let upstream = state.tree.as_ref()?.upstream?;
            (upstream.link == UpstreamLink::Subscribing(id)).then_some((*room, upstream.parent))
        });
        let Some((room, parent)) = found else {
            return false;
        };
        match result {
            Ok(link) => {
                let link = *link;
                self.record_link(now, link, room, LinkRole::TreeUpstream(parent));
                let Some(tree) = self.tree_mut(room) else {
                    return true;
                };
                tree.upstream = Some(Upstream {
                    parent,
                    link: UpstreamLink::Linked(link),
                });
                if let Some(old) = tree.retiring.take() {
                    self.close_tree_link(old);
                }
                self.emit(RoomEvent::Subscribed {
                    room,
                    peer: parent,
                    link,
                });
                self.update_forwarding(room);
                // Media from the parent is used once the parent is proven to carry the room.
                self.enforce_link(now, link);
            }
            Err(failure) => {
                self.emit(RoomEvent::SubscribeFailed {
                    room,
                    peer: parent,
                    failure: failure.clone(),
                });
                // No media from this parent: to the tree it is gone.
                if let Some(tree) = self.tree_mut(room) {
                    tree.upstream = None;
                    tree.overlay.handle_peer_disconnected(now, parent);
                }
                self.drain_tree(now, room);
            }
        }
        true
    }

    /// A subscribe request in a tree room: only the node's children get a link.
    pub(super) fn tree_subscribe_request(&mut self, request: InboundId, peer: P, room: RoomId) {
        let Some(tree) = self.rooms.get(&room).and_then(|s| s.tree.as_ref()) else {
            return;
        };
        if !tree.overlay.children().any(|c| c == peer) {
            let error = SignalError::new(
                ErrorCode::NotPublishing,
                format!(
                    "room {} is a broadcast: join its relay tree first",
                    room.fmt_short()
                ),
            );
            self.refuse(request, peer, error);
            return;
        }
        let mode = tree.downstream_mode;
        // The join was checked against the registry; the link is checked again as any link.
        self.outputs.push_back(Output::AcceptSubscriber {
            request,
            room,
            peer,
            mode,
        });
    }

    /// The driver opened a child's link; false if `room` has no tree.
    pub(super) fn tree_subscriber_linked(
        &mut self,
        now: Instant,
        room: RoomId,
        peer: P,
        link: LinkId,
    ) -> bool {
        let Some(tree) = self.tree_mut(room) else {
            return false;
        };
        if !tree.overlay.children().any(|c| c == peer) {
            // It left (or was pushed down) while its link was being set up.
            self.close_tree_link(link);
            return true;
        }
        if let Some(old) = tree.downstream.insert(peer, link) {
            self.close_tree_link(old);
        }
        self.emit(RoomEvent::SubscriberAdded { room, peer, link });
        self.update_forwarding(room);
        self.track_link(now, link, room, LinkRole::TreeDownstream(peer));
        true
    }

    /// Media stopped (`flowing` false) or came back (or began) on a tree parent's `link`: the
    /// overlay probes a silent parent, which is gone unless it says it repairs
    /// (`chroom-overlay`, `Overlay::handle_parent_silent`).
    pub(super) fn tree_link_media(&mut self, now: Instant, link: LinkId, flowing: bool) {
        let Some(&(room, LinkRole::TreeUpstream(_))) = self.links.get(&link) else {
            return;
        };
        let Some(tree) = self.tree_mut(room) else {
            return;
        };
        if tree.upstream.map(|u| u.link) != Some(UpstreamLink::Linked(link)) {
            return;
        }
        if flowing {
            tree.overlay.handle_parent_flowing();
        } else {
            tree.overlay.handle_parent_silent(now);
        }
        self.drain_tree(now, room);
    }

    /// A tree link closed: a lost parent or child is lost to the tree too.
    pub(super) fn tree_link_closed(
        &mut self,
        now: Instant,
        room: RoomId,
        role: LinkRole<P>,
        link: LinkId,
    ) {
        let Some(tree) = self.tree_mut(room) else {
            return;
        };
        match role {
            LinkRole::TreeUpstream(parent) => {
                if tree.retiring == Some(link) {
                    tree.retiring = None;
                    return;
                }
                let current = tree
                    .upstream
                    .is_some_and(|u| u.link == UpstreamLink::Linked(link));
                if current {
                    tree.upstream = None;
                    tree.overlay.handle_peer_disconnected(now, parent);
                    self.emit(RoomEvent::SubscriptionLost {
                        room,
                        peer: parent,
                        link,
                    });
                }
            }
            LinkRole::TreeDownstream(child) => {
                if tree.downstream.get(&child) == Some(&link) {
                    tree.downstream.remove(&child);
                    tree.overlay.handle_peer_disconnected(now, child);
                    self.emit(RoomEvent::SubscriberRemoved {
                        room,
                        peer: child,
                        link,
                    });
                    self.update_forwarding(room);
                }
            }
            LinkRole::Receiving(_) | LinkRole::Sending(_) => {}
        }
        self.drain_tree(now, room);
    }

    /// Tells the driver where the parent's packets go (relayers only).
    pub(super) fn update_forwarding(&mut self, room: RoomId) {
        let Some(tree) = self.rooms.get(&room).and_then(|s| s.tree.as_ref()) else {
            return;
        };
        if tree.upstream_mode != LinkMode::Packets {
            return;
        }
        let Some(Upstream {
            link: UpstreamLink::Linked(upstream),
            ..
        }) = tree.upstream
        else {
            return;
        };
        let downstream = tree.downstream.values().copied().collect();
        self.forward_version += 1;
        self.outputs.push_back(Output::Forward {
            upstream,
            downstream,
            version: self.forward_version,
        });
    }

    pub(super) fn close_tree_link(&mut self, link: LinkId) {
        self.forget_link(link);
        self.outputs.push_back(Output::CloseLink { link });
    }
}
