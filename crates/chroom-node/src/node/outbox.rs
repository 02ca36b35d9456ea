//! IO the node actor hands off without waiting for it, in order: joining rooms' topics and
//! publishing in them, and orders to the media actor. Each kind goes through one task, so a
//! presence beat never overtakes the goodbye before it, a room's first beat never goes out
//! before its topic is joined, and a mute never overtakes the unmute after it, while the
//! actor's loop never waits on the network or the media socket.

use chroom_media::MediaHandle;
use chroom_net::{NetError, NetHandle, Presence};
use chroom_types::{LinkId, RoomId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Publications and media orders waiting for their task; more are dropped with a warning
/// (presence beats repeat, and a full queue means the network or the socket is stuck).
const OUTBOX_CAPACITY: usize = 512;

/// Something to do in a room's topic, in order.
#[derive(Debug)]
pub(crate) enum TopicOrder {
    /// Join the topic (and provide the room in the DHT as `presence`).
    Join {
        room: RoomId,
        presence: Presence,
        done: oneshot::Sender<Result<(), NetError>>,
    },
    /// Publish a room message.
    Publish(Publication),
}

/// A room message to publish.
#[derive(Debug)]
pub(crate) struct Publication {
    pub(crate) room: RoomId,
    pub(crate) bytes: Vec<u8>,
    /// Told the outcome, if someone waits for it.
    pub(crate) done: Option<oneshot::Sender<Result<(), NetError>>>,
}

/// An order for the media actor.
#[derive(Debug)]
pub(crate) enum MediaOrder {
    Close(LinkId),
    Forward {
        upstream: LinkId,
        downstream: Vec<LinkId>,
        version: u64,
    },
    Silence {
        link: LinkId,
        silenced: bool,
    },
    Studio(Vec<LinkId>),
    Hold {
        link: LinkId,
        held: bool,
    },
}

/// Where the actor drops IO off.
#[derive(Debug)]
pub(crate) struct Outbox {
    topics: mpsc::Sender<TopicOrder>,
    media: mpsc::Sender<MediaOrder>,
}

impl Outbox {
    /// Starts the two tasks; they end with `shutdown` or when the outbox is dropped.
    pub(crate) fn start(net: NetHandle, media: MediaHandle, shutdown: CancellationToken) -> Self {
        let (topics, mut topics_rx) = mpsc::channel::<TopicOrder>(OUTBOX_CAPACITY);
        let (orders, mut media_rx) = mpsc::channel::<MediaOrder>(OUTBOX_CAPACITY);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let order = tokio::select! {
                    () = stop.cancelled() => break,
                    next = topics_rx.recv() => match next {
                        Some(order) => order,
                        None => break,
                    },
                };
                let publication = match order {
                    TopicOrder::Join {
                        room,
                        presence,
                        done,
                    } => {
                        let _ = done.send(net.join_room(room, presence).await);
                        continue;
                    }
                    TopicOrder::Publish(publication) => publication,
                };
                let result = net.publish(publication.room, publication.bytes).await;
                match publication.done {
                    Some(done) => {
                        let _ = done.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::debug!(room = %publication.room.fmt_short(), error = %e, "room message not published");
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let order = tokio::select! {
                    () = shutdown.cancelled() => break,
                    next = media_rx.recv() => match next {
                        Some(order) => order,
                        None => break,
                    },
                };
                match order {
                    MediaOrder::Close(link) => media.close_link(link).await,
                    MediaOrder::Forward {
                        upstream,
                        downstream,
                        version,
                    } => media.forward(upstream, downstream, version).await,
                    MediaOrder::Silence { link, silenced } => media.silence(link, silenced).await,
                    MediaOrder::Studio(links) => media.set_studio(links).await,
                    MediaOrder::Hold { link, held } => media.hold(link, held).await,
                }
            }
        });
        Self {
            topics,
            media: orders,
        }
    }

    /// Joins `room`'s topic after everything asked before; `done` hears when it is joined.
    pub(crate) fn join_topic(
        &self,
        room: RoomId,
        presence: Presence,
        done: oneshot::Sender<Result<(), NetError>>,
    ) {
        let order = TopicOrder::Join {
            room,
            presence,
            done,
        };
        if let Err(e) = self.topics.try_send(order) {
            tracing::warn!(room = %room.fmt_short(), "topic queue full: not joined");
            if let mpsc::error::TrySendError::Full(TopicOrder::Join { done, .. })
            | mpsc::error::TrySendError::Closed(TopicOrder::Join { done, .. }) = e
            {
                let _ = done.send(Err(NetError::Stopped));
            }
        }
    }

    /// Publishes `bytes` in `room` after everything published before.
    pub(crate) fn publish(
        &self,
        room: RoomId,
        bytes: Vec<u8>,
        done: Option<oneshot::Sender<Result<(), NetError>>>,
    ) {
        let publication = Publication { room, bytes, done };
        if let Err(e) = self.topics.try_send(TopicOrder::Publish(publication)) {
            tracing::warn!(room = %room.fmt_short(), "publication queue full: message dropped");
            // The one waiting hears that it did not go out.
            if let mpsc::error::TrySendError::Full(TopicOrder::Publish(p))
            | mpsc::error::TrySendError::Closed(TopicOrder::Publish(p)) = e
                && let Some(done) = p.done
            {
                let _ = done.send(Err(NetError::Stopped));
            }
        }
    }

    /// Hands `order` to the media actor after every order before it.
    pub(crate) fn order(&self, order: MediaOrder) {
        if self.media.try_send(order).is_err() {
            tracing::warn!("media order queue full: order dropped");
        }
    }
}
