//! Operations: Prometheus `/metrics` and the `/status` that `chroom status` prints, served on
//! `[metrics] listen` (off by default, loopback unless `allow_remote`).
//!
//! Scrapes never reach the node: a refresher task asks the node actor for its counters and
//! rooms once per [`REFRESH`] (the same questions tests ask through the [`NodeHandle`]) and
//! keeps the answer as a [`Snapshot`]; both endpoints only read the latest snapshot. However
//! often Prometheus scrapes, the node answers one question a second, and a node too busy to
//! answer shows as a growing `chroom_snapshot_age_seconds`, not as a hung scrape.
//!
//! The text format (Prometheus exposition 0.0.4: `# HELP`, `# TYPE`, samples) is written here
//! by [`Exposition`]; docs/OPERATIONS.md lists every metric.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::node::{NodeHandle, NodeStats, RoomReport};

/// How often the refresher asks the node for a new snapshot.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Longest the refresher waits for the node's answer; the old snapshot stays meanwhile.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A snapshot older than this says the node is not answering (`chroom status` calls it
/// unhealthy).
const STALE_SNAPSHOT: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the node said at one refresh.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub taken: Instant,
    /// The node's counters.
    pub stats: NodeStats,
    /// The rooms it is in.
    pub rooms: Vec<RoomReport>,
}

/// What the refresher keeps: the node's identity, its latest snapshot, and failed refreshes.
#[derive(Debug)]
struct Shared {
    peer_id: String,
    started_at: Instant,
    node: NodeHandle,
    latest: watch::Receiver<Option<Snapshot>>,
    failed_refreshes: AtomicU64,
}

/// Binds `listen`, then serves `/metrics` and `/status` and refreshes the snapshot until
/// `shutdown`. Returns the bound address and the two tasks to spawn.
pub async fn serve(
    listen: SocketAddr,
    node: NodeHandle,
    started_at: Instant,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    SocketAddr,
    impl Future<Output = ()>,
    impl Future<Output = ()>,
)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding metrics on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (publish, latest) = watch::channel(None);
    let shared = Arc::new(Shared {
        peer_id: node.peer_id().to_base58(),
        started_at,
        node,
        latest,
        failed_refreshes: Default::default(),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(shared.clone());
    let server = {
        let shutdown = shutdown.clone();
        async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "metrics server stopped");
            }
        }
    };
    let refresher = refresh(shared, publish, shutdown);
    Ok((addr, server, refresher))
}

/// Asks the node for a snapshot every [`REFRESH`] until `shutdown`.
async fn refresh(
    shared: Arc<Shared>,
    publish: watch::Sender<Option<Snapshot>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(REFRESH);
    // After a slow answer, wait a full period: never ask back to back.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ask = async {
            let stats = shared.node.stats().await?;
            let rooms = shared.node.rooms().await?;
            anyhow::Ok(Snapshot {
                taken: Instant::now(),
                stats,
                rooms,
            })
        };
        match tokio::time::timeout(ASK_TIMEOUT, ask).await {
            Ok(Ok(snapshot)) => {
                publish.send_replace(Some(snapshot));
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "metrics snapshot failed");
                shared.failed_refreshes.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tracing::debug!("metrics snapshot: the node did not answer in time");
                shared.failed_refreshes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.latest.borrow().clone();
    let failed = shared.failed_refreshes.load(Ordering::Relaxed);
    let text = render(
        &shared.peer_id,
        Instant::now(),
        shared.started_at,
        snapshot.as_ref(),
        failed,
    );
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<StatusReport> {
    let snapshot = shared.latest.borrow().clone();
    Json(StatusReport::new(
        &shared.peer_id,
        shared.node.account().map(|account| account.to_string()),
        Instant::now(),
        shared.started_at,
        snapshot.as_ref(),
    ))
}

/// Writes the Prometheus text of `snapshot` (`None`: none taken yet, only the node's identity
/// and uptime are known).
pub fn render(
    peer_id: &str,
    now: Instant,
    started_at: Instant,
    snapshot: Option<&Snapshot>,
    failed_refreshes: u64,
) -> String {
    let mut out = Exposition::default();
    out.family(
        "chroom_info",
        Type::Gauge,
        "This node: its PeerId and version.",
    );
    out.sample(
        "chroom_info",
        &[("peer_id", peer_id), ("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    out.single(
        "chroom_uptime_seconds",
        Type::Gauge,
        "Time since the node started.",
        now.saturating_duration_since(started_at).as_secs_f64(),
    );
    out.single(
        "chroom_snapshot_refresh_failures_total",
        Type::Counter,
        "Snapshots the node did not give in time (it was busy or stopping).",
        failed_refreshes as f64,
    );
    let Some(snapshot) = snapshot else {
        return out.finish();
    };
    out.single(
        "chroom_snapshot_age_seconds",
        Type::Gauge,
        "Age of the snapshot these values come from (refreshed every second; growing: the \
         node is not answering).",
        now.saturating_duration_since(snapshot.taken).as_secs_f64(),
    );
    let stats = &snapshot.stats;

    // Rooms and members.
    out.single(
        "chroom_rooms",
        Type::Gauge,
        "Rooms this node is in.",
        snapshot.rooms.len() as f64,
    );
    let per_room: [(&str, &str, RoomValue); 4] = [
        (
            "chroom_room_members",
            "Other members heard in the room.",
            |room| room.members,
        ),
        (
            "chroom_room_media_links",
            "Links carrying members' media to this node in the room.",
            |room| room.media_links,
        ),
        (
            "chroom_room_feeding",
            "Members this node feeds in the room (subscribers or relay-tree children).",
            |room| room.feeding,
        ),
        (
            "chroom_room_tree_attached",
            "1 when this node has a parent in the room's relay tree.",
            |room| usize::from(room.tree_parent.is_some()),
        ),
    ];
    for (name, help, value) in per_room {
        out.family(name, Type::Gauge, help);
        for room in &snapshot.rooms {
            let id = room.room.to_string();
            out.sample(
                name,
                &[("room", &id), ("part", room.part)],
                value(room) as f64,
            );
        }
    }

    // Links.
    out.family(
        "chroom_links",
        Type::Gauge,
        "WebRTC links carrying media, by direction.",
    );
    out.sample(
        "chroom_links",
        &[("direction", "receiving")],
        stats.receiving_links as f64,
    );
    out.sample(
        "chroom_links",
        &[("direction", "sending")],
        stats.sending_links as f64,
    );
    out.single(
        "chroom_links_unverified_total",
        Type::Counter,
        "Links closed because their peer's right stayed unknown past link_check_timeout.",
        stats.links_unverified as f64,
    );
    out.family(
        "chroom_link_bandwidth_estimate_bits_per_second",
        Type::Gauge,
        "What a link to a member can carry to it, as estimated ([media] bandwidth_estimation).",
    );
    for (peer, bits_per_second) in &stats.bandwidth_estimates {
        out.sample(
            "chroom_link_bandwidth_estimate_bits_per_second",
            &[("direction", "send"), ("peer", &peer.to_base58())],
            *bits_per_second as f64,
        );
    }
    out.family(
        "chroom_link_camera_layer",
        Type::Gauge,
        "The simulcast layer of this node's page's camera a member gets: 0 quarter, 1 half, 2 full size (q, h, f); -1 none (paused).",
    );
    for (peer, layer) in &stats.camera_layers {
        out.sample(
            "chroom_link_camera_layer",
            &[("peer", &peer.to_base58())],
            layer.map_or(-1.0, f64::from),
        );
    }
    out.single(
        "chroom_peers_with_accounts",
        Type::Gauge,
        "Peers whose identity binding this node has verified.",
        stats.peers_with_accounts as f64,
    );

    // Signaling and room gossip.
    out.single(
        "chroom_signal_requests_refused_total",
        Type::Counter,
        "Signaling requests this node refused.",
        stats.requests_refused as f64,
    );
    out.single(
        "chroom_signal_requests_malformed_total",
        Type::Counter,
        "Signaling requests that did not decode.",
        stats.malformed_requests as f64,
    );
    out.family(
        "chroom_gossip_messages_total",
        Type::Counter,
        "Room gossip messages, by verdict (rejected ones are not forwarded).",
    );
    out.sample(
        "chroom_gossip_messages_total",
        &[("verdict", "delivered")],
        stats.gossip_delivered as f64,
    );
    out.sample(
        "chroom_gossip_messages_total",
        &[("verdict", "rejected")],
        stats.gossip_rejected as f64,
    );
    out.single(
        "chroom_sealed_unread_total",
        Type::Counter,
        "Sealed room messages this node could not read: no author handed it a key in time.",
        stats.sealed_unread as f64,
    );

    // Relay trees.
    out.single(
        "chroom_tree_attachments_total",
        Type::Counter,
        "Times this node attached to a parent in a relay tree (joins and repairs).",
        stats.tree_attachments as f64,
    );
    out.single(
        "chroom_tree_messages_refused_total",
        Type::Counter,
        "Tree messages refused because their sender's place was not proven.",
        stats.tree_messages_refused as f64,
    );
    out.single(
        "chroom_tree_roots_refused_total",
        Type::Counter,
        "Broadcast roots the registry does not let broadcast, never joined.",
        stats.roots_refused as f64,
    );

    // What the media socket relayed.
    let relay = &stats.relay;
    out.single(
        "chroom_relay_children",
        Type::Gauge,
        "Links fed from another link.",
        relay.children as f64,
    );
    out.single(
        "chroom_relay_packets_forwarded_total",
        Type::Counter,
        "RTP packets written to children.",
        relay.packets_forwarded as f64,
    );
    out.single(
        "chroom_relay_bytes_forwarded_total",
        Type::Counter,
        "Payload bytes written to children.",
        relay.bytes_forwarded as f64,
    );
    out.single(
        "chroom_relay_packets_dropped_total",
        Type::Counter,
        "Packets that could not be written to a child.",
        relay.dropped as f64,
    );
    out.single(
        "chroom_relay_keyframe_requests_total",
        Type::Counter,
        "Keyframe requests from children passed upstream (after merging).",
        relay.keyframe_requests as f64,
    );
    out.family(
        "chroom_relay_hop_latency_seconds",
        Type::Summary,
        "From a packet's arrival to its copies leaving for every child (bucket upper bounds).",
    );
    for (quantile, p) in [("0.5", 50.0), ("0.99", 99.0)] {
        if let Some(latency) = relay.hop_latency.percentile(p) {
            out.sample(
                "chroom_relay_hop_latency_seconds",
                &[("quantile", quantile)],
                latency.as_secs_f64(),
            );
        }
    }
    out.sample(
        "chroom_relay_hop_latency_seconds_count",
        &[],
        relay.hop_latency.count() as f64,
    );
    out.single(
        "chroom_relay_allocations",
        Type::Gauge,
        "Relayed media paths served for members behind NATs.",
        relay.allocations as f64,
    );
    out.single(
        "chroom_relay_allocation_bytes_total",
        Type::Counter,
        "Payload bytes relayed for allocations, both ways.",
        relay.relayed_bytes as f64,
    );
    out.single(
        "chroom_relay_allocation_datagrams_dropped_total",
        Type::Counter,
        "Allocation datagrams dropped (no permission, unknown client, over rate).",
        relay.relayed_dropped as f64,
    );
    out.family(
        "chroom_media_bytes_total",
        Type::Counter,
        "Bytes of every datagram the media socket sent or received (all links, STUN, relaying).",
    );
    out.sample(
        "chroom_media_bytes_total",
        &[("direction", "sent")],
        relay.socket_bytes_sent as f64,
    );
    out.sample(
        "chroom_media_bytes_total",
        &[("direction", "received")],
        relay.socket_bytes_received as f64,
    );
    out.family(
        "chroom_frames_received_total",
        Type::Counter,
        "Frames from remote members handed to the node (received, decrypted, whole), by kind.",
    );
    out.sample(
        "chroom_frames_received_total",
        &[("kind", "video")],
        relay.video_frames_received as f64,
    );
    out.sample(
        "chroom_frames_received_total",
        &[("kind", "audio")],
        relay.audio_frames_received as f64,
    );
    out.family(
        "chroom_frames_dropped_total",
        Type::Counter,
        "Received frames dropped because their reader fell behind, by where.",
    );
    out.sample(
        "chroom_frames_dropped_total",
        &[("at", "media")],
        relay.frames_dropped as f64,
    );
    out.sample(
        "chroom_frames_dropped_total",
        &[("at", "recorder")],
        stats.frames_dropped as f64,
    );

    // The registry.
    out.single(
        "chroom_registry_stale",
        Type::Gauge,
        "1 while the registry is unreachable and cached memberships are served.",
        f64::from(u8::from(stats.registry_stale)),
    );
    out.single(
        "chroom_registry_unreachable_seconds",
        Type::Gauge,
        "How long the registry has been unreachable (0 while reachable).",
        stats.registry_unreachable_secs.unwrap_or(0) as f64,
    );
    out.single(
        "chroom_registry_cache_expired",
        Type::Gauge,
        "1 when the outage outlasted max_staleness: unchecked peers are refused.",
        f64::from(u8::from(stats.registry_cache_expired)),
    );
    out.single(
        "chroom_registry_lookups_throttled_total",
        Type::Counter,
        "Lookups of new accounts not made: named faster than new_accounts_per_second.",
        stats.lookups_throttled as f64,
    );
    if let Some(registry) = &stats.registry {
        out.single(
            "chroom_registry_lookups_total",
            Type::Counter,
            "Registry lookups the node asked for.",
            registry.lookups_requested as f64,
        );
        out.single(
            "chroom_registry_lookups_dropped_total",
            Type::Counter,
            "Registry lookups dropped: the registry actor's inbox was full.",
            registry.lookups_dropped as f64,
        );
        out.single(
            "chroom_registry_facts_read_total",
            Type::Counter,
            "Membership facts read from the chain.",
            registry.facts_read as f64,
        );
        out.single(
            "chroom_registry_rpc_errors_total",
            Type::Counter,
            "Registry RPC calls that failed or timed out.",
            registry.rpc_errors as f64,
        );
        out.single(
            "chroom_registry_head_block",
            Type::Gauge,
            "The latest chain head the node read.",
            registry.head_block as f64,
        );
    }
    out.finish()
}

/// One per-room gauge's value, read from a room's report.
type RoomValue = fn(&RoomReport) -> usize;

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
enum Type {
    Counter,
    Gauge,
    Summary,
}

/// The Prometheus text format, written family by family.
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, kind: Type, help: &str) {
        let kind = match kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Summary => "summary",
        };
        // HELP text escapes backslashes and newlines.
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                // Label values escape backslashes, double quotes and newlines.
                let value = value
                    .replace('\\', r"\\")
                    .replace('"', r#"\""#)
                    .replace('\n', r"\n");
                let _ = write!(self.text, "{label}=\"{value}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: Type, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn finish(self) -> String {
        self.text
    }
}

mod status;

pub use status::{MediaTotals, RoomLine, StatusReport, fetch_status};

#[cfg(test)]
mod tests;
