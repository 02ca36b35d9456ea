//! [`MediaActor`]: the task that owns the UDP socket and every link, and moves bytes and timers.
//!
//! It reads datagrams and hands each to the link that accepts it ([`datagrams`]), drains links
//! and carries out what the [`Router`] decides for their packets, frames and keyframe requests
//! ([`drain`]), makes links ([`negotiation`]), runs link timers, and reports link changes and
//! received frames to the node. It decides no route itself.
//!
//! Frames and link events go to the node on separate channels, and the actor never waits for
//! either reader: a full frame channel drops the frame (counted in
//! [`RelayStats::frames_dropped`]), and link events wait in a queue until the node takes them.

mod datagrams;
mod drain;
mod negotiation;
mod relayed;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use chroom_types::{LinkId, Track};
use str0m::Input;
use str0m::change::SdpPendingOffer;
use str0m::config::DtlsCert;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::BWE_DESIRED_BPS;
use crate::api::{LinkClosed, MediaConfig, MediaError, MediaEvent, ReceivedFrame, RelayStats};
use crate::codec::vp8_keyframe_size;
use crate::estimation::{Aim, Steer};
use crate::handle::{Command, MediaHandle};
use crate::layers::{AUDIO_RESERVE_BPS, BitrateGoals, LayerIndex, LayeredFrame, Simulcast};
use crate::link::{Link, LinkOutput};
use crate::reflexive::{Mapping, ReflexiveTracker};
use crate::router::{KeyframeReason, KeyframeTarget, Router};
use crate::sdp::{self, Reflexive};
use crate::socket::{MediaSocket, Outbox, RecvBuffers};
use crate::speaker::Speakers;
use crate::splice::{PacketSplices, Splices};

use self::datagrams::Unrouted;
use self::negotiation::{LinkPeer, log_page_candidates};
use self::relayed::{RelayClient, RelayServer};

/// Commands waiting for the actor at most; a full inbox makes [`MediaHandle`] calls wait.
const COMMAND_INBOX: usize = 256;

/// Longest [`MediaActor::bind`] waits for STUN servers to say where a NAT maps the socket. A
/// server on the same continent answers in tens of milliseconds; one that is down must not
/// hold the node's start for long (later rounds ask it again).
const FIRST_MAPPING_WAIT: Duration = Duration::from_secs(1);

/// Owns the UDP socket and every link. Create with [`MediaActor::bind`], then spawn
/// [`MediaActor::run`].
#[derive(Debug)]
pub struct MediaActor {
    config: MediaConfig,
    socket: MediaSocket,
    /// Datagrams produced since the last send; sent at the end of every pass over the socket.
    outbox: Outbox,
    local_addr: SocketAddr,
    /// What datagrams arrive at, as ICE knows this node: the bound address, or for a wildcard
    /// bind the first host candidate (the socket does not say which of its addresses a datagram
    /// came to, and ICE matches it against the candidates).
    receive_addr: SocketAddr,
    /// Host candidates of links to other nodes.
    candidates: Vec<SocketAddr>,
    /// Host candidates of links to this node's own user's browser: for a wildcard bind, the
    /// machine's interface addresses (listed again for each such link), so a browser that
    /// refuses loopback candidates (Firefox) reaches the node too.
    page_candidates: Vec<SocketAddr>,
    /// Learns where a NAT in front of the socket maps it (STUN Binding to
    /// [`MediaConfig::stun_servers`]); new links offer that address beside the host ones.
    reflexive: ReflexiveTracker,
    /// Allocations this node serves as a relayer.
    relay_server: RelayServer,
    /// The allocation (on a relayer) this node's new links offer, if any.
    relay_client: Option<RelayClient>,
    /// The DTLS certificate of every link (`None`: str0m makes one per link).
    dtls_cert: Option<DtlsCert>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<MediaEvent>,
    frames: mpsc::Sender<(LinkId, ReceivedFrame)>,
    links: HashMap<LinkId, LinkState>,
    /// Decides where packets, frames and keyframe requests go; the actor carries it out.
    router: Router,
    /// Who speaks, from the audio levels members' packets carry.
    speakers: Speakers,
    /// Which layer of this node's page's camera each link gets.
    simulcast: Simulcast,
    /// Outgoing tracks whose source may change (a broadcast's program on and off).
    splices: Splices,
    /// Children's packet streams, whose numbers must run on when this relayer's parent
    /// changes.
    packet_splices: PacketSplices,
    next_link: u64,
    started: Instant,
    unrouted: VecDeque<Unrouted>,
    /// Links that took input since the last flush: only they can have output. Draining every
    /// link after every datagram would cost a relayer with 50 children 51 drains per packet.
    dirty: Vec<LinkId>,
    /// Every link may have output (after a command).
    all_dirty: bool,
    relay: RelayStats,
    last_relay_log: Instant,
    /// When the links' estimation is next aimed again ([`crate::estimation`]).
    next_steer: Instant,
    /// Link events the node has not taken yet. Never dropped while the node listens: at most
    /// two per link the node opened, so the node's own commands bound it.
    pending_events: VecDeque<MediaEvent>,
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
    /// Frames to send on: from local sources to every subscriber, and from remote members to
    /// the playback slot showing them.
    frames_out: Vec<FrameOut>,
    /// Where the router sends one keyframe request.
    keyframes: Vec<KeyframeTarget>,
}

/// How often every link's estimation is aimed again: what its receivers need changes with
/// their layers, not only when an estimate comes.
const STEER_INTERVAL: Duration = Duration::from_millis(500);

/// What a link's estimation aims at while it carries no layered source: room for what a
/// member may send.
const UNLAYERED_GOALS: BitrateGoals = BitrateGoals {
    minimum: 0,
    desired: BWE_DESIRED_BPS,
    paused: false,
};

/// Aims a connected link's estimation at what its receivers need now, and restarts it to probe
/// if it is held below that ([`crate::estimation`]). Returns whether the link was touched (it may have output).
fn steer_estimation(
    simulcast: &Simulcast,
    now: Instant,
    id: LinkId,
    state: &mut LinkState,
) -> bool {
    if !state.link.is_connected() {
        return false;
    }
    let goals = simulcast
        .bitrate_goals(now, id, AUDIO_RESERVE_BPS)
        .unwrap_or(UNLAYERED_GOALS);
    let steer = state.aim.steer(now, goals);
    if let Some(goals) = steer.aim {
        state.link.set_bitrate_goals(goals);
    }
    if let Some(bps) = steer.restart_from {
        tracing::debug!(link = %id, from_bps = bps, "estimator restarted to probe");
        state.link.restart_estimation(bps);
    }
    steer != Steer::default()
}

/// Where the simulcast choice files the layers of frames the node sends itself (a headless
/// publisher's): no link has this id, so keyframes are never asked of it (its files have
/// them often).
const HEADLESS_SOURCE: LinkId = LinkId(u64::MAX);

#[derive(Debug)]
struct FrameOut {
    /// `None`: every subscriber that sends this track; else this link's m-line.
    to: Option<(LinkId, str0m::media::Mid)>,
    track: Track,
    /// The link it arrived on (for a frame of this node's own, the local source).
    source: LinkId,
    rtp_time: u64,
    data: Arc<[u8]>,
    audio_level: Option<i8>,
    /// The local source it came from and its simulcast layer, if the source sends layers.
    layer: Option<(LinkId, LayeredFrame)>,
}

#[derive(Debug)]
struct LinkState {
    link: Link,
    peer: LinkPeer,
    pending_offer: Option<SdpPendingOffer>,
    connect_deadline: Option<Instant>,
    next_timeout: Instant,
    close_cause: Option<LinkClosed>,
    /// When media (a packet or frame) last arrived, once any has; `None` again once its
    /// silence was reported.
    last_media: Option<Instant>,
    /// No media arrived yet, or its silence was reported and none arrived since: the next to
    /// arrive is reported ([`MediaEvent::LinkFlowing`]).
    silent: bool,
    /// Where the last datagram it accepted came from.
    last_source: Option<SocketAddr>,
    /// Whether that datagram came through this node's own relay allocation.
    last_via_relay: bool,
    /// Its send bandwidth estimate (links that estimate), what the estimation was aimed at,
    /// and whether it moves.
    aim: Aim,
}

impl MediaActor {
    /// Binds the UDP socket. Link events are delivered on `events`, in order and never dropped
    /// (they wait in the actor while `events` is full). Frames received from remote members
    /// go to `frames`; the actor never waits for that reader: when `frames` is full or closed
    /// the frame is dropped and counted in [`RelayStats::frames_dropped`]. Cancel-safe: a
    /// dropped future drops the socket it bound.
    pub async fn bind(
        config: MediaConfig,
        events: mpsc::Sender<MediaEvent>,
        frames: mpsc::Sender<(LinkId, ReceivedFrame)>,
    ) -> Result<(Self, MediaHandle), MediaError> {
        static CRYPTO: Once = Once::new();
        CRYPTO.call_once(|| str0m::crypto::from_feature_flags().install_process_default());

        let socket = MediaSocket::bind(config.bind, config.receive_offload)
            .await
            .map_err(|source| MediaError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| MediaError::Bind {
            addr: config.bind,
            source,
        })?;
        let candidates = sdp::host_candidates(&config, local_addr);
        let page_candidates = sdp::page_candidates(local_addr);
        log_page_candidates(local_addr, &page_candidates);
        let receive_addr = match candidates.first() {
            Some(first) if local_addr.ip().is_unspecified() => *first,
            _ => local_addr,
        };
        // One certificate for every link of the node, made now: str0m would otherwise make
        // one per link, which the first link of a join waited for (tens of milliseconds).
        // The fingerprint travels over Noise-authenticated signaling either way, so it binds
        // the node's links to its PeerId just the same.
        let dtls_cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate();
        let (tx, rx) = mpsc::channel(COMMAND_INBOX);
        let reflexive = ReflexiveTracker::new(
            Instant::now(),
            config.stun_servers.clone(),
            RandomState::new().build_hasher().finish(),
        );
        let mut actor = Self {
            config,
            socket,
            reflexive,
            relay_server: RelayServer::default(),
            relay_client: None,
            outbox: Outbox::default(),
            local_addr,
            receive_addr,
            candidates,
            page_candidates,
            dtls_cert,
            commands: rx,
            events,
            frames,
            links: HashMap::new(),
            router: Router::default(),
            speakers: Speakers::default(),
            simulcast: Simulcast::default(),
            splices: Splices::default(),
            packet_splices: PacketSplices::default(),
            next_link: 1,
            started: Instant::now(),
            unrouted: VecDeque::new(),
            dirty: Vec::new(),
            all_dirty: true,
            relay: RelayStats::default(),
            last_relay_log: Instant::now(),
            next_steer: Instant::now(),
            pending_events: VecDeque::new(),
            scratch: Scratch::default(),
        };
        actor.learn_mapping_at_start().await;
        Ok((actor, MediaHandle::new(tx, receive_addr)))
    }

    /// Asks the STUN servers before the first link, for at most [`FIRST_MAPPING_WAIT`], so
    /// that links offer the server-reflexive address from the start (they would otherwise
    /// need it trickled). Later rounds run in [`Self::run`].
    async fn learn_mapping_at_start(&mut self) {
        let give_up = Instant::now() + FIRST_MAPPING_WAIT;
        let mut buffers = RecvBuffers::default();
        while let Some(next) = self.reflexive.poll_timeout() {
            self.poll_reflexive(Instant::now());
            self.send_outbox();
            if self.reflexive.mapping() != &Mapping::Unknown || Instant::now() >= give_up {
                break;
            }
            let wake = next.max(Instant::now()).min(give_up);
            let readable = tokio::time::timeout_at(wake.into(), self.socket.readable());
            if readable.await.is_err() {
                continue;
            }
            while let Ok(received) = self.socket.try_recv(&mut buffers) {
                if received == 0 {
                    break;
                }
                let now = Instant::now();
                for (source, _, datagram) in buffers.datagrams() {
                    // Nobody knows this node's links yet: anything else can be sent again.
                    self.reflexive.handle_datagram(now, source, datagram);
                }
            }
        }
    }

    /// Sends the STUN requests due and reports a changed mapping.
    fn poll_reflexive(&mut self, now: Instant) {
        for (server, request) in self.reflexive.poll_transmit(now) {
            self.outbox.push(server, request);
        }
        if let Some(mapping) = self.reflexive.poll_change() {
            match mapping {
                Mapping::Stable(addr) if self.candidates.contains(addr) => {
                    tracing::info!(%addr, "media socket seen at its own address: no NAT");
                }
                Mapping::Stable(addr) => tracing::info!(%addr, "media reachable through NAT at"),
                Mapping::PerDestination(seen) => tracing::info!(
                    ?seen,
                    "media behind a NAT that maps per destination: only relayed links reach it"
                ),
                Mapping::Unknown => {}
            }
            self.pending_events.push_back(MediaEvent::Mapping {
                mapping: mapping.clone(),
            });
        }
    }

    /// The server-reflexive address to offer: only a mapping that is the same for everyone,
    /// and only if it is not one of the host addresses already (no NAT).
    fn reflexive_candidate(&self) -> Option<Reflexive> {
        match self.reflexive.mapping() {
            Mapping::Stable(mapped) if !self.candidates.contains(mapped) => Some(Reflexive {
                mapped: *mapped,
                base: self.receive_addr,
            }),
            _ => None,
        }
    }

    /// Runs until `shutdown` is cancelled or every handle is dropped. Closes all links on exit;
    /// dropping the future instead drops them without telling their peers.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let span = tracing::info_span!("media", addr = %self.local_addr);
        async move {
            tracing::info!("media listening");
            let mut buffers = RecvBuffers::default();
            loop {
                let deadline = self.next_deadline();
                let events_waiting = !self.pending_events.is_empty();
                // An owned permit: a borrowed one would hold `self` across every branch.
                let event_room = events_waiting.then(|| self.events.clone().reserve_owned());
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
                        self.handle_timeout_after_reading(&mut buffers);
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
                    Some((token, peer, data)) = self.relay_server.arrivals.recv() => {
                        self.handle_relay_arrival(token, peer, &data);
                    }
                    // Only wakes the actor when the node frees room; every pass also delivers
                    // what fits, so a busy socket does not hold events back.
                    permit = async { event_room?.await.ok() }, if events_waiting => match permit {
                        Some(permit) => {
                            if let Some(event) = self.pending_events.pop_front() {
                                permit.send(event);
                            }
                        }
                        // Nobody listens any more.
                        None => self.pending_events.clear(),
                    },
                    () = tokio::time::sleep_until(deadline.into()) => {
                        self.handle_timeout_after_reading(&mut buffers);
                    }
                }
                self.flush();
            }
            for state in self.links.values_mut() {
                state.link.close();
            }
            self.all_dirty = true;
            // A stopping actor does not wait for the node: what does not fit is dropped.
            self.flush();
        }
        .instrument(span)
        .await;
    }

    fn next_deadline(&self) -> Instant {
        let idle = Instant::now() + Duration::from_secs(1);
        let silence = self.config.silence_timeout;
        self.links
            .values()
            .flat_map(|s| {
                let silent_at = s.last_media.map(|at| at + silence);
                [Some(s.next_timeout), s.connect_deadline, silent_at]
            })
            .flatten()
            .chain(self.reflexive.poll_timeout())
            .chain(self.next_keepalive())
            .chain((!self.links.is_empty()).then_some(self.next_steer))
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
                let _ = reply.send(self.accept_offer(&offer_sdp, mode, local_source));
            }
            Command::Forward {
                upstream,
                downstream,
                version,
            } => self.router.forward(upstream, downstream, version),
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
            } => {
                if let Some(target) = self.router.play(playback, slot, source) {
                    self.request_keyframe(Instant::now(), target);
                }
            }
            Command::BandwidthEstimates(reply) => {
                let now = Instant::now();
                let estimates = self
                    .links
                    .iter()
                    .filter_map(|(id, state)| Some((*id, state.aim.budget(now).estimate?)))
                    .collect();
                let _ = reply.send(estimates);
            }
            Command::CameraLayers(reply) => {
                let _ = reply.send(self.simulcast.camera_layers());
            }
            Command::DominantSpeaker { among, reply } => {
                let _ = reply.send(self.speakers.dominant(Instant::now(), &among));
            }
            Command::ShowScreen { playback, source } => {
                if let Some(target) = self.router.show_screen(playback, source) {
                    self.request_keyframe(Instant::now(), target);
                }
            }
            Command::ShownHeight { link, height } => {
                if self.links.contains_key(&link) {
                    self.simulcast.set_shown_height(link, height);
                }
            }
            Command::Silence { link, silenced } => {
                if silenced {
                    self.router.silence(link);
                } else {
                    self.router.unsilence(link);
                }
            }
            Command::Hold { link, held } => self.router.hold(link, held),
            Command::Program { link } => self.router.set_program(link),
            Command::Studio { links } => self.router.set_studio(links),
            Command::Allocate { kbps, reply } => {
                let _ = reply.send(self.allocate(kbps));
            }
            Command::UseRelay { grant } => self.use_relay(grant),
            Command::RelayStats(reply) => {
                let mut stats = self.relay.clone();
                stats.socket_bytes_sent = self.outbox.sent_bytes;
                stats.rtp_packets_received += self
                    .links
                    .values()
                    .map(|state| state.link.packets_received())
                    .sum::<u64>();
                stats.children = self.router.child_count();
                stats.allocations = self.allocations();
                let _ = reply.send(stats);
            }
            Command::CloseLink { link } => {
                if let Some(state) = self.links.get_mut(&link) {
                    state.close(LinkClosed::ByRequest);
                }
            }
            Command::AcceptPlaybackOffer { offer_sdp, reply } => {
                let _ = reply.send(self.accept_playback_offer(&offer_sdp));
            }
            Command::AddRemoteCandidates {
                link,
                candidates,
                reply,
            } => {
                let _ = reply.send(self.add_remote_candidates(link, &candidates));
            }
            Command::SendFrame {
                track,
                rtp_time,
                data,
                audio_level,
                layer,
            } => {
                let now = Instant::now();
                let layer = layer.map(|layer| {
                    let size = vp8_keyframe_size(&data);
                    let layered = LayeredFrame {
                        layer,
                        temporal: None,
                        keyframe: size.is_some(),
                        rtp_time,
                        bytes: data.len(),
                        height: size.map(|(_, height)| height),
                    };
                    self.simulcast
                        .observe(now, HEADLESS_SOURCE, track, &layered);
                    (HEADLESS_SOURCE, layered)
                });
                let frame = FrameOut {
                    to: None,
                    track,
                    source: HEADLESS_SOURCE,
                    rtp_time,
                    data,
                    audio_level,
                    layer,
                };
                self.write_frame(now, &frame);
            }
        }
    }

    /// Carries out a keyframe request the router decided on. Returns whether the link asked
    /// its peer (only then does the rate limit count it).
    fn request_keyframe(&mut self, now: Instant, target: KeyframeTarget) -> bool {
        let Some(state) = self.links.get_mut(&target.link) else {
            return false;
        };
        if !state.link.request_keyframe(target.track, None) {
            return false;
        }
        self.router
            .handle_keyframe_requested(now, target.link, target.track);
        if target.reason == KeyframeReason::Relayed {
            self.relay.keyframe_requests += 1;
        }
        // The caller drains the link, which sends the request.
        true
    }

    /// Asks the local source `source` for a keyframe of `track` (every layer), within the
    /// rate limit: a track it feeds from now on starts on one. Returns whether it asked.
    fn ask_keyframe(&mut self, now: Instant, source: LinkId, track: Track) -> bool {
        if !self.router.keyframe_due(now, source, track) {
            return false;
        }
        let asked = self
            .links
            .get_mut(&source)
            .is_some_and(|state| state.link.request_keyframe(track, None));
        if asked {
            self.router.handle_keyframe_requested(now, source, track);
        }
        asked
    }

    /// Asks the local source `source` for a keyframe of each layer of `track` a receiver waits
    /// for before it can switch to it, as often as the router lets this node's browser be
    /// asked. Returns whether it asked.
    fn request_layer_keyframes(&mut self, now: Instant, source: LinkId, track: Track) -> bool {
        if !self.router.keyframe_due(now, source, track) {
            return false;
        }
        let Some(state) = self.links.get_mut(&source) else {
            return false;
        };
        let wanted = self.simulcast.wanted_keyframes(source, track);
        let mut asked = false;
        for (layer, _) in wanted.iter().enumerate().filter(|(_, wanted)| **wanted) {
            asked |= state
                .link
                .request_keyframe(track, Some(layer as LayerIndex));
        }
        if asked {
            self.router.handle_keyframe_requested(now, source, track);
        }
        asked
    }

    /// Runs the due timers, but first reads what already arrived when a link's silence is due:
    /// an actor woken late (a starved process) must not take packets waiting in the socket
    /// for a parent gone quiet.
    fn handle_timeout_after_reading(&mut self, buffers: &mut RecvBuffers) {
        let now = Instant::now();
        let silence = self.config.silence_timeout;
        if self
            .links
            .values()
            .any(|s| s.last_media.is_some_and(|at| at + silence <= now))
        {
            self.receive(buffers);
        }
        self.handle_timeout();
    }

    fn handle_timeout(&mut self) {
        let now = Instant::now();
        self.poll_reflexive(now);
        self.relay_timers(now);
        if self.next_steer <= now {
            self.next_steer = now + STEER_INTERVAL;
            for (id, state) in &mut self.links {
                if steer_estimation(&self.simulcast, now, *id, state) {
                    self.dirty.push(*id);
                }
            }
        }
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
            if state
                .last_media
                .is_some_and(|at| at + self.config.silence_timeout <= now)
            {
                state.last_media = None;
                state.silent = true;
                tracing::info!(link = %id, "media stopped arriving");
                self.pending_events
                    .push_back(MediaEvent::LinkSilent { link: *id });
            }
        }
    }

    /// Drains the links that may have output, sends what they produced and reports events.
    fn flush(&mut self) {
        self.process();
        self.send_outbox();
        self.deliver_events();
    }

    /// Hands the node the link events that fit in its channel, in order; the rest wait for
    /// room (the `reserve` branch of [`Self::run`]).
    fn deliver_events(&mut self) {
        while let Some(event) = self.pending_events.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending_events.push_front(event);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    // Nobody listens any more; keep serving links until shutdown.
                    self.pending_events.clear();
                    return;
                }
            }
        }
    }
}

impl LinkState {
    /// Media arrived at `now`; says so if the link was reported silent.
    fn media_arrived(&mut self, now: Instant, events: &mut VecDeque<MediaEvent>) {
        self.last_media = Some(now);
        if std::mem::take(&mut self.silent) {
            events.push_back(MediaEvent::LinkFlowing { link: self.link.id });
        }
    }

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
