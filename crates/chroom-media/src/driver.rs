//! The media actor: one UDP socket, many links, a bounded command inbox.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use chroom_types::{LinkId, LinkMode, MediaKind, Track};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Input, Rtc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::link::{Link, LinkOutput};
use crate::socket::{MediaSocket, Outbox, RECV_SLOTS, RecvBuffers};

/// Shortest gap between keyframe requests to this node's own browser. A conference has few
/// members, each joining one wants a keyframe at once, and the browser's encoder is local: a
/// second of black per join would be the price of the relay default.
const LOCAL_SOURCE_KEYFRAME_INTERVAL: Duration = Duration::from_millis(200);

/// Datagrams that no link accepted yet, kept briefly. The DTLS ClientHello often arrives in the
/// same millisecond as the ICE check that makes its source viable; dropping it costs a DTLS
/// retransmission (about a second) on every connect.
const MAX_UNROUTED_DATAGRAMS: usize = 64;
const UNROUTED_MAX_AGE: Duration = Duration::from_secs(2);

/// Most batched reads per wake-up before the actor looks at commands and timers again. Under
/// load a relayer finds many datagrams waiting; taking them in one go saves a wake-up, a
/// deadline scan and an event hand-off per datagram, and lets the outbox batch their copies.
const RECV_ROUNDS: usize = 8;

/// Longest a relayed packet waits in the outbox for others to batch with. A read can bring
/// hundreds of datagrams (GRO); sending only after all of them would add a millisecond to the
/// hop under load.
const MAX_OUTBOX_HOLD: Duration = Duration::from_micros(20);

/// Media driver configuration.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// UDP address to bind. Default `127.0.0.1:0` (loopback, any port) for local development.
    pub bind: SocketAddr,
    /// Addresses offered to peers as ICE host candidates. Default empty: the bound address, or
    /// 127.0.0.1 when bound to an unspecified address.
    pub advertise: Vec<IpAddr>,
    /// Most links at once; further offers are refused with [`MediaError::TooManyLinks`].
    /// Default 64.
    pub max_links: usize,
    /// A link that has not connected by then is closed. Default 15 s.
    pub connect_timeout: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            advertise: Vec::new(),
            max_links: 64,
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// A media operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The UDP socket could not be bound.
    #[error("binding udp {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The SDP could not be parsed or negotiated.
    #[error("bad sdp: {reason}")]
    BadSdp {
        /// What str0m reported.
        reason: String,
    },
    /// The node already has [`MediaConfig::max_links`] links.
    #[error("too many links (limit {limit})")]
    TooManyLinks {
        /// The configured limit.
        limit: usize,
    },
    /// No such link, or it has closed.
    #[error("{link} is not open")]
    UnknownLink {
        /// The link asked for.
        link: LinkId,
    },
    /// The answer came for a link that has no offer outstanding.
    #[error("{link} has no pending offer")]
    NoPendingOffer {
        /// The link asked for.
        link: LinkId,
    },
    /// The media actor has stopped.
    #[error("media actor stopped")]
    Stopped,
}

/// A frame received on a link.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// Which of the sender's tracks.
    pub track: Track,
    /// RTP timestamp, extended to 64 bits, in the kind's clock rate.
    pub rtp_time: u64,
    /// False when packets were lost since the previous frame.
    pub contiguous: bool,
    /// The depacketized codec frame.
    pub data: Arc<[u8]>,
    /// When its first packet arrived.
    pub received_at: Instant,
}

/// A histogram of durations with quarter-octave buckets (each about 19 % wide), from 1 µs to
/// about an hour: enough to read percentiles of a hop's latency without keeping samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
}

const LATENCY_BUCKETS: usize = 128;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; LATENCY_BUCKETS],
        }
    }
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // log2 in quarter steps: 4 * log2(us), from the bit length and the next two bits.
        let bits = 63 - u64::from(micros.leading_zeros());
        let fraction = if bits >= 2 {
            (micros >> (bits - 2)) & 0b11
        } else {
            0
        };
        let index = usize::try_from(bits * 4 + fraction).unwrap_or(usize::MAX);
        self.buckets[index.min(LATENCY_BUCKETS - 1)] += 1;
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of the bucket holding the `p`-th percentile (0..=100), if any.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (bits, fraction) = ((index / 4) as u32, (index % 4) as u64);
                let low = if bits >= 2 {
                    (4 + fraction) << (bits - 2)
                } else {
                    1 << bits
                };
                let high = if bits >= 2 {
                    low + (1 << (bits - 2))
                } else {
                    low * 2
                };
                return Some(Duration::from_micros(high));
            }
        }
        None
    }

    /// Everything counted since `earlier` (a copy taken before).
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        }
    }
}

/// Why a link closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkClosed {
    /// The node asked for it.
    ByRequest,
    /// It did not connect within [`MediaConfig::connect_timeout`].
    ConnectTimeout,
    /// ICE, DTLS or str0m failed; the text says how.
    Failed(String),
}

/// What the media actor reports to the node.
#[derive(Debug)]
#[non_exhaustive]
pub enum MediaEvent {
    /// ICE and DTLS completed: media can flow.
    LinkConnected {
        /// The link.
        link: LinkId,
    },
    /// The link is gone.
    LinkClosed {
        /// The link.
        link: LinkId,
        /// Why.
        reason: LinkClosed,
    },
    /// A frame arrived.
    Frame {
        /// The link it came on.
        link: LinkId,
        /// The frame.
        frame: ReceivedFrame,
    },
}

/// What a relaying node forwarded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// From a packet's arrival to its copies leaving for every child.
    pub hop_latency: LatencyHistogram,
    /// Links fed from another link.
    pub children: usize,
    /// Packets written to children.
    pub packets_forwarded: u64,
    /// Payload bytes written to children.
    pub bytes_forwarded: u64,
    /// Packets that could not be written to a child (not connected yet, or failed).
    pub dropped: u64,
    /// Keyframe requests from children passed upstream (after merging).
    pub keyframe_requests: u64,
}

#[derive(Debug)]
enum Command {
    CreateOffer {
        receive: Vec<Track>,
        send: Vec<Track>,
        mode: LinkMode,
        reply: oneshot::Sender<Result<(LinkId, String), MediaError>>,
    },
    AcceptAnswer {
        link: LinkId,
        answer_sdp: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    AcceptOffer {
        offer_sdp: String,
        mode: LinkMode,
        /// For a link from this node's own user: what its video is (camera or screen).
        local_source: Option<Track>,
        reply: oneshot::Sender<Result<(LinkId, String), MediaError>>,
    },
    Forward {
        upstream: LinkId,
        downstream: Vec<LinkId>,
        version: u64,
    },
    RelayStats(oneshot::Sender<RelayStats>),
    CreatePlaybackOffer {
        slots: usize,
        audio_only: bool,
        reply: oneshot::Sender<Result<PlaybackOffer, MediaError>>,
    },
    Play {
        playback: LinkId,
        slot: usize,
        source: Option<LinkId>,
    },
    ShowScreen {
        playback: LinkId,
        source: Option<LinkId>,
    },
    Silence {
        link: LinkId,
        silenced: bool,
    },
    CloseLink {
        link: LinkId,
    },
    SendFrame {
        track: Track,
        rtp_time: u64,
        data: Arc<[u8]>,
    },
}

/// An offer to play remote members' media in this node's user's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackOffer {
    /// The link; complete it with [`MediaHandle::accept_answer`].
    pub link: LinkId,
    /// The SDP offer.
    pub sdp: String,
    /// Each slot's m-lines, as the browser will see them (`transceiver.mid`).
    pub slots: Vec<PlaybackSlot>,
    /// The video m-line showing a shared screen; `None` in an audio-only playback link.
    pub screen_mid: Option<String>,
}

/// One member's place in a playback link: an audio and a video m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackSlot {
    /// The audio m-line's mid.
    pub audio_mid: String,
    /// The video m-line's mid; `None` in an audio-only playback link.
    pub video_mid: Option<String>,
}

/// Cloneable handle to a running [`MediaActor`].
#[derive(Debug, Clone)]
pub struct MediaHandle {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

impl MediaHandle {
    /// The UDP address every link of this node uses.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a link that receives `receive` and sends `send` (this node's frames, like every
    /// link that sends) and returns its SDP offer. Complete it with [`Self::accept_answer`].
    /// Cancel-safe: dropping the future may leave a link that closes itself after the connect
    /// timeout.
    pub async fn create_offer(
        &self,
        receive: &[Track],
        send: &[Track],
        mode: LinkMode,
    ) -> Result<(LinkId, String), MediaError> {
        self.request(|reply| Command::CreateOffer {
            receive: receive.to_vec(),
            send: send.to_vec(),
            mode,
            reply,
        })
        .await
    }

    /// Forwards every RTP packet arriving on `upstream` to each of `downstream` (all in
    /// [`LinkMode::Packets`]), and keyframe requests from them back up, merged. Replaces the
    /// previous forwarding from `upstream` unless that one has a higher `version` (so calls
    /// made concurrently cannot undo a newer one); an empty `downstream` stops it.
    pub async fn forward(&self, upstream: LinkId, downstream: Vec<LinkId>, version: u64) {
        // The actor being gone means there is nothing to forward.
        let _ = self
            .commands
            .send(Command::Forward {
                upstream,
                downstream,
                version,
            })
            .await;
    }

    /// What this node has relayed so far.
    pub async fn relay_stats(&self) -> Result<RelayStats, MediaError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::RelayStats(reply))
            .await
            .map_err(|_| MediaError::Stopped)?;
        response.await.map_err(|_| MediaError::Stopped)
    }

    /// Completes a link opened by [`Self::create_offer`].
    pub async fn accept_answer(&self, link: LinkId, answer_sdp: String) -> Result<(), MediaError> {
        self.request(|reply| Command::AcceptAnswer {
            link,
            answer_sdp,
            reply,
        })
        .await
    }

    /// Accepts a peer's offer. In [`LinkMode::Frames`] the new link sends every local frame of
    /// the kinds it asked for; in [`LinkMode::Packets`] it sends what [`Self::forward`] routes
    /// to it.
    pub async fn accept_offer(
        &self,
        offer_sdp: String,
        mode: LinkMode,
    ) -> Result<(LinkId, String), MediaError> {
        self.request(|reply| Command::AcceptOffer {
            offer_sdp,
            mode,
            local_source: None,
            reply,
        })
        .await
    }

    /// Answers an offer from this node's own user (its browser) to send it media: every frame
    /// that arrives is sent on to every other link that sends (the node's subscribers), and
    /// their keyframe requests go back to the browser. Frames from it are not reported. Its
    /// video is `video`: the camera or a shared screen.
    pub async fn accept_source_offer(
        &self,
        offer_sdp: String,
        video: Track,
    ) -> Result<(LinkId, String), MediaError> {
        self.request(|reply| Command::AcceptOffer {
            offer_sdp,
            mode: LinkMode::Frames,
            local_source: Some(video),
            reply,
        })
        .await
    }

    /// Opens a link that sends to this node's user's browser: `slots` send-only audio m-lines,
    /// each with a video m-line unless `audio_only`, each slot showing one remote member once
    /// [`Self::play`] says which; and unless `audio_only` one video m-line for a shared screen
    /// ([`Self::show_screen`]).
    pub async fn create_playback_offer(
        &self,
        slots: usize,
        audio_only: bool,
    ) -> Result<PlaybackOffer, MediaError> {
        self.request(|reply| Command::CreatePlaybackOffer {
            slots,
            audio_only,
            reply,
        })
        .await
    }

    /// Shows what arrives on `source` in `slot` of the `playback` link (`None`: nothing).
    /// Asks the source for a keyframe, so the browser can start decoding at once.
    pub async fn play(&self, playback: LinkId, slot: usize, source: Option<LinkId>) {
        let _ = self
            .commands
            .send(Command::Play {
                playback,
                slot,
                source,
            })
            .await;
    }

    /// Shows the screen shared on `source` in the screen m-line of the `playback` link
    /// (`None`: nothing). Asks the source for a keyframe of it.
    pub async fn show_screen(&self, playback: LinkId, source: Option<LinkId>) {
        let _ = self
            .commands
            .send(Command::ShowScreen { playback, source })
            .await;
    }

    /// Drops (or, `silenced` false, passes again) the microphone arriving on `link`: a member a
    /// host muted is not played, and a node its host muted does not send its user's voice.
    pub async fn silence(&self, link: LinkId, silenced: bool) {
        let _ = self
            .commands
            .send(Command::Silence { link, silenced })
            .await;
    }

    /// Closes a link. Closing an unknown link does nothing.
    pub async fn close_link(&self, link: LinkId) {
        // The actor being gone means the link is gone too.
        let _ = self.commands.send(Command::CloseLink { link }).await;
    }

    /// Sends a local frame to every connected link that receives `track`. `rtp_time` is in
    /// the track's RTP clock ([`crate::VIDEO_CLOCK_HZ`], [`crate::AUDIO_CLOCK_HZ`]).
    pub async fn send_frame(
        &self,
        track: Track,
        rtp_time: u64,
        data: Arc<[u8]>,
    ) -> Result<(), MediaError> {
        self.commands
            .send(Command::SendFrame {
                track,
                rtp_time,
                data,
            })
            .await
            .map_err(|_| MediaError::Stopped)
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, MediaError>>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| MediaError::Stopped)?;
        response.await.map_err(|_| MediaError::Stopped)?
    }
}

/// Owns the UDP socket and every link. Create with [`MediaActor::bind`], then spawn
/// [`MediaActor::run`].
#[derive(Debug)]
pub struct MediaActor {
    config: MediaConfig,
    socket: MediaSocket,
    /// Datagrams produced since the last send; sent at the end of every pass over the socket.
    outbox: Outbox,
    local_addr: SocketAddr,
    candidates: Vec<SocketAddr>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<MediaEvent>,
    links: HashMap<LinkId, LinkState>,
    next_link: u64,
    started: Instant,
    unrouted: VecDeque<Unrouted>,
    /// Upstream link -> the links its packets go to.
    forwarding: HashMap<LinkId, Vec<LinkId>>,
    /// The version of the latest forwarding order per upstream link.
    forwarding_versions: HashMap<LinkId, u64>,
    /// Links that took input since the last flush: only they can have output. Draining every
    /// link after every datagram would cost a relayer with 50 children 51 drains per packet.
    dirty: Vec<LinkId>,
    /// Every link may have output (after a command).
    all_dirty: bool,
    relay: RelayStats,
    last_relay_log: Instant,
    /// Source link -> the playback link showing it, and its slot's audio and video m-lines.
    playback_routes: HashMap<LinkId, PlaybackRoute>,
    /// Source link -> the playback link showing its screen, and that link's screen m-line.
    screen_routes: HashMap<LinkId, (LinkId, Mid)>,
    /// Events waiting for [`MediaActor::deliver_events`].
    pending_events: Vec<MediaEvent>,
    /// Scratch buffers reused across datagrams, so the hot path does not allocate them.
    scratch: Scratch,
}

#[derive(Debug, Default)]
struct Scratch {
    outputs: Vec<LinkOutput>,
    relayed: Vec<(LinkId, LinkOutput)>,
    written: Vec<LinkId>,
    /// When each packet relayed but not sent yet arrived: its hop ends at the next send.
    received: Vec<Instant>,
    /// Frames to send on: from local sources to every link that sends, and from remote
    /// members to the playback slot showing them.
    frames_out: Vec<FrameOut>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlaybackRoute {
    playback: LinkId,
    slot: usize,
    audio: Mid,
    video: Option<Mid>,
}

#[derive(Debug)]
struct FrameOut {
    /// `None`: every link that sends this track; else this link's m-line.
    to: Option<(LinkId, Mid)>,
    track: Track,
    rtp_time: u64,
    data: Arc<[u8]>,
}

#[derive(Debug)]
struct Unrouted {
    received_at: Instant,
    source: SocketAddr,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct LinkState {
    link: Link,
    /// A link from this node's own user (the browser's camera, microphone, screen): what
    /// arrives on it is sent on every other link that sends, and keyframe requests from those
    /// links go to it.
    local_source: bool,
    /// A link to this node's user's browser showing remote members: each slot's audio and
    /// video m-lines.
    playback_slots: Vec<(Mid, Option<Mid>)>,
    /// A link to this node's user's browser: the m-line showing a shared screen.
    playback_screen: Option<Mid>,
    /// The microphone arriving on it is dropped (a host muted its sender).
    silenced: bool,
    pending_offer: Option<SdpPendingOffer>,
    connect_deadline: Option<Instant>,
    next_timeout: Instant,
    close_cause: Option<LinkClosed>,
}

impl MediaActor {
    /// Binds the UDP socket. Events are delivered on `events`; a slow reader back-pressures the
    /// actor rather than losing frames.
    pub async fn bind(
        config: MediaConfig,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<(Self, MediaHandle), MediaError> {
        static CRYPTO: Once = Once::new();
        CRYPTO.call_once(|| str0m::crypto::from_feature_flags().install_process_default());

        let socket = MediaSocket::bind(config.bind)
            .await
            .map_err(|source| MediaError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| MediaError::Bind {
            addr: config.bind,
            source,
        })?;
        let candidates = host_candidates(&config, local_addr);
        let (tx, rx) = mpsc::channel(256);
        let handle = MediaHandle {
            commands: tx,
            local_addr,
        };
        let actor = Self {
            config,
            socket,
            outbox: Outbox::default(),
            local_addr,
            candidates,
            commands: rx,
            events,
            links: HashMap::new(),
            next_link: 1,
            started: Instant::now(),
            unrouted: VecDeque::new(),
            forwarding: HashMap::new(),
            forwarding_versions: HashMap::new(),
            dirty: Vec::new(),
            all_dirty: true,
            relay: RelayStats::default(),
            last_relay_log: Instant::now(),
            playback_routes: HashMap::new(),
            screen_routes: HashMap::new(),
            pending_events: Vec::new(),
            scratch: Scratch::default(),
        };
        Ok((actor, handle))
    }

    /// Runs until `shutdown` is cancelled or every handle is dropped. Closes all links on exit.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let span = tracing::info_span!("media", addr = %self.local_addr);
        async move {
            tracing::info!("media listening");
            let mut buffers = RecvBuffers::default();
            loop {
                let deadline = self.next_deadline();
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    command = self.commands.recv() => {
                        let Some(command) = command else { break };
                        self.handle_command(command);
                        self.all_dirty = true;
                        // str0m packetizes a written frame on the link's next timeout, which
                        // draining sets to now: run it at once instead of a timer tick later.
                        self.process();
                        self.handle_timeout();
                    }
                    readable = self.socket.readable() => {
                        if let Err(e) = readable {
                            tracing::warn!(error = %e, "udp socket failed");
                        }
                        self.receive(&mut buffers);
                        // A steady stream keeps the socket ready, and `biased` would starve the
                        // timer branch: run due timers here too.
                        if deadline <= Instant::now() {
                            self.handle_timeout();
                        }
                    }
                    () = tokio::time::sleep_until(deadline.into()) => self.handle_timeout(),
                }
                self.flush().await;
            }
            for state in self.links.values_mut() {
                state.link.close();
            }
            self.all_dirty = true;
            self.flush().await;
        }
        .instrument(span)
        .await;
    }

    fn next_deadline(&self) -> Instant {
        let idle = Instant::now() + Duration::from_secs(1);
        self.links
            .values()
            .map(|s| {
                s.connect_deadline
                    .map_or(s.next_timeout, |d| d.min(s.next_timeout))
            })
            .fold(idle, Instant::min)
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::CreateOffer {
                receive,
                send,
                mode,
                reply,
            } => {
                let _ = reply.send(self.create_offer(&receive, &send, mode));
            }
            Command::AcceptAnswer {
                link,
                answer_sdp,
                reply,
            } => {
                let _ = reply.send(self.accept_answer(link, &answer_sdp));
            }
            Command::AcceptOffer {
                offer_sdp,
                mode,
                local_source,
                reply,
            } => {
                let accepted = self.accept_offer(&offer_sdp, mode);
                if let Some(video) = local_source
                    && let Ok((link, _)) = &accepted
                    && let Some(state) = self.links.get_mut(link)
                {
                    state.local_source = true;
                    state.link.set_unnamed_video(video);
                    state
                        .link
                        .set_keyframe_interval(LOCAL_SOURCE_KEYFRAME_INTERVAL);
                }
                let _ = reply.send(accepted);
            }
            Command::Forward {
                upstream,
                downstream,
                version,
            } => {
                if !self.links.contains_key(&upstream) {
                    // Closed meanwhile: nothing will arrive on it.
                    return;
                }
                let latest = self.forwarding_versions.entry(upstream).or_default();
                if version < *latest {
                    return;
                }
                *latest = version;
                if downstream.is_empty() {
                    self.forwarding.remove(&upstream);
                } else {
                    self.forwarding.insert(upstream, downstream);
                }
                self.relay.children = self.forwarding.values().map(Vec::len).sum();
            }
            Command::CreatePlaybackOffer {
                slots,
                audio_only,
                reply,
            } => {
                let _ = reply.send(self.create_playback_offer(slots, audio_only));
            }
            Command::Play {
                playback,
                slot,
                source,
            } => self.play(playback, slot, source),
            Command::ShowScreen { playback, source } => self.show_screen(playback, source),
            Command::Silence { link, silenced } => {
                if let Some(state) = self.links.get_mut(&link) {
                    state.silenced = silenced;
                }
            }
            Command::RelayStats(reply) => {
                let _ = reply.send(self.relay.clone());
            }
            Command::CloseLink { link } => {
                if let Some(state) = self.links.get_mut(&link) {
                    state.close(LinkClosed::ByRequest);
                }
            }
            Command::SendFrame {
                track,
                rtp_time,
                data,
            } => {
                self.write_frame(Instant::now(), track, rtp_time, &data);
            }
        }
    }

    fn new_rtc(&self, mode: LinkMode) -> Rtc {
        // str0m's standard header extensions minus transport-wide congestion control and
        // abs-send-time: no link runs bandwidth estimation, and building TWCC feedback nobody
        // reads cost a 1 → 1 relayer a fifth of its CPU. The ids stay str0m's standard ones.
        let mut builder = Rtc::builder().clear_extension_map();
        for (id, extension) in [
            (1, Extension::AudioLevel),
            (4, Extension::RtpMid),
            (10, Extension::RtpStreamId),
            (11, Extension::RepairedRtpStreamId),
            (13, Extension::VideoOrientation),
        ] {
            builder = builder.set_extension(id, extension);
        }
        let mut rtc = builder
            .set_rtp_mode(mode == LinkMode::Packets)
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false)
            .build(Instant::now());
        for addr in &self.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                }
                Err(e) => tracing::warn!(%addr, error = %e, "unusable host candidate"),
            }
        }
        rtc
    }

    fn allocate(
        &mut self,
        rtc: Rtc,
        mode: LinkMode,
        pending_offer: Option<SdpPendingOffer>,
    ) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let now = Instant::now();
        self.links.insert(
            id,
            LinkState {
                link: Link::new(id, rtc, mode),
                local_source: false,
                playback_slots: Vec::new(),
                playback_screen: None,
                silenced: false,
                pending_offer,
                connect_deadline: Some(now + self.config.connect_timeout),
                next_timeout: now,
                close_cause: None,
            },
        );
        id
    }

    fn check_capacity(&self) -> Result<(), MediaError> {
        if self.links.len() >= self.config.max_links {
            return Err(MediaError::TooManyLinks {
                limit: self.config.max_links,
            });
        }
        Ok(())
    }

    fn create_offer(
        &mut self,
        receive: &[Track],
        send: &[Track],
        mode: LinkMode,
    ) -> Result<(LinkId, String), MediaError> {
        self.check_capacity()?;
        let mut rtc = self.new_rtc(mode);
        let mut change = rtc.sdp_api();
        let mut mids = Vec::new();
        for track in Track::ALL {
            let direction = match (receive.contains(&track), send.contains(&track)) {
                (true, true) => Direction::SendRecv,
                (true, false) => Direction::RecvOnly,
                (false, true) => Direction::SendOnly,
                (false, false) => continue,
            };
            let str0m_kind = match track.kind() {
                MediaKind::Audio => str0m::media::MediaKind::Audio,
                MediaKind::Video => str0m::media::MediaKind::Video,
            };
            // The track's name goes in the msid, so the answering node knows the screen's
            // m-line from the camera's.
            let name = Some(track.name().to_owned());
            let mid = change.add_media(str0m_kind, direction, None, name, None);
            mids.push((mid, track, direction));
        }
        let (offer, pending) = change.apply().ok_or_else(|| MediaError::BadSdp {
            reason: "offer has no media".into(),
        })?;
        let sdp = offer.to_sdp_string();
        let link = self.allocate(rtc, mode, Some(pending));
        if let Some(state) = self.links.get_mut(&link) {
            for (mid, track, direction) in mids {
                if direction != Direction::SendOnly {
                    state.link.expect_receive(mid, track);
                }
                if direction != Direction::RecvOnly {
                    state.link.expect_send(mid, track);
                }
            }
        }
        tracing::debug!(%link, "created offer");
        Ok((link, sdp))
    }

    fn create_playback_offer(
        &mut self,
        slots: usize,
        audio_only: bool,
    ) -> Result<PlaybackOffer, MediaError> {
        use str0m::media::MediaKind as Kind;
        self.check_capacity()?;
        let mut rtc = self.new_rtc(LinkMode::Frames);
        let mut change = rtc.sdp_api();
        let mids: Vec<(Mid, Option<Mid>)> = (0..slots)
            .map(|_| {
                let audio = change.add_media(Kind::Audio, Direction::SendOnly, None, None, None);
                let video = (!audio_only)
                    .then(|| change.add_media(Kind::Video, Direction::SendOnly, None, None, None));
                (audio, video)
            })
            .collect();
        let screen = (!audio_only)
            .then(|| change.add_media(Kind::Video, Direction::SendOnly, None, None, None));
        let (offer, pending) = change.apply().ok_or_else(|| MediaError::BadSdp {
            reason: "a playback offer needs at least one slot".into(),
        })?;
        let sdp = offer.to_sdp_string();
        let link = self.allocate(rtc, LinkMode::Frames, Some(pending));
        if let Some(state) = self.links.get_mut(&link) {
            state.playback_slots.clone_from(&mids);
            state.playback_screen = screen;
        }
        tracing::debug!(%link, slots, "created playback offer");
        Ok(PlaybackOffer {
            link,
            sdp,
            slots: mids
                .iter()
                .map(|(audio, video)| PlaybackSlot {
                    audio_mid: audio.to_string(),
                    video_mid: video.map(|mid| mid.to_string()),
                })
                .collect(),
            screen_mid: screen.map(|mid| mid.to_string()),
        })
    }

    fn play(&mut self, playback: LinkId, slot: usize, source: Option<LinkId>) {
        self.playback_routes
            .retain(|_, route| !(route.playback == playback && route.slot == slot));
        let Some(source) = source else {
            return;
        };
        let Some(&(audio, video)) = self
            .links
            .get(&playback)
            .and_then(|state| state.playback_slots.get(slot))
        else {
            return;
        };
        self.playback_routes.insert(
            source,
            PlaybackRoute {
                playback,
                slot,
                audio,
                video,
            },
        );
        // The browser can only start decoding this member at a keyframe.
        self.request_keyframe_now(source, Track::Camera);
    }

    fn show_screen(&mut self, playback: LinkId, source: Option<LinkId>) {
        self.screen_routes
            .retain(|_, (shown_on, _)| *shown_on != playback);
        let Some(source) = source else {
            return;
        };
        let Some(mid) = self
            .links
            .get(&playback)
            .and_then(|state| state.playback_screen)
        else {
            return;
        };
        self.screen_routes.insert(source, (playback, mid));
        self.request_keyframe_now(source, Track::Screen);
    }

    fn request_keyframe_now(&mut self, source: LinkId, track: Track) {
        if let Some(state) = self.links.get_mut(&source) {
            state.link.request_keyframe_now(Instant::now(), track);
            self.dirty.push(source);
        }
    }

    fn accept_answer(&mut self, link: LinkId, answer_sdp: &str) -> Result<(), MediaError> {
        let state = self
            .links
            .get_mut(&link)
            .ok_or(MediaError::UnknownLink { link })?;
        let pending = state
            .pending_offer
            .take()
            .ok_or(MediaError::NoPendingOffer { link })?;
        let answer = SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| MediaError::BadSdp {
            reason: e.to_string(),
        })?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state
                .link
                .rtc_mut()
                .sdp_api()
                .accept_answer(pending, answer)
        }));
        match result {
            Ok(Ok(())) => {
                state.next_timeout = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => {
                state.link.close();
                Err(MediaError::BadSdp {
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                state.link.close();
                Err(MediaError::BadSdp {
                    reason: "answer crashed the sdp parser".into(),
                })
            }
        }
    }

    fn accept_offer(
        &mut self,
        offer_sdp: &str,
        mode: LinkMode,
    ) -> Result<(LinkId, String), MediaError> {
        self.check_capacity()?;
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| MediaError::BadSdp {
            reason: e.to_string(),
        })?;
        let mut rtc = self.new_rtc(mode);
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rtc.sdp_api().accept_offer(offer)
        }))
        .map_err(|_| MediaError::BadSdp {
            reason: "offer crashed the sdp parser".into(),
        })?
        .map_err(|e| MediaError::BadSdp {
            reason: e.to_string(),
        })?;
        let link = self.allocate(rtc, mode, None);
        tracing::debug!(%link, "accepted offer");
        Ok((link, answer.to_sdp_string()))
    }

    /// Reads and handles what waits on the socket, [`RECV_ROUNDS`] batches at most, sending
    /// what each batch produced before reading the next.
    fn receive(&mut self, buffers: &mut RecvBuffers) {
        for _ in 0..RECV_ROUNDS {
            match self.socket.try_recv(buffers) {
                Ok(0) => break,
                Ok(received) => {
                    // Hop latency counts from here, the moment the batch left the kernel.
                    let now = Instant::now();
                    for (source, datagram) in buffers.datagrams() {
                        self.handle_datagram(now, datagram, source);
                        self.process();
                        if self
                            .scratch
                            .received
                            .first()
                            .is_some_and(|at| at.elapsed() >= MAX_OUTBOX_HOLD)
                        {
                            self.send_outbox();
                        }
                    }
                    self.send_outbox();
                    if received < RECV_SLOTS {
                        break;
                    }
                }
                // ICMP port-unreachable from a vanished peer surfaces here on Linux.
                Err(e) => tracing::debug!(error = %e, "udp receive failed"),
            }
        }
    }

    /// Sends what the links produced; packets relayed since the last send have now been
    /// handed to the socket for every child, which ends their hop.
    fn send_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.socket.send(&mut self.outbox);
        }
        if !self.scratch.received.is_empty() {
            let sent = Instant::now();
            for at in self.scratch.received.drain(..) {
                self.relay
                    .hop_latency
                    .record(sent.saturating_duration_since(at));
            }
        }
    }

    fn handle_datagram(&mut self, now: Instant, bytes: &[u8], source: SocketAddr) {
        if self.route(now, bytes, source) {
            // A link just made progress: datagrams it could not take before may fit now.
            self.retry_unrouted(now);
            return;
        }
        if self.unrouted.len() >= MAX_UNROUTED_DATAGRAMS {
            self.unrouted.pop_front();
        }
        tracing::trace!(%source, "no link accepts datagram yet");
        self.unrouted.push_back(Unrouted {
            received_at: now,
            source,
            bytes: bytes.to_vec(),
        });
    }

    /// Feeds a datagram to the link that accepts it; false if none does.
    fn route(&mut self, now: Instant, bytes: &[u8], source: SocketAddr) -> bool {
        let Ok(contents) = bytes.try_into() else {
            tracing::trace!(%source, "unrecognised datagram");
            // Not WebRTC at all: count it as handled so it is never retried.
            return true;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local_addr,
                contents,
            },
        );
        let Some((id, state)) = self.links.iter_mut().find(|(_, s)| s.link.accepts(&input)) else {
            return false;
        };
        state.link.handle_input(input);
        state.next_timeout = now;
        self.dirty.push(*id);
        true
    }

    fn retry_unrouted(&mut self, now: Instant) {
        let pending = std::mem::take(&mut self.unrouted);
        for datagram in pending {
            if now.saturating_duration_since(datagram.received_at) > UNROUTED_MAX_AGE {
                continue;
            }
            if !self.route(now, &datagram.bytes, datagram.source) {
                self.unrouted.push_back(datagram);
            }
        }
    }

    fn handle_timeout(&mut self) {
        let now = Instant::now();
        for (id, state) in &mut self.links {
            if state.connect_deadline.is_some_and(|d| d <= now) {
                tracing::info!(link = %state.link.id, "link did not connect in time");
                state.close(LinkClosed::ConnectTimeout);
                self.dirty.push(*id);
                continue;
            }
            if state.next_timeout <= now {
                state.link.handle_input(Input::Timeout(now));
                self.dirty.push(*id);
            }
        }
    }

    /// Drains the links that may have output, sends what they produced and reports events.
    async fn flush(&mut self) {
        self.process();
        self.send_outbox();
        self.deliver_events().await;
    }

    /// Drains the links that took input (every link after a command), sends their datagrams,
    /// forwards relayed packets and removes dead links. Events wait in `pending_events`.
    fn process(&mut self) {
        let now = Instant::now();
        let mut ids = std::mem::take(&mut self.dirty);
        if std::mem::take(&mut self.all_dirty) {
            ids.clear();
            ids.extend(self.links.keys().copied());
        } else {
            ids.sort_unstable();
            ids.dedup();
        }
        let mut relayed = std::mem::take(&mut self.scratch.relayed);
        self.drain_links(now, &ids, &mut relayed);
        if !self.scratch.frames_out.is_empty() {
            let written = self.send_frames(now, &mut relayed);
            ids.extend(written);
        }
        if !relayed.is_empty() {
            let mut children = std::mem::take(&mut self.scratch.written);
            let mut received = std::mem::take(&mut self.scratch.received);
            // Forwarded packets wait in the children's links (and keyframe requests in the
            // upstream's): drain them into the outbox. Links written to took no network input,
            // so draining them yields nothing to relay; should it, that waits for the next pass.
            self.forward_packets(now, &mut relayed, &mut children, &mut received);
            self.drain_links(now, &children, &mut relayed);
            ids.append(&mut children);
            self.scratch.written = children;
            self.scratch.received = received;
        }
        self.scratch.relayed = relayed;
        self.log_relay(now);
        for id in ids.drain(..) {
            if self.links.get(&id).is_none_or(|s| s.link.is_alive()) {
                continue;
            }
            let Some(state) = self.links.remove(&id) else {
                continue;
            };
            self.forwarding.remove(&id);
            self.forwarding_versions.remove(&id);
            self.playback_routes
                .retain(|source, route| *source != id && route.playback != id);
            self.screen_routes
                .retain(|source, (playback, _)| *source != id && *playback != id);
            let reason = state.close_reason();
            tracing::info!(link = %id, ?reason, "link closed");
            self.pending_events
                .push(MediaEvent::LinkClosed { link: id, reason });
        }
        // Keep the allocation; input since this pass lands in `self.dirty` anew.
        if self.dirty.is_empty() {
            self.dirty = ids;
        }
    }

    async fn deliver_events(&mut self) {
        for event in self.pending_events.drain(..) {
            if self.events.send(event).await.is_err() {
                // Nobody listens any more; keep serving links until shutdown.
                break;
            }
        }
    }

    /// Sends the frames waiting in `frames_out` (local sources' to every link that sends,
    /// remote members' to their playback slot), and has str0m packetize them at once (it does
    /// so on a timeout). Returns the links written to.
    fn send_frames(
        &mut self,
        now: Instant,
        relayed: &mut Vec<(LinkId, LinkOutput)>,
    ) -> Vec<LinkId> {
        let mut frames = std::mem::take(&mut self.scratch.frames_out);
        let mut written = Vec::new();
        for frame in frames.drain(..) {
            match frame.to {
                None => {
                    written.extend(self.write_frame(now, frame.track, frame.rtp_time, &frame.data))
                }
                Some((link, mid)) => {
                    let kind = frame.track.kind();
                    let time = media_time(kind, frame.rtp_time);
                    if self.links.get_mut(&link).is_some_and(|state| {
                        state.link.write_frame_on(now, mid, kind, time, &frame.data)
                    }) {
                        written.push(link);
                    }
                }
            }
        }
        self.scratch.frames_out = frames;
        written.sort_unstable();
        written.dedup();
        self.drain_links(now, &written, relayed);
        for id in &written {
            if let Some(state) = self.links.get_mut(id) {
                state.link.handle_input(Input::Timeout(now));
            }
        }
        self.drain_links(now, &written, relayed);
        written
    }

    /// Writes a frame from this node on every link that sends its track (not on local
    /// sources). Returns the links written to.
    fn write_frame(
        &mut self,
        now: Instant,
        track: Track,
        rtp_time: u64,
        data: &Arc<[u8]>,
    ) -> Vec<LinkId> {
        let time = media_time(track.kind(), rtp_time);
        self.links
            .iter_mut()
            .filter(|(_, state)| !state.local_source)
            .filter_map(|(id, state)| {
                state
                    .link
                    .write_frame(now, track, time, data)
                    .then_some(*id)
            })
            .collect()
    }

    /// Drains `ids`, sending their datagrams; frames and link changes go to `pending_events`,
    /// packets and keyframe requests to relay to `relayed`.
    fn drain_links(
        &mut self,
        now: Instant,
        ids: &[LinkId],
        relayed: &mut Vec<(LinkId, LinkOutput)>,
    ) {
        let mut outputs = std::mem::take(&mut self.scratch.outputs);
        let events = &mut self.pending_events;
        for id in ids {
            let Some(state) = self.links.get_mut(id) else {
                continue;
            };
            outputs.clear();
            state.next_timeout = state.link.drain(now, &mut outputs);
            for output in outputs.drain(..) {
                match output {
                    LinkOutput::Frame {
                        track: Track::Microphone,
                        ..
                    } if state.silenced => {}
                    LinkOutput::Transmit {
                        destination,
                        contents,
                    } => self.outbox.push(destination, contents),
                    LinkOutput::Connected => {
                        state.connect_deadline = None;
                        tracing::info!(link = %id, elapsed = ?self.started.elapsed(), "link connected");
                        events.push(MediaEvent::LinkConnected { link: *id });
                    }
                    LinkOutput::Frame {
                        track,
                        rtp_time,
                        data,
                        ..
                    } if state.local_source => {
                        self.scratch.frames_out.push(FrameOut {
                            to: None,
                            track,
                            rtp_time,
                            data,
                        });
                    }
                    LinkOutput::Frame {
                        track,
                        rtp_time,
                        contiguous,
                        data,
                    } => {
                        let shown_on = match track {
                            Track::Microphone => {
                                self.playback_routes.get(id).map(|r| (r.playback, r.audio))
                            }
                            Track::Camera => self
                                .playback_routes
                                .get(id)
                                .and_then(|r| Some((r.playback, r.video?))),
                            Track::Screen => self.screen_routes.get(id).copied(),
                        };
                        if let Some(to) = shown_on {
                            self.scratch.frames_out.push(FrameOut {
                                to: Some(to),
                                track,
                                rtp_time,
                                data: data.clone(),
                            });
                        }
                        events.push(MediaEvent::Frame {
                            link: *id,
                            frame: ReceivedFrame {
                                kind: track.kind(),
                                track,
                                rtp_time,
                                contiguous,
                                data,
                                received_at: now,
                            },
                        });
                    }
                    relay @ (LinkOutput::Packet { .. } | LinkOutput::KeyframeRequested { .. }) => {
                        relayed.push((*id, relay));
                    }
                }
            }
        }
        self.scratch.outputs = outputs;
    }

    /// Writes relayed packets to the children of the link they came on, and passes children's
    /// keyframe requests to their upstream link (which merges them: one per second at most).
    /// Adds the links written to to `written`, and when each forwarded packet arrived to
    /// `received`.
    fn forward_packets(
        &mut self,
        now: Instant,
        relayed: &mut Vec<(LinkId, LinkOutput)>,
        written: &mut Vec<LinkId>,
        received: &mut Vec<Instant>,
    ) {
        for (from, output) in relayed.drain(..) {
            match output {
                LinkOutput::Packet { track, packet } => {
                    let Some(children) = self.forwarding.get(&from) else {
                        continue;
                    };
                    received.push(packet.timestamp);
                    for child in children {
                        let sent = self
                            .links
                            .get_mut(child)
                            .is_some_and(|state| state.link.write_packet(track, &packet));
                        if sent {
                            self.relay.packets_forwarded += 1;
                            self.relay.bytes_forwarded += packet.payload.len() as u64;
                            if !written.contains(child) {
                                written.push(*child);
                            }
                        } else {
                            self.relay.dropped += 1;
                        }
                    }
                }
                LinkOutput::KeyframeRequested { mid } => {
                    let upstream = self
                        .forwarding
                        .iter()
                        .find(|(_, children)| children.contains(&from))
                        .map(|(upstream, _)| *upstream);
                    let shown = self
                        .playback_routes
                        .iter()
                        .find(|(_, route)| route.playback == from && route.video == Some(mid))
                        .map(|(source, _)| (*source, Track::Camera));
                    let screen = self
                        .screen_routes
                        .iter()
                        .find(|(_, route)| **route == (from, mid))
                        .map(|(source, _)| (*source, Track::Screen));
                    // The track asked about: as this link sends it (a relayed or local stream).
                    let sent = self
                        .links
                        .get(&from)
                        .and_then(|state| state.link.send_track(mid))
                        .unwrap_or(Track::Camera);
                    // A relayed stream's keyframes come from upstream; a remote member's shown
                    // in the browser from its link; this node's own from the local source
                    // sending that track (the browser encodes only when asked).
                    let sources: Vec<(LinkId, Track)> =
                        match upstream.map(|up| (up, sent)).or(shown).or(screen) {
                            Some(source) => vec![source],
                            None => self
                                .links
                                .iter()
                                .filter(|(_, state)| {
                                    state.local_source && state.link.receives(sent)
                                })
                                .map(|(id, _)| (*id, sent))
                                .collect(),
                        };
                    for (id, track) in sources {
                        let Some(state) = self.links.get_mut(&id) else {
                            continue;
                        };
                        if upstream.is_some() {
                            self.relay.keyframe_requests += 1;
                        }
                        state.link.request_keyframe(now, track);
                        if !written.contains(&id) {
                            written.push(id);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Relay figures in the log every 10 s while relaying.
    fn log_relay(&mut self, now: Instant) {
        if self.forwarding.is_empty()
            || now.saturating_duration_since(self.last_relay_log) < Duration::from_secs(10)
        {
            return;
        }
        self.last_relay_log = now;
        let r = &self.relay;
        tracing::info!(
            children = r.children,
            packets = r.packets_forwarded,
            bytes = r.bytes_forwarded,
            dropped = r.dropped,
            keyframe_requests = r.keyframe_requests,
            hop_p50_us = r.hop_latency.percentile(50.0).map(|d| d.as_micros()),
            hop_p99_us = r.hop_latency.percentile(99.0).map(|d| d.as_micros()),
            "relaying"
        );
    }
}

impl LinkState {
    fn close(&mut self, cause: LinkClosed) {
        self.close_cause.get_or_insert(cause);
        self.connect_deadline = None;
        self.pending_offer = None;
        self.link.close();
    }

    fn close_reason(&self) -> LinkClosed {
        if let Some(cause) = &self.close_cause {
            return cause.clone();
        }
        LinkClosed::Failed(self.link.failure().unwrap_or("closed by peer").to_owned())
    }
}

/// An RTP time in `kind`'s clock.
fn media_time(kind: MediaKind, rtp_time: u64) -> MediaTime {
    let clock = match kind {
        MediaKind::Audio => Frequency::FORTY_EIGHT_KHZ,
        MediaKind::Video => Frequency::NINETY_KHZ,
    };
    MediaTime::new(rtp_time, clock)
}

/// The ICE host candidates for a socket bound at `local`.
fn host_candidates(config: &MediaConfig, local: SocketAddr) -> Vec<SocketAddr> {
    if !config.advertise.is_empty() {
        return config
            .advertise
            .iter()
            .map(|ip| SocketAddr::new(*ip, local.port()))
            .collect();
    }
    if local.ip().is_unspecified() {
        // Without an advertised address a wildcard bind is only reachable on loopback for sure.
        return vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            local.port(),
        )];
    }
    vec![local]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_land_in_the_right_bucket() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(50.0), None);
        for _ in 0..90 {
            histogram.record(Duration::from_micros(100));
        }
        for _ in 0..10 {
            histogram.record(Duration::from_millis(5));
        }
        let p50 = histogram.percentile(50.0).unwrap();
        assert!(
            p50 >= Duration::from_micros(100) && p50 <= Duration::from_micros(120),
            "{p50:?}"
        );
        let p99 = histogram.percentile(99.0).unwrap();
        assert!(
            p99 >= Duration::from_millis(5) && p99 <= Duration::from_micros(6000),
            "{p99:?}"
        );
        let earlier = histogram.clone();
        histogram.record(Duration::from_secs(1));
        assert_eq!(histogram.since(&earlier).count(), 1);
        // Zero and enormous durations are counted, not lost.
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_secs(1 << 40));
        assert_eq!(histogram.count(), 103);
    }
}
