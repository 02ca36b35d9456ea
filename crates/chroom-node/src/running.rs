//! [`RunningNode`]: starting a node (its key and store, the network, media and registry
//! actors, the node actor, the page) and stopping it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use chroom_media::MediaActor;
use chroom_net::{Multiaddr, NetActor, PeerId, fmt_short};
use chroom_registry::{RegistryActor, RegistryClient};
use chroom_room::Participation;
use chroom_room::follower::FollowerConfig;
use chroom_room::node::NodeCore;
use chroom_room::{AccessPolicy, SessionConfig};
use chroom_store::Store;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::unix_now;
use crate::config::NodeConfig;
use crate::files::Files;
use crate::identity::{OwnBinding, load_account_key, load_or_create_node_key};
use crate::node::actor::{Inputs, NodeActor, Parts};
use crate::node::frames::{self, FrameTap, LinkPeers};
use crate::node::signaling::seed_of;
use crate::node::{Acting, NodeFrame, NodeHandle};

/// Most bootstrap candidates taken from the peer book at start.
const PEER_BOOK_DIALS: usize = 8;

/// Chat lines and decisions kept for pages that fall behind; older ones are skipped for them.
const NOTICE_BUFFER: usize = 256;

/// Frames waiting for the recorder; more are dropped (and counted) rather than held.
const FRAME_BUFFER: usize = 4096;

/// A started node. Dropping it without [`RunningNode::shutdown`] stops it too, less tidily.
#[derive(Debug)]
pub struct RunningNode {
    handle: NodeHandle,
    /// Where the user's page is served, if configured.
    web: Option<crate::web::Served>,
    /// Where `/metrics` and `/status` are served, if configured.
    metrics: Option<std::net::SocketAddr>,
    frames: Option<mpsc::Receiver<NodeFrame>>,
    tap: FrameTap,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    started_at: Instant,
}

impl RunningNode {
    /// Starts a node: loads or creates its key and store, starts libp2p and the media socket.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Self> {
        let started_at = Instant::now();
        // Configs built in code skip the file's validation: refuse an unchecked node here too.
        config.check_access().map_err(anyhow::Error::msg)?;
        let key = load_or_create_node_key(&config.data_dir, config.open_key_files)?;
        let peer_id = key.public().to_peer_id();
        let store_path = config.data_dir.join("chroom.redb");
        let (store, record) = Store::open(&store_path, &peer_id.to_base58(), unix_now())
            .with_context(|| format!("opening store {}", store_path.display()))?;
        if let Some(previous) = &record.previous_peer_id {
            tracing::warn!(%previous, current = %peer_id, "node key changed since the last start");
        }
        tracing::info!(%peer_id, starts = record.starts, data_dir = %config.data_dir.display(), "node starting");
        let store = Arc::new(store);

        let identity = match &config.identity {
            Some(identity) => {
                let signer = load_account_key(&identity.key, config.open_key_files)?;
                tracing::info!(account = %signer.address(), "acting for account");
                Some(OwnBinding::signed_here(
                    signer,
                    identity.binding_ttl,
                    &peer_id,
                )?)
            }
            None => None,
        };
        let account = identity.as_ref().map(OwnBinding::account);
        let (account_tx, account_rx) = watch::channel(account.map(|account| Acting {
            account,
            wallet_until_unix: None,
        }));
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let (net_tx, net_rx) = mpsc::channel(256);
        let (net_actor, net) = NetActor::new(key, config.net.clone(), net_tx)?;
        tasks.spawn(net_actor.run(shutdown.child_token()));

        let (media_tx, media_rx) = mpsc::channel(1024);
        let (media_frames_tx, media_frames_rx) = mpsc::channel(FRAME_BUFFER);
        let (media_actor, media) =
            MediaActor::bind(config.media.clone(), media_tx, media_frames_tx).await?;
        tasks.spawn(media_actor.run(shutdown.child_token()));

        dial_known_peers(&store, &net, config.net.bootstrap.is_empty()).await?;

        let (registry_tx, registry_rx) = mpsc::channel(1024);
        let registry = match &config.registry {
            Some(registry) => {
                let client = RegistryClient::connect(&registry.rpc_url, registry.address, None)?;
                let follower = FollowerConfig {
                    poll_interval: registry.poll_interval,
                    ..FollowerConfig::default()
                };
                let (actor, handle) =
                    RegistryActor::new(client, store.clone(), follower, registry_tx)?;
                tasks.spawn(actor.run(shutdown.child_token()));
                tracing::info!(address = %registry.address, rpc = %registry.rpc_url, "checking rooms against the registry");
                Some(handle)
            }
            None => {
                tracing::warn!(
                    "node.open_access: no registry, every peer may do everything (development only)"
                );
                None
            }
        };
        let access = if registry.is_some() {
            AccessPolicy::Enforce
        } else {
            AccessPolicy::Open
        };

        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_BUFFER);
        let (chat_tx, _) = broadcast::channel(NOTICE_BUFFER);
        let (doc_events_tx, _) = broadcast::channel(NOTICE_BUFFER);
        let (notices_tx, _) = broadcast::channel(NOTICE_BUFFER);
        let (closed_links_tx, _) = broadcast::channel(NOTICE_BUFFER);
        let (views_tx, views_rx) = watch::channel(0);
        let files = Files::new(
            store.clone(),
            net.clone(),
            config.file_serve_kbps,
            config.file_limits,
            shutdown.child_token(),
        );
        let links = LinkPeers::default();
        let tap = FrameTap::default();
        tasks.spawn(frames::run(
            media_frames_rx,
            frames_tx,
            links.clone(),
            tap.clone(),
            shutdown.child_token(),
        ));
        let mut session = SessionConfig {
            access,
            seed: seed_of(&peer_id),
            ..SessionConfig::default()
        };
        if let Some(registry) = &config.registry {
            session.max_staleness = registry.max_staleness;
            session.unverified_link_timeout = registry.link_check_timeout;
            let per_second = f64::from(registry.new_accounts_per_second);
            session.lookup_limits.total = chroom_room::rate::Rate {
                per_second,
                burst: per_second * 5.0,
            };
        }
        let mut core = NodeCore::new(session, peer_id, account, started_at);
        if let Some(relay) = &config.relay {
            core.serve_relayed_paths(relay.budget);
            // Nodes behind NATs find relayers under this key.
            net.join_room(
                crate::node::relay::service_key(),
                chroom_net::Presence::Member,
            )
            .await?;
        }
        let parts = Parts {
            net: net.clone(),
            media: media.clone(),
            store: store.clone(),
            files: files.clone(),
            registry,
            identity,
            account: account_tx,
            chat: chat_tx.clone(),
            doc_events: doc_events_tx.clone(),
            notices: notices_tx.clone(),
            closed_links: closed_links_tx.clone(),
            views: views_tx,
            links: links.clone(),
            frames: tap.clone(),
        };
        let actor = NodeActor::new(core, peer_id, parts, &shutdown);
        let inputs = Inputs {
            commands: commands_rx,
            net: net_rx,
            media: media_rx,
            registry: registry_rx,
        };
        let span =
            tracing::info_span!(parent: tracing::Span::none(), "node", peer = %fmt_short(&peer_id));
        tasks.spawn(actor.run(inputs, shutdown.child_token()).instrument(span));

        let handle = NodeHandle {
            peer_id,
            files,
            store,
            account: account_rx,
            net,
            media,
            commands: commands_tx,
            chat: chat_tx,
            doc_events: doc_events_tx,
            notices: notices_tx,
            closed_links: closed_links_tx,
            views: views_rx,
            links: links.clone(),
        };
        let web = match config.web {
            Some(listen) => {
                let (served, server) =
                    crate::web::serve(listen, handle.clone(), shutdown.child_token()).await?;
                tasks.spawn(server);
                // The link carries the page's key: it goes to the user (stdout), not the log.
                tracing::info!(addr = %served.addr, "web page served");
                Some(served)
            }
            None => None,
        };
        let metrics = match config.metrics {
            Some(listen) => {
                let (addr, server, refresher) = crate::metrics::serve(
                    listen,
                    handle.clone(),
                    started_at,
                    shutdown.child_token(),
                )
                .await?;
                tasks.spawn(server);
                tasks.spawn(refresher);
                tracing::info!(%addr, "metrics served");
                Some(addr)
            }
            None => None,
        };
        let node = Self {
            handle,
            web,
            metrics,
            frames: Some(frames_rx),
            tap,
            shutdown,
            tasks,
            started_at,
        };
        if let Some(relay) = &config.relay {
            for room in &relay.rooms {
                tracing::info!(room = %room.id().fmt_short(), capacity = relay.capacity, "carrying broadcast");
                let capacity = relay.capacity;
                node.join(room.id(), Participation::Relay { capacity })
                    .await?;
            }
        }
        Ok(node)
    }

    /// Where the user's page is served (`[web] listen`), if it is.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.as_ref().map(|web| web.addr)
    }

    /// Where `/metrics` and `/status` are served (`[metrics] listen`), if they are.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
    }

    /// The link that opens the user's page (it carries the page's key), if it is served.
    pub fn page_link(&self) -> Option<&str> {
        self.web.as_ref().map(|web| web.link.as_str())
    }

    /// The Bearer token WHIP clients publish to this node with (`POST /whip/<room>`), if
    /// its page is served. Like the page link, it acts for the node's account.
    pub fn whip_token(&self) -> Option<&str> {
        self.web.as_ref().map(|web| web.whip_token.as_str())
    }

    /// When [`Self::start`] was called.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Frames received from publishers. Can be taken once; untaken frames are dropped.
    pub fn take_frames(&mut self) -> Option<mpsc::Receiver<NodeFrame>> {
        self.tap.wanted.store(true, Ordering::Relaxed);
        self.frames.take()
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.handle.files.stopped().await;
    }
}

impl std::ops::Deref for RunningNode {
    type Target = NodeHandle;

    fn deref(&self) -> &NodeHandle {
        &self.handle
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Peers from earlier runs help a node find the network without a bootstrap address: their
/// addresses are added, and (`dial`, when no bootstrap is configured) the first is dialled.
async fn dial_known_peers(
    store: &Store,
    net: &chroom_net::NetHandle,
    dial: bool,
) -> anyhow::Result<()> {
    let known = store.known_peers()?;
    for peer in known.iter().take(PEER_BOOK_DIALS) {
        let Ok(id) = peer.peer_id.parse::<PeerId>() else {
            continue;
        };
        for addr in peer
            .addrs
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
        {
            net.add_peer_address(id, addr).await?;
        }
        if dial && let Some(addr) = peer.addrs.first().and_then(|a| a.parse().ok()) {
            net.dial(addr).await?;
        }
    }
    Ok(())
}
