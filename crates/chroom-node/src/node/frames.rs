//! Frames from the media actor to the application (the recorder), named by the member they
//! come from. A task of its own: frames never pass through the node actor's loop, and a slow
//! recorder loses frames (counted), never holds up the node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use chroom_media::ReceivedFrame;
use chroom_net::PeerId;
use chroom_types::LinkId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api::NodeFrame;

/// Which member each link carries. Written by the node actor as links come and go, read by
/// the frames task per frame.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkPeers(Arc<RwLock<HashMap<LinkId, (PeerId, LinkDirection)>>>);

/// Which way a link to a member was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkDirection {
    /// This node subscribed to the member.
    Receive,
    /// The member subscribed to this node.
    Send,
}

impl LinkPeers {
    pub(crate) fn insert(&self, link: LinkId, peer: PeerId, direction: LinkDirection) {
        self.write().insert(link, (peer, direction));
    }

    pub(crate) fn remove(&self, link: LinkId) {
        self.write().remove(&link);
    }

    /// Links this node receives on, and links it sends on.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let links = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let receiving = links
            .values()
            .filter(|(_, d)| *d == LinkDirection::Receive)
            .count();
        (receiving, links.len() - receiving)
    }

    /// The links to `peer`, either way (a link a member opened to this node carries this
    /// node's media back too).
    pub(crate) fn to(&self, peer: PeerId) -> Vec<LinkId> {
        let links = self.0.read().unwrap_or_else(PoisonError::into_inner);
        links
            .iter()
            .filter(|(_, (to, _))| *to == peer)
            .map(|(link, _)| *link)
            .collect()
    }

    /// Per-link figures named by the member each link carries (links gone meanwhile left out).
    pub(crate) fn by_member<T>(&self, per_link: Vec<(LinkId, T)>) -> Vec<(PeerId, T)> {
        per_link
            .into_iter()
            .filter_map(|(link, figure)| Some((self.peer(link)?, figure)))
            .collect()
    }

    pub(crate) fn peer(&self, link: LinkId) -> Option<PeerId> {
        let links = self.0.read().unwrap_or_else(PoisonError::into_inner);
        links.get(&link).map(|(peer, _)| *peer)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<LinkId, (PeerId, LinkDirection)>> {
        // A panic while holding the lock leaves a map, not a broken invariant: go on.
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where frames go once the application takes them.
#[derive(Debug, Clone, Default)]
pub(crate) struct FrameTap {
    /// Set once the application takes the frames; until then they are dropped uncounted.
    pub(crate) wanted: Arc<AtomicBool>,
    /// Frames the application did not take in time.
    pub(crate) dropped: Arc<AtomicU64>,
}

/// Names every frame from `frames` by its member and hands it to `to`, until `shutdown`.
pub(crate) async fn run(
    mut frames: mpsc::Receiver<(LinkId, ReceivedFrame)>,
    to: mpsc::Sender<NodeFrame>,
    links: LinkPeers,
    tap: FrameTap,
    shutdown: CancellationToken,
) {
    loop {
        let (link, frame) = tokio::select! {
            () = shutdown.cancelled() => break,
            next = frames.recv() => match next {
                Some(next) => next,
                None => break,
            },
        };
        if !tap.wanted.load(Ordering::Relaxed) {
            continue;
        }
        // A frame still on its way when its link closed has nobody to name.
        let Some(peer) = links.peer(link) else {
            continue;
        };
        if to.try_send(NodeFrame { peer, link, frame }).is_err() {
            tap.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
