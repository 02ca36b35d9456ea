//! [`MediaHandle`], the cheap cloneable side of the media actor, and the commands it sends
//! over the actor's bounded inbox.

use std::net::SocketAddr;
use std::sync::Arc;

use chroom_types::{LinkId, LinkMode, Track};
use tokio::sync::{mpsc, oneshot};

use crate::api::{MediaError, PlaybackOffer, RelayStats};
use crate::layers::LayerIndex;
use crate::relay::RelayGrant;

/// What a [`MediaHandle`] asks of the actor; each carries its reply channel if it has one.
#[derive(Debug)]
pub(crate) enum Command {
    Allocate {
        kbps: u32,
        reply: oneshot::Sender<Result<RelayGrant, MediaError>>,
    },
    UseRelay {
        grant: Option<RelayGrant>,
    },
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
    BandwidthEstimates(oneshot::Sender<Vec<(LinkId, u64)>>),
    CameraLayers(oneshot::Sender<Vec<(LinkId, Option<LayerIndex>)>>),
    DominantSpeaker {
        among: Vec<LinkId>,
        reply: oneshot::Sender<Option<LinkId>>,
    },
    Silence {
        link: LinkId,
        silenced: bool,
    },
    Program {
        link: LinkId,
    },
    Studio {
        links: Vec<LinkId>,
    },
    ShownHeight {
        link: LinkId,
        height: Option<u32>,
    },
    Hold {
        link: LinkId,
        held: bool,
    },
    CloseLink {
        link: LinkId,
    },
    AcceptPlaybackOffer {
        offer_sdp: String,
        reply: oneshot::Sender<Result<(LinkId, String), MediaError>>,
    },
    AddRemoteCandidates {
        link: LinkId,
        candidates: Vec<String>,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    SendFrame {
        track: Track,
        rtp_time: u64,
        data: Arc<[u8]>,
        audio_level: Option<i8>,
        /// The simulcast layer of a headless layered source.
        layer: Option<LayerIndex>,
    },
}

/// Cloneable handle to a running [`crate::MediaActor`].
#[derive(Debug, Clone)]
pub struct MediaHandle {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

impl MediaHandle {
    pub(crate) fn new(commands: mpsc::Sender<Command>, local_addr: SocketAddr) -> Self {
        Self {
            commands,
            local_addr,
        }
    }

    /// The UDP address every link of this node uses, as other nodes reach it: the bound
    /// address, or for a wildcard bind its first host candidate (an advertised address, else
    /// 127.0.0.1).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a link that receives `receive` and sends `send` (this node's frames, like every
    /// link that sends) and returns its SDP offer. Complete it with [`Self::accept_answer`].
    /// Cancel-safe: dropping the future may leave a link that closes itself after the connect
    /// timeout. The link starts held ([`Self::hold`]).
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
    /// to it. The link starts held ([`Self::hold`]).
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

    /// Answers a player's offer to receive (WHEP): a playback link with one slot (its first
    /// audio and video m-lines; an audio m-line is required) and no screen, showing what
    /// [`Self::play`] says in slot 0.
    pub async fn accept_playback_offer(
        &self,
        offer_sdp: String,
    ) -> Result<(LinkId, String), MediaError> {
        self.request(|reply| Command::AcceptPlaybackOffer { offer_sdp, reply })
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

    /// Each link receiving this node's page's camera, and the simulcast layer it gets (`None`:
    /// none now, its video paused or waiting for a keyframe).
    pub async fn camera_layers(&self) -> Vec<(LinkId, Option<LayerIndex>)> {
        self.ask_or_default(Command::CameraLayers).await
    }

    /// Each link's latest send bandwidth estimate, bits per second (only links to other nodes
    /// in a conference, with [`crate::MediaConfig::bandwidth_estimation`] on).
    pub async fn bandwidth_estimates(&self) -> Vec<(LinkId, u64)> {
        self.ask_or_default(Command::BandwidthEstimates).await
    }

    /// Sends the actor the command `ask` makes with a reply channel, and waits for the reply;
    /// the default (nothing) once the actor has stopped.
    async fn ask_or_default<T: Default>(
        &self,
        ask: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> T {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(ask(reply)).await.is_err() {
            return T::default();
        }
        answer.await.unwrap_or_default()
    }

    /// The dominant speaker among the links `among` (members' links this node receives
    /// from): the one holding the floor by the audio levels their packets carry, else the
    /// loudest speaking now; `None` if none of them has spoken (or carries levels).
    pub async fn dominant_speaker(&self, among: Vec<LinkId>) -> Option<LinkId> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::DominantSpeaker { among, reply })
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// Shows the screen shared on `source` in the screen m-line of the `playback` link
    /// (`None`: nothing). Asks the source for a keyframe of it.
    pub async fn show_screen(&self, playback: LinkId, source: Option<LinkId>) {
        let _ = self
            .commands
            .send(Command::ShowScreen { playback, source })
            .await;
    }

    /// The local source `link` (a browser's link this node accepted) carries a broadcast's
    /// program: from now on it feeds every link outside the studio, and this node's other
    /// sources feed only the studio, until it closes.
    pub async fn set_program(&self, link: LinkId) {
        let _ = self.commands.send(Command::Program { link }).await;
    }

    /// The links to the members on this node's broadcast stage (its studio), replacing the
    /// previous set: they never get the program.
    pub async fn set_studio(&self, links: Vec<LinkId>) {
        let _ = self.commands.send(Command::Studio { links }).await;
    }

    /// Drops (or, `silenced` false, passes again) the microphone arriving on `link`: a member a
    /// host muted is not played, and a node its host muted does not send its user's voice.
    pub async fn silence(&self, link: LinkId, silenced: bool) {
        let _ = self
            .commands
            .send(Command::Silence { link, silenced })
            .await;
    }

    /// The peer of `link` shows this node's camera `height` pixels tall (`None`: as large as
    /// the link carries): the link gets no taller simulcast layer than that needs.
    pub async fn set_shown_height(&self, link: LinkId, height: Option<u32>) {
        let _ = self
            .commands
            .send(Command::ShownHeight { link, height })
            .await;
    }

    /// Lets media flow on a link to another node (`held` false), or stops it both ways (`held`
    /// true: nothing is sent on it, what arrives is dropped). Links made by
    /// [`Self::create_offer`] and [`Self::accept_offer`] start held, so nothing reaches or
    /// comes from a peer before the node knows it may take part.
    pub async fn hold(&self, link: LinkId, held: bool) {
        let _ = self.commands.send(Command::Hold { link, held }).await;
    }

    /// As a relayer: opens an allocation for a client (checked by the caller), relaying at
    /// most `kbps` both ways together. It ends when unused for
    /// [`crate::relay::ALLOCATION_IDLE_TIMEOUT`] ([`crate::MediaEvent::RelayAllocationEnded`]).
    pub async fn allocate_relay(&self, kbps: u32) -> Result<RelayGrant, MediaError> {
        self.request(|reply| Command::Allocate { kbps, reply })
            .await
    }

    /// As a client: links opened from now on offer `grant`'s relayed address as an ICE relay
    /// candidate (`None`: no relayed path any more).
    pub async fn use_relay(&self, grant: Option<RelayGrant>) {
        let _ = self.commands.send(Command::UseRelay { grant }).await;
    }

    /// Adds ICE candidates the peer of `link` learned after its offer or answer (trickle ICE,
    /// RFC 8838): each is an SDP `candidate:` attribute value, without the `a=`. Either all
    /// are added or, if one does not parse, none ([`MediaError::BadSdp`]).
    pub async fn add_remote_candidates(
        &self,
        link: LinkId,
        candidates: Vec<String>,
    ) -> Result<(), MediaError> {
        self.request(|reply| Command::AddRemoteCandidates {
            link,
            candidates,
            reply,
        })
        .await
    }

    /// Closes a link. Closing an unknown link does nothing.
    pub async fn close_link(&self, link: LinkId) {
        // The actor being gone means the link is gone too.
        let _ = self.commands.send(Command::CloseLink { link }).await;
    }

    /// Sends a local frame to every connected link that receives `track`. `rtp_time` is in
    /// the track's RTP clock ([`crate::VIDEO_CLOCK_HZ`], [`crate::AUDIO_CLOCK_HZ`]); an audio
    /// frame may carry its level (RFC 6464: 0 loudest, −127 dBov silence), which members use
    /// to tell who speaks.
    pub async fn send_frame(
        &self,
        track: Track,
        rtp_time: u64,
        data: Arc<[u8]>,
        audio_level: Option<i8>,
    ) -> Result<(), MediaError> {
        self.queue(Command::SendFrame {
            track,
            rtp_time,
            data,
            audio_level,
            layer: None,
        })
        .await
    }

    /// Sends a local VP8 frame of simulcast `layer` of `track` (a headless source encoding
    /// several sizes): each link gets the layer that fits it, as a page's layers do.
    /// `rtp_time` is each layer's own, in [`crate::VIDEO_CLOCK_HZ`].
    pub async fn send_layer_frame(
        &self,
        track: Track,
        layer: LayerIndex,
        rtp_time: u64,
        data: Arc<[u8]>,
    ) -> Result<(), MediaError> {
        self.queue(Command::SendFrame {
            track,
            rtp_time,
            data,
            audio_level: None,
            layer: Some(layer),
        })
        .await
    }

    /// Hands the actor a command that needs no answer (waiting while its queue is full).
    async fn queue(&self, command: Command) -> Result<(), MediaError> {
        self.commands
            .send(command)
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
