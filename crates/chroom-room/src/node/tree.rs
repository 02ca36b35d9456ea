//! Tree messages to each peer: sent one at a time so they arrive in order, and a peer that
//! stops acknowledging them is taken for gone.

use std::fmt::Debug;
use std::hash::Hash;

use super::*;

/// Most tree messages queued for one peer; a peer that stops acknowledging is dropped from the
/// tree long before this fills.
const MAX_TREE_QUEUE: usize = 256;
/// A tree peer that has not acknowledged a message in this long is gone (its process killed,
/// its network cut, which the transport notices only after its own, longer timeouts): a
/// parent stops counting a dead child, and stops offering its slots to joiners. Tree
/// messages are acknowledged when handled, at once; only a join and an acceptance may wait for
/// a registry lookup, and those have the overlay's own deadline.
pub(super) const TREE_ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Tree messages to one peer, sent one at a time so they arrive in order.
#[derive(Debug)]
pub(super) struct TreeQueue<P> {
    pub(super) in_flight: Option<InFlight>,
    pub(super) waiting: VecDeque<(RoomId, Message<P>)>,
}

/// The tree message out to a peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) room: RoomId,
    /// Unacknowledged by then, the peer is gone ([`TREE_ACK_TIMEOUT`]); `None` for messages
    /// whose handling may wait for the registry.
    pub(super) ack_by: Option<Instant>,
}

impl<P> Default for TreeQueue<P> {
    fn default() -> Self {
        Self {
            in_flight: None,
            waiting: VecDeque::new(),
        }
    }
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// A tree message to `peer` fared as `delivery`; the next one goes out.
    pub fn handle_tree_delivery(
        &mut self,
        now: Instant,
        peer: P,
        room: RoomId,
        delivery: TreeDelivery,
    ) {
        self.now = self.now.max(now);
        if delivery != TreeDelivery::Acknowledged {
            tracing::debug!(target: "chroom::tree", local = ?self.local, to = ?peer, ?delivery, "tree message not taken");
        }
        match delivery {
            TreeDelivery::Acknowledged | TreeDelivery::Misanswered => {}
            TreeDelivery::Refused(error) => {
                self.session.handle_tree_refused(now, peer, room, error);
            }
            TreeDelivery::Unreachable => {
                // Later messages to a vanished peer would only time out one by one.
                self.tree_queues.remove(&peer);
                self.session.handle_tree_unreachable(now, peer, room);
                return;
            }
        }
        if let Some(queue) = self.tree_queues.get_mut(&peer) {
            queue.in_flight = None;
        }
        self.send_next_tree(peer);
    }

    pub(super) fn queue_tree(&mut self, peer: P, room: RoomId, message: Message<P>) {
        let queue = self.tree_queues.entry(peer).or_default();
        // A report or a state says what holds now: one still waiting is replaced, in its
        // place, rather than queued behind. Queued, each waits a round trip for the one
        // before: a relayer whose subtree changes faster than that would tell its parent
        // ever older news, and fill the queue.
        let supersedes = |(r, queued): &(RoomId, Message<P>)| {
            *r == room
                && matches!(
                    (queued, &message),
                    (Message::Report { .. }, Message::Report { .. })
                        | (Message::State { .. }, Message::State { .. })
                )
        };
        if let Some(waiting) = queue.waiting.iter_mut().find(|w| supersedes(w)) {
            waiting.1 = message;
            return;
        }
        if queue.waiting.len() >= MAX_TREE_QUEUE {
            tracing::warn!(?peer, "tree queue full: dropping a message");
            return;
        }
        queue.waiting.push_back((room, message));
        self.send_next_tree(peer);
    }

    pub(super) fn send_next_tree(&mut self, peer: P) {
        let Some(queue) = self.tree_queues.get_mut(&peer) else {
            return;
        };
        if queue.in_flight.is_some() {
            return;
        }
        let Some((room, message)) = queue.waiting.pop_front() else {
            return;
        };
        let waits_for_registry = matches!(message, Message::Join { .. } | Message::Accepted { .. });
        queue.in_flight = Some(InFlight {
            room,
            ack_by: (!waits_for_registry).then(|| self.now + TREE_ACK_TIMEOUT),
        });
        tracing::debug!(target: "chroom::tree", local = ?self.local, to = ?peer, ?message, "tree message out");
        self.outputs.push_back(NodeOutput::SendTree {
            peer,
            room,
            message,
        });
    }
}
