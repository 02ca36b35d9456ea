//! One WebRTC link: a str0m `Rtc` plus what the driver must remember about it (which track
//! each m-line carries, whether it connected or failed). Every str0m call is contained with
//! `catch_unwind`, so a str0m panic fails this link only.
//!
//! A link decides nothing about other links: what it receives is handed back as
//! [`LinkOutput`], and the actor asks the router where it goes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use chroom_types::{LinkId, LinkMode, MediaKind, Track};
use str0m::bwe::{Bitrate, BweKind};
use str0m::format::CodecExtra;
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaTime, Mid, Pt, Rid};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Event, Input, Output, Rtc};

use crate::codec::vp8_keyframe_size;
use crate::layers::{BitrateGoals, LAYER_RIDS, LayerIndex, LayeredFrame, TOP_LAYER, layer_of_rid};
use crate::sdp::{Mids, added_track, codec_for};

/// Levels above this (dBov) are marked as voice activity when a level is passed on.
const VOICE_ACTIVITY_DBOV: i8 = -50;

/// What draining a link produced, handed back to the driver.
#[derive(Debug)]
pub(crate) enum LinkOutput {
    Transmit {
        /// The local candidate it leaves from: this socket, or a relayed address.
        source: std::net::SocketAddr,
        destination: std::net::SocketAddr,
        contents: Vec<u8>,
    },
    Connected,
    /// The link's send bandwidth as str0m's 3 s average of its estimate (links with bandwidth
    /// estimation only).
    BandwidthEstimate {
        bits_per_second: u64,
    },
    /// The link's stats (links with bandwidth estimation only): its estimator's latest value,
    /// and the share of what it sent that was lost over the last second, by TWCC's count.
    EstimatorSample {
        latest_bps: u64,
        loss: Option<f32>,
    },
    Frame {
        track: Track,
        rtp_time: u64,
        contiguous: bool,
        data: Arc<[u8]>,
        /// The sender's audio level (RFC 6464, −dBov), if its packets carry one.
        audio_level: Option<i8>,
        /// The simulcast layer it belongs to, if the sender sends layers.
        layer: Option<LayeredFrame>,
    },
    /// An RTP packet (links in [`LinkMode::Packets`]), to forward.
    Packet {
        track: Track,
        packet: Box<RtpPacket>,
        /// The simulcast layer it belongs to, if its parent sends layers.
        layer: Option<LayerIndex>,
    },
    /// This link needs a keyframe of `track` from its peer (it just connected, or lost
    /// video): the actor asks for one if the router's rate limit allows.
    KeyframeNeeded {
        track: Track,
    },
    /// The peer asked for a keyframe of the stream on `mid`.
    KeyframeRequested {
        /// The m-line asked about (of a link that sends layers, every layer is asked for).
        mid: Mid,
    },
}

#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) id: LinkId,
    rtc: Rtc,
    mode: LinkMode,
    connected: bool,
    send_mids: Mids,
    recv_mids: Mids,
    /// What a video m-line the peer added without naming its track carries (a browser's
    /// m-lines have random track ids).
    unnamed_video: Track,
    /// The video tracks a keyframe arrived on: until one does, every frame asks for one.
    keyframed: Vec<Track>,
    /// The simulcast layers that arrived, per track: keyframe requests name them.
    layered: Vec<(Track, LayerIndex)>,
    /// The tracks this link sends as simulcast layers (a tree link to a relayer, which picks
    /// a layer for each of its children), known once connected.
    sends_layers: Vec<Track>,
    /// Set when str0m panicked or failed: the link is dead and must be dropped.
    failure: Option<String>,
    /// RTP packets received and decrypted, per stream as str0m last reported (cumulative).
    ingress: Vec<((Mid, Option<Rid>), u64)>,
}

impl Link {
    pub(crate) fn new(id: LinkId, rtc: Rtc, mode: LinkMode) -> Self {
        Self {
            id,
            rtc,
            mode,
            connected: false,
            send_mids: Mids::default(),
            recv_mids: Mids::default(),
            unnamed_video: Track::Camera,
            keyframed: Vec::new(),
            layered: Vec::new(),
            sends_layers: Vec::new(),
            failure: None,
            ingress: Vec::new(),
        }
    }

    /// Records a receive m-line this side added to its own offer (str0m reports `MediaAdded`
    /// only for m-lines the remote added).
    pub(crate) fn expect_receive(&mut self, mid: Mid, track: Track) {
        self.recv_mids.insert(mid, track);
    }

    /// Sets what video m-lines the peer adds without naming their track carry.
    pub(crate) fn set_unnamed_video(&mut self, track: Track) {
        self.unnamed_video = track;
    }

    /// The track this link sends on `mid`, if it sends on it.
    pub(crate) fn send_track(&self, mid: Mid) -> Option<Track> {
        self.send_mids.track_of(mid)
    }

    /// RTP packets this link received and decrypted, retransmissions included, as of str0m's
    /// last report (once a second).
    pub(crate) fn packets_received(&self) -> u64 {
        self.ingress.iter().map(|(_, packets)| packets).sum()
    }

    /// Whether this link sends `track` as simulcast layers, each written on its own stream.
    pub(crate) fn sends_layers(&self, track: Track) -> bool {
        self.sends_layers.contains(&track)
    }

    /// The simulcast stream a forwarded packet of `track` and `layer` goes out on: that
    /// layer's (the top one's, for a packet of no layer) where this link
    /// [`Self::sends_layers`], else `None`, the track's one stream.
    pub(crate) fn out_stream(&self, track: Track, layer: Option<LayerIndex>) -> Option<LayerIndex> {
        self.sends_layers(track).then(|| layer.unwrap_or(TOP_LAYER))
    }

    /// Whether this link sends `track`.
    pub(crate) fn sends(&self, track: Track) -> bool {
        self.send_mids.mid_of(track).is_some()
    }

    /// Records a send m-line this side added to its own offer.
    pub(crate) fn expect_send(&mut self, mid: Mid, track: Track) {
        self.send_mids.insert(mid, track);
    }

    pub(crate) fn rtc_mut(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    pub(crate) fn accepts(&self, input: &Input<'_>) -> bool {
        self.failure.is_none() && self.rtc.accepts(input)
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.failure.is_none() && self.rtc.is_alive()
    }

    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub(crate) fn handle_input(&mut self, input: Input<'_>) {
        let rtc = &mut self.rtc;
        match catch_unwind(AssertUnwindSafe(|| rtc.handle_input(input))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(format!("input rejected: {e}")),
            Err(_) => self.fail("str0m panicked handling input".into()),
        }
    }

    /// Writes one frame to this link if it sends `track` and is connected. Returns whether the
    /// frame was handed to str0m.
    pub(crate) fn write_frame(
        &mut self,
        now: Instant,
        track: Track,
        rtp_time: MediaTime,
        data: &Arc<[u8]>,
        audio_level: Option<i8>,
    ) -> bool {
        let Some(mid) = self.send_mids.mid_of(track) else {
            return false;
        };
        self.write_frame_on(now, mid, track.kind(), rtp_time, data, audio_level, None)
    }

    /// Writes a frame of simulcast `layer` on that layer's stream of `track` (a link that
    /// [`Self::sends_layers`]; a source without layers goes out as the top one).
    pub(crate) fn write_layer_frame(
        &mut self,
        now: Instant,
        track: Track,
        layer: Option<LayerIndex>,
        rtp_time: MediaTime,
        data: &Arc<[u8]>,
    ) -> bool {
        let Some(mid) = self.send_mids.mid_of(track) else {
            return false;
        };
        let rid = Rid::from(LAYER_RIDS[usize::from(layer.unwrap_or(TOP_LAYER))]);
        self.write_frame_on(now, mid, track.kind(), rtp_time, data, None, Some(rid))
    }

    /// Writes one frame on the m-line `mid` (which must send `kind`'s codec), if connected,
    /// with the sender's audio level (RFC 6464) passed on where it came with one, on the
    /// simulcast stream `rid` if given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_frame_on(
        &mut self,
        now: Instant,
        mid: Mid,
        kind: MediaKind,
        rtp_time: MediaTime,
        data: &Arc<[u8]>,
        audio_level: Option<i8>,
        rid: Option<Rid>,
    ) -> bool {
        if !self.connected || self.failure.is_some() {
            return false;
        }
        let rtc = &mut self.rtc;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let Some(writer) = rtc.writer(mid) else {
                return Ok(false);
            };
            let Some(pt) = writer
                .payload_params()
                .find(|p| p.spec().codec == codec_for(kind))
                .map(|p| p.pt())
            else {
                return Ok(false);
            };
            let writer = match audio_level {
                // The voice-activity flag: speech is well above the silence floor.
                Some(level) => writer.audio_level(level, level > VOICE_ACTIVITY_DBOV),
                None => writer,
            };
            let writer = match rid {
                Some(rid) => writer.rid(rid),
                None => writer,
            };
            writer.write(pt, now, rtp_time, data.clone()).map(|()| true)
        }));
        match result {
            Ok(Ok(written)) => written,
            // The link's send queue is full (the source outruns it): lose this frame, not the
            // link.
            Ok(Err(str0m::RtcError::WriteWithoutPoll)) => {
                tracing::debug!(link = %self.id, "send queue full: frame dropped");
                false
            }
            Ok(Err(e)) => {
                self.fail(format!("write failed: {e}"));
                false
            }
            Err(_) => {
                self.fail("str0m panicked writing a frame".into());
                false
            }
        }
    }

    /// Forwards an RTP packet received on another link, under sequence number `seq_no` and
    /// RTP time `time` (the caller's: see `layers::LayerChoice::forward_packet` and
    /// `splice::PacketSplices`). A packet of simulcast `layer` goes on that layer's stream
    /// where this link [`Self::sends_layers`]; otherwise on the one stream. Returns whether
    /// str0m took it.
    pub(crate) fn write_packet(
        &mut self,
        track: Track,
        packet: &RtpPacket,
        layer: Option<LayerIndex>,
        (seq_no, time): (u64, u64),
    ) -> bool {
        if !self.connected || self.failure.is_some() || self.mode != LinkMode::Packets {
            return false;
        }
        let Some(mid) = self.send_mids.mid_of(track) else {
            return false;
        };
        let kind = track.kind();
        let Some(pt) = self.send_pt(mid, kind) else {
            return false;
        };
        let rid = self
            .out_stream(track, layer)
            .map(|stream| Rid::from(LAYER_RIDS[usize::from(stream)]));
        let seq_no = seq_no.into();
        let rtc = &mut self.rtc;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut api = rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
                return false;
            };
            // Only the low 32 bits of the extended time travel in the header.
            let time = time as u32;
            let write = RtpWrite::new(pt, seq_no, time, packet.timestamp, packet.payload.clone())
                .marker(packet.header.marker)
                .nackable(kind == MediaKind::Video);
            stream.write_rtp(write);
            true
        }));
        match result {
            Ok(written) => written,
            Err(_) => {
                self.fail("str0m panicked forwarding a packet".into());
                false
            }
        }
    }

    /// The payload type negotiated on `mid` for `kind`'s codec.
    fn send_pt(&self, mid: Mid, kind: MediaKind) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| media.remote_pts().contains(&p.pt()) && p.spec().codec == codec_for(kind))
            .map(|p| p.pt())
    }

    /// Asks the peer for a keyframe of `track` now (of its simulcast `layer`, if given; of
    /// every layer it sends if not); the router's rate limit was checked by the caller.
    /// Returns whether a request went to str0m: false when this link does not receive `track`
    /// or str0m cannot ask yet (no stream seen), which the rate limit must not count.
    pub(crate) fn request_keyframe(&mut self, track: Track, layer: Option<LayerIndex>) -> bool {
        let Some(mid) = self.recv_mids.mid_of(track) else {
            return false;
        };
        let mut rids: Vec<Option<Rid>> = self
            .layered
            .iter()
            .filter(|(layered, index)| *layered == track && layer.is_none_or(|l| l == *index))
            .map(|(_, index)| Some(Rid::from(LAYER_RIDS[*index as usize])))
            .collect();
        if rids.is_empty() {
            rids.push(layer.map(|index| Rid::from(LAYER_RIDS[index as usize])));
        }
        let mut asked = false;
        for rid in rids {
            asked |= match self.mode {
                LinkMode::Frames => self.rtc.writer(mid).is_some_and(|mut writer| {
                    writer.is_request_keyframe_possible(KeyframeRequestKind::Pli)
                        && writer
                            .request_keyframe(rid, KeyframeRequestKind::Pli)
                            .is_ok()
                }),
                LinkMode::Packets => {
                    let mut api = self.rtc.direct_api();
                    match api.stream_rx_by_mid(mid, rid) {
                        Some(stream) => {
                            stream.request_keyframe(KeyframeRequestKind::Pli);
                            true
                        }
                        None => false,
                    }
                }
            };
        }
        asked
    }

    /// Aims the link's bandwidth estimation at `goals`: padding up to the minimum as the
    /// estimate allows, probes up to the desired rate (no higher: probing costs the link what
    /// it probes with).
    pub(crate) fn set_bitrate_goals(&mut self, goals: BitrateGoals) {
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(goals.minimum), Bitrate::bps(goals.desired));
    }

    /// Starts the link's bandwidth estimation again from `bps`, keeping its goals (see
    /// [`crate::estimation`] for why).
    pub(crate) fn restart_estimation(&mut self, bps: u64) {
        tracing::debug!(link = %self.id, bps, "bandwidth estimation restarted to probe");
        self.rtc.bwe().reset(Bitrate::bps(bps));
    }

    /// Whether ICE and DTLS completed.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Drains str0m's output until it returns a timeout; returns that deadline.
    pub(crate) fn drain(&mut self, now: Instant, out: &mut Vec<LinkOutput>) -> Instant {
        loop {
            if !self.is_alive() {
                return now;
            }
            let rtc = &mut self.rtc;
            let output = match catch_unwind(AssertUnwindSafe(|| rtc.poll_output())) {
                Ok(Ok(output)) => output,
                Ok(Err(e)) => {
                    self.fail(format!("poll failed: {e}"));
                    return now;
                }
                Err(_) => {
                    self.fail("str0m panicked polling output".into());
                    return now;
                }
            };
            match output {
                Output::Timeout(deadline) => return deadline,
                Output::Transmit(t) => out.push(LinkOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(event) => self.handle_event(event, out),
            }
        }
    }

    fn handle_event(&mut self, event: Event, out: &mut Vec<LinkOutput>) {
        match event {
            Event::Connected => {
                self.connected = true;
                out.push(LinkOutput::Connected);
                // A subscriber can only decode from a keyframe: ask for one right away instead of
                // waiting for the sender's next periodic keyframe.
                for track in [Track::Camera, Track::Screen] {
                    out.push(LinkOutput::KeyframeNeeded { track });
                }
            }
            Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                self.fail("ice disconnected".into());
            }
            Event::MediaAdded(added) => {
                tracing::debug!(link = %self.id, mid = %added.mid, kind = ?added.kind, direction = ?added.direction, "media added");
                let track = added_track(&self.rtc, &added, self.unnamed_video);
                if matches!(added.direction, Direction::SendOnly | Direction::SendRecv) {
                    self.send_mids.insert(added.mid, track);
                    // The streams of every negotiated layer exist once the SDP is applied.
                    let top = Some(Rid::from(LAYER_RIDS[usize::from(TOP_LAYER)]));
                    if self
                        .rtc
                        .direct_api()
                        .stream_tx_by_mid(added.mid, top)
                        .is_some()
                        && !self.sends_layers.contains(&track)
                    {
                        self.sends_layers.push(track);
                    }
                }
                if matches!(added.direction, Direction::RecvOnly | Direction::SendRecv) {
                    self.recv_mids.insert(added.mid, track);
                }
            }
            Event::RtpPacket(packet) => {
                let pt = packet.header.payload_type;
                let audio = self
                    .rtc
                    .codec_config()
                    .find(|p| p.pt() == pt)
                    .map(|p| p.spec().codec.is_audio());
                let Some(audio) = audio else {
                    return;
                };
                let kind = if audio {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let track = self.received_track(packet.header.ext_vals.mid, kind);
                // str0m's senders name the layer in every packet; a stream announced by its
                // first packets only is known by its SSRC.
                let rid = packet.header.ext_vals.rid.or_else(|| {
                    self.rtc
                        .direct_api()
                        .stream_rx(&packet.header.ssrc)
                        .and_then(|stream| stream.rid())
                });
                let layer = rid.and_then(|rid| layer_of_rid(&rid));
                if let Some(layer) = layer
                    && !self.layered.contains(&(track, layer))
                {
                    self.layered.push((track, layer));
                }
                out.push(LinkOutput::Packet {
                    track,
                    packet: Box::new(packet),
                    layer,
                });
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                out.push(LinkOutput::BandwidthEstimate {
                    bits_per_second: estimate.as_u64(),
                });
            }
            Event::PeerStats(stats) => {
                if let Some(estimate) = stats.bwe_tx {
                    tracing::debug!(link = %self.id, latest = estimate.as_u64(), loss = ?stats.egress_loss_fraction, rtt = ?stats.rtt, "estimator sampled");
                    out.push(LinkOutput::EstimatorSample {
                        latest_bps: estimate.as_u64(),
                        loss: stats.egress_loss_fraction,
                    });
                }
            }
            Event::MediaIngressStats(stats) => {
                let stream = (stats.mid, stats.rid);
                match self.ingress.iter_mut().find(|(s, _)| *s == stream) {
                    Some((_, packets)) => *packets = stats.packets,
                    None => self.ingress.push((stream, stats.packets)),
                }
            }
            Event::KeyframeRequest(request) => {
                out.push(LinkOutput::KeyframeRequested { mid: request.mid });
            }
            Event::MediaData(data) => {
                // The codec says what the frame is, whoever added the m-line.
                let kind = if data.params.spec().codec.is_audio() {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let track = self.received_track(Some(data.mid), kind);
                if kind == MediaKind::Video {
                    if data.is_keyframe() && !self.keyframed.contains(&track) {
                        self.keyframed.push(track);
                    }
                    // The request on connecting can come too early: the sender's source may
                    // not be sending yet (a WHIP client still connecting), or its keyframe
                    // was dropped while this link was held. Until a keyframe arrives, every
                    // frame asks (the router's rate limit keeps that to one a second).
                    if !data.contiguous || !self.keyframed.contains(&track) {
                        out.push(LinkOutput::KeyframeNeeded { track });
                    }
                }
                let layer = data
                    .rid
                    .and_then(|rid| layer_of_rid(&rid))
                    .map(|layer| LayeredFrame {
                        layer,
                        temporal: match data.codec_extra {
                            CodecExtra::Vp8(vp8) => Some(vp8.layer_index),
                            _ => None,
                        },
                        keyframe: data.is_keyframe(),
                        rtp_time: data.time.numer(),
                        bytes: data.data.len(),
                        height: vp8_keyframe_size(&data.data).map(|(_, height)| height),
                    });
                if let Some(layer) = layer
                    && !self.layered.contains(&(track, layer.layer))
                {
                    self.layered.push((track, layer.layer));
                }
                out.push(LinkOutput::Frame {
                    track,
                    rtp_time: data.time.numer(),
                    contiguous: data.contiguous,
                    audio_level: data.ext_vals.audio_level,
                    data: data.data,
                    layer,
                });
            }
            _ => {}
        }
    }

    /// The track arriving on `mid`: as negotiated, else the main one of `kind`.
    fn received_track(&self, mid: Option<Mid>, kind: MediaKind) -> Track {
        mid.and_then(|mid| self.recv_mids.track_of(mid))
            .filter(|track| track.kind() == kind)
            .unwrap_or(Track::main(kind))
    }

    pub(crate) fn close(&mut self) {
        self.rtc.disconnect();
    }

    fn fail(&mut self, reason: String) {
        if self.failure.is_none() {
            // The driver reports the close with this reason at info; a peer leaving is routine.
            tracing::debug!(link = %self.id, %reason, "link failed");
            self.failure = Some(reason);
        }
    }
}

/// An RTP time in `kind`'s clock.
pub(crate) fn media_time(kind: MediaKind, rtp_time: u64) -> MediaTime {
    let clock = match kind {
        MediaKind::Audio => Frequency::FORTY_EIGHT_KHZ,
        MediaKind::Video => Frequency::NINETY_KHZ,
    };
    MediaTime::new(rtp_time, clock)
}
