//! What `/status` answers and `chroom status` prints: a [`StatusReport`] built from the
//! latest [`Snapshot`], and [`fetch_status`], the client side of it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ASK_TIMEOUT, STALE_SNAPSHOT, Snapshot};

/// What `/status` answers and `chroom status` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// The node's PeerId.
    pub peer_id: String,
    /// The account it acts for, if any.
    pub account: Option<String>,
    /// Its version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Problems found, in words; empty when healthy.
    pub problems: Vec<String>,
    /// Links receiving media.
    pub receiving_links: usize,
    /// Links sending media.
    pub sending_links: usize,
    /// Peers whose identity binding this node has verified.
    pub peers_with_accounts: usize,
    /// What its media socket carried since it started.
    #[serde(default)]
    pub media: MediaTotals,
    /// The rooms it is in.
    pub rooms: Vec<RoomLine>,
}

/// What a node's media socket carried since it started, in a [`StatusReport`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MediaTotals {
    /// Bytes of every datagram sent: the node's media upload.
    pub bytes_sent: u64,
    /// Bytes of every datagram received.
    pub bytes_received: u64,
    /// Video frames from remote members handed to the node (received, decrypted, whole).
    pub video_frames_received: u64,
    /// Audio frames from remote members handed to the node.
    pub audio_frames_received: u64,
    /// RTP packets received and decrypted (retransmissions included), as of each link's last
    /// once-a-second report.
    #[serde(default)]
    pub rtp_packets_received: u64,
    /// RTP packets written to relay-tree children.
    #[serde(default)]
    pub packets_forwarded: u64,
    /// Each relayed packet's hop, from its read off the socket to its last copy's send: the
    /// counts of `LatencyHistogram`'s buckets (empty when nothing was relayed).
    #[serde(default)]
    pub hop_buckets: Vec<u64>,
}

/// One room in a [`StatusReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomLine {
    /// The room id (hex).
    pub room: String,
    /// How the node takes part.
    pub part: String,
    /// Other members heard.
    pub members: usize,
    /// Links carrying media to the node.
    pub media_links: usize,
    /// Members it feeds.
    pub feeding: usize,
    /// Its parent in the room's relay tree.
    pub tree_parent: Option<String>,
}

impl StatusReport {
    /// The report of `snapshot` (`None`: none taken yet).
    pub fn new(
        peer_id: &str,
        account: Option<String>,
        now: Instant,
        started_at: Instant,
        snapshot: Option<&Snapshot>,
    ) -> Self {
        let mut report = Self {
            peer_id: peer_id.to_owned(),
            account,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: now.saturating_duration_since(started_at).as_secs(),
            problems: Vec::new(),
            receiving_links: 0,
            sending_links: 0,
            peers_with_accounts: 0,
            media: MediaTotals::default(),
            rooms: Vec::new(),
        };
        let Some(snapshot) = snapshot else {
            report
                .problems
                .push("the node has not reported yet (just started?)".to_owned());
            return report;
        };
        let age = now.saturating_duration_since(snapshot.taken);
        if age > STALE_SNAPSHOT {
            report.problems.push(format!(
                "the node has not answered for {}s (busy or stuck); figures are that old",
                age.as_secs()
            ));
        }
        let stats = &snapshot.stats;
        if stats.registry_cache_expired {
            report.problems.push(format!(
                "registry unreachable for {}s, past max_staleness: peers whose right must be \
                 checked are refused",
                stats.registry_unreachable_secs.unwrap_or(0)
            ));
        } else if stats.registry_stale {
            report.problems.push(format!(
                "registry unreachable for {}s: serving cached memberships",
                stats.registry_unreachable_secs.unwrap_or(0)
            ));
        }
        if let Some(refusal) = &stats.last_refusal {
            report
                .problems
                .push(format!("a publisher refused this node: {refusal}"));
        }
        report.receiving_links = stats.receiving_links;
        report.sending_links = stats.sending_links;
        report.peers_with_accounts = stats.peers_with_accounts;
        report.media = MediaTotals {
            bytes_sent: stats.relay.socket_bytes_sent,
            bytes_received: stats.relay.socket_bytes_received,
            video_frames_received: stats.relay.video_frames_received,
            audio_frames_received: stats.relay.audio_frames_received,
            rtp_packets_received: stats.relay.rtp_packets_received,
            packets_forwarded: stats.relay.packets_forwarded,
            hop_buckets: stats.relay.hop_latency.buckets().to_vec(),
        };
        report.rooms = snapshot
            .rooms
            .iter()
            .map(|room| RoomLine {
                room: room.room.to_string(),
                part: room.part.to_owned(),
                members: room.members,
                media_links: room.media_links,
                feeding: room.feeding,
                tree_parent: room.tree_parent.map(|peer| peer.to_base58()),
            })
            .collect();
        report
    }

    /// The report as `chroom status` prints it.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "node {} (chroom {})", self.peer_id, self.version);
        if let Some(account) = &self.account {
            let _ = writeln!(text, "account {account}");
        }
        let _ = writeln!(
            text,
            "up {}",
            humantime::format_duration(Duration::from_secs(self.uptime_secs))
        );
        if self.problems.is_empty() {
            let _ = writeln!(text, "health ok");
        } else {
            for problem in &self.problems {
                let _ = writeln!(text, "health PROBLEM: {problem}");
            }
        }
        let _ = writeln!(
            text,
            "links {} receiving, {} sending; {} peers with verified accounts",
            self.receiving_links, self.sending_links, self.peers_with_accounts
        );
        let media = &self.media;
        let _ = writeln!(
            text,
            "media {:.1} MB sent, {:.1} MB received; {} video and {} audio frames received",
            media.bytes_sent as f64 / 1e6,
            media.bytes_received as f64 / 1e6,
            media.video_frames_received,
            media.audio_frames_received
        );
        let _ = writeln!(text, "rooms {}", self.rooms.len());
        for room in &self.rooms {
            let _ = write!(
                text,
                "  {} {}: {} members, {} media links in, feeding {}",
                room.room, room.part, room.members, room.media_links, room.feeding
            );
            if let Some(parent) = &room.tree_parent {
                let _ = write!(text, ", tree parent {parent}");
            }
            text.push('\n');
        }
        text
    }
}

/// Asks the node serving metrics at `addr` for its `/status` (plain HTTP/1.1 on loopback; no
/// client library needed for one GET).
pub async fn fetch_status(addr: SocketAddr) -> anyhow::Result<StatusReport> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::time::timeout(ASK_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow::anyhow!("no node answered on {addr} within {ASK_TIMEOUT:?}"))?
        .map_err(|e| {
            anyhow::anyhow!(
                "no node serves metrics on {addr} ({e}): is it running, with [metrics] listen?"
            )
        })?;
    let request =
        format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(ASK_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .map_err(|_| anyhow::anyhow!("{addr} did not finish its answer in {ASK_TIMEOUT:?}"))??;
    let response = String::from_utf8(response)
        .map_err(|_| anyhow::anyhow!("{addr} answered something other than text"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{addr} did not answer in HTTP"))?;
    let status_line = head.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status_line.split_whitespace().nth(1) == Some("200"),
        "{addr} answered {status_line:?}: not a chroom node's metrics listener?"
    );
    serde_json::from_str(body)
        .map_err(|e| anyhow::anyhow!("{addr} answered a status this chroom cannot read: {e}"))
}
