//! Draining links and carrying out the router's answers: relayed packets to children, frames
//! to subscribers, playback slots and the node, keyframe requests upstream. The hot path of a
//! relayer: scratch buffers are reused and nothing here allocates per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chroom_types::{LinkId, MediaKind, Track};
use str0m::Input;
use str0m::rtp::RtpPacket;

use super::{FrameOut, MediaActor, relayed, steer_estimation};
use crate::api::{MediaEvent, ReceivedFrame};
use crate::codec::{vp8_keyframe_size, vp8_packet};
use crate::layers::{Budget, LayerIndex, LayeredFrame, TOP_LAYER};
use crate::link::{LinkOutput, media_time};
use crate::router::FrameRoute;
use crate::splice::Spliced;

impl MediaActor {
    /// Drains the links that took input (every link after a command), sends their datagrams,
    /// forwards relayed packets and removes dead links. Events wait in `pending_events`.
    pub(super) fn process(&mut self) {
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
            self.relay.rtp_packets_received += state.link.packets_received();
            self.router.handle_link_closed(id);
            self.speakers.forget(id);
            self.simulcast.forget(id);
            self.splices.forget(id);
            self.packet_splices.forget(id);
            let reason = state.close_reason();
            tracing::info!(link = %id, ?reason, "link closed");
            self.pending_events
                .push_back(MediaEvent::LinkClosed { link: id, reason });
        }
        // Keep the allocation; input since this pass lands in `self.dirty` anew.
        if self.dirty.is_empty() {
            self.dirty = ids;
        }
    }

    /// Sends the frames waiting in `frames_out` (local sources' to every subscriber, remote
    /// members' to their playback slot), and has str0m packetize them at once (it does so on
    /// a timeout). Returns the links written to.
    fn send_frames(
        &mut self,
        now: Instant,
        relayed: &mut Vec<(LinkId, LinkOutput)>,
    ) -> Vec<LinkId> {
        let mut frames = std::mem::take(&mut self.scratch.frames_out);
        let mut written = Vec::new();
        for frame in frames.drain(..) {
            match frame.to {
                None => written.extend(self.write_frame(now, &frame)),
                Some((link, mid)) => {
                    let kind = frame.track.kind();
                    let time = media_time(kind, frame.rtp_time);
                    if self.links.get_mut(&link).is_some_and(|state| {
                        state.link.write_frame_on(
                            now,
                            mid,
                            kind,
                            time,
                            &frame.data,
                            frame.audio_level,
                            None,
                        )
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

    /// Writes a frame from this node on every subscriber that sends its track (the router's
    /// subscribers: every link but local sources) and that its source feeds (a broadcast's
    /// program, or the browser's own tracks); a layered frame goes only where the simulcast
    /// choice sends it. Returns the links written to.
    pub(super) fn write_frame(&mut self, now: Instant, frame: &FrameOut) -> Vec<LinkId> {
        let kind = frame.track.kind();
        let mut written = Vec::new();
        let mut await_keyframe = false;
        // What a track that another source fed until now waits for (the splice).
        let keyframe = match frame.layer {
            Some((_, layered)) => layered.keyframe,
            None => kind == MediaKind::Video && vp8_keyframe_size(&frame.data).is_some(),
        };
        for id in self.router.subscribers() {
            let Some(state) = self.links.get_mut(id) else {
                continue;
            };
            if !state.link.sends(frame.track) || !self.router.feeds(frame.source, *id) {
                continue;
            }
            if state.link.sends_layers(frame.track) {
                // A relayer: every layer, each on its own stream, for it to choose from (an
                // unlayered source's on the top one).
                let layer = frame.layer.map_or(TOP_LAYER, |(_, layered)| layered.layer);
                let stream = (*id, frame.track, Some(layer));
                let time = match self
                    .splices
                    .splice(stream, frame.source, frame.rtp_time, keyframe)
                {
                    Spliced::Write(time) => media_time(kind, time),
                    Spliced::AwaitKeyframe => {
                        await_keyframe = true;
                        continue;
                    }
                };
                if state
                    .link
                    .write_layer_frame(now, frame.track, Some(layer), time, &frame.data)
                {
                    written.push(*id);
                }
                continue;
            }
            let rtp_time = match frame.layer {
                None => frame.rtp_time,
                Some((source, layered)) => {
                    let budget = state.aim.budget(now);
                    let routed =
                        self.simulcast
                            .route(now, source, frame.track, *id, layered, budget);
                    match routed {
                        Some(rtp_time) => rtp_time,
                        None => continue,
                    }
                }
            };
            let spliced =
                self.splices
                    .splice((*id, frame.track, None), frame.source, rtp_time, keyframe);
            let rtp_time = match spliced {
                Spliced::Write(rtp_time) => rtp_time,
                Spliced::AwaitKeyframe => {
                    await_keyframe = true;
                    continue;
                }
            };
            let time = media_time(kind, rtp_time);
            if state
                .link
                .write_frame(now, frame.track, time, &frame.data, frame.audio_level)
            {
                written.push(*id);
            }
        }
        if let Some((source, _)) = frame.layer
            && self.request_layer_keyframes(now, source, frame.track)
        {
            written.push(source);
        }
        if await_keyframe && self.ask_keyframe(now, frame.source, frame.track) {
            written.push(frame.source);
        }
        written
    }

    /// Drains `ids`, sending their datagrams; frames go where the router says, link changes to
    /// `pending_events`, packets and keyframe requests to relay to `relayed`.
    fn drain_links(
        &mut self,
        now: Instant,
        ids: &[LinkId],
        relayed: &mut Vec<(LinkId, LinkOutput)>,
    ) {
        let mut outputs = std::mem::take(&mut self.scratch.outputs);
        let mut connected = Vec::new();
        let events = &mut self.pending_events;
        // Only a wildcard bind has several source addresses to choose from.
        let local_ips: &[SocketAddr] = if self.local_addr.ip().is_unspecified() {
            &self.page_candidates
        } else {
            &[]
        };
        for id in ids {
            let Some(state) = self.links.get_mut(id) else {
                continue;
            };
            // A keyframe request the link asked for leaves on its next drain: drain again.
            let mut asked = true;
            while std::mem::take(&mut asked) {
                outputs.clear();
                state.next_timeout = state.link.drain(now, &mut outputs);
                for output in outputs.drain(..) {
                    match output {
                        LinkOutput::Transmit {
                            source,
                            destination,
                            contents,
                        } => relayed::transmit(
                            self.relay_client.as_ref(),
                            local_ips,
                            &mut self.outbox,
                            source,
                            destination,
                            contents,
                        ),
                        LinkOutput::Connected => {
                            state.connect_deadline = None;
                            // Where the handshake's last datagram came from: the path ICE chose
                            // (a relayer's address when the peer's allocation relays it, or
                            // `via_relay` when this node's own does).
                            let (remote, via_relay) = (state.last_source, state.last_via_relay);
                            tracing::info!(link = %id, ?remote, via_relay, elapsed = ?self.started.elapsed(), "link connected");
                            events.push_back(MediaEvent::LinkConnected { link: *id });
                            connected.push(*id);
                            steer_estimation(&self.simulcast, now, *id, state);
                        }
                        LinkOutput::BandwidthEstimate { bits_per_second } => {
                            tracing::debug!(link = %id, bits_per_second, "estimate averaged");
                            state.aim.averaged(bits_per_second);
                            steer_estimation(&self.simulcast, now, *id, state);
                        }
                        LinkOutput::EstimatorSample { latest_bps, loss } => {
                            if state.aim.sampled(now, latest_bps, loss) {
                                tracing::info!(link = %id, latest_bps, ?loss, "link narrowed: layers follow its latest estimate");
                            }
                        }
                        LinkOutput::Frame {
                            track,
                            rtp_time,
                            contiguous,
                            data,
                            audio_level,
                            layer,
                        } => {
                            state.media_arrived(now, events);
                            match self.router.route_frame(*id, track) {
                                FrameRoute::Silenced | FrameRoute::Held => {}
                                FrameRoute::ToSubscribers => {
                                    if let Some(layered) = &layer {
                                        self.simulcast.observe(now, *id, track, layered);
                                    }
                                    self.scratch.frames_out.push(FrameOut {
                                        to: None,
                                        track,
                                        source: *id,
                                        rtp_time,
                                        data,
                                        audio_level,
                                        layer: layer.map(|layered| (*id, layered)),
                                    })
                                }
                                FrameRoute::ToNode { show_on } => {
                                    if let Some(level) = audio_level
                                        && track == Track::Microphone
                                    {
                                        self.speakers.observe(now, *id, level);
                                    }
                                    if let Some(to) = show_on {
                                        self.scratch.frames_out.push(FrameOut {
                                            to: Some(to),
                                            track,
                                            source: *id,
                                            rtp_time,
                                            data: data.clone(),
                                            audio_level,
                                            layer: None,
                                        });
                                    }
                                    let frame = ReceivedFrame {
                                        kind: track.kind(),
                                        track,
                                        rtp_time,
                                        contiguous,
                                        data,
                                        received_at: now,
                                        audio_level,
                                    };
                                    // Never wait for the frame reader: a slow recorder loses
                                    // frames, it does not stall every link of the node.
                                    if self.frames.try_send((*id, frame)).is_err() {
                                        self.relay.frames_dropped += 1;
                                        tracing::trace!(link = %id, "frame channel full: frame dropped");
                                    } else if track.kind() == MediaKind::Video {
                                        self.relay.video_frames_received += 1;
                                    } else {
                                        self.relay.audio_frames_received += 1;
                                    }
                                }
                            }
                        }
                        LinkOutput::KeyframeNeeded { track } => {
                            if self.router.keyframe_due(now, *id, track)
                                && state.link.request_keyframe(track, None)
                            {
                                self.router.handle_keyframe_requested(now, *id, track);
                                asked = true;
                            }
                        }
                        relay @ LinkOutput::Packet { .. } => {
                            state.media_arrived(now, events);
                            relayed.push((*id, relay));
                        }
                        relay @ LinkOutput::KeyframeRequested { .. } => {
                            relayed.push((*id, relay));
                        }
                    }
                }
            }
        }
        self.scratch.outputs = outputs;
        // A page's playback link that just connected wants a keyframe from every member it
        // shows, now: the sources' links are drained on the next pass.
        let mut keyframes = Vec::new();
        for playback in connected {
            self.router.shown_on(playback, &mut keyframes);
        }
        for target in keyframes {
            if self.request_keyframe(now, target) {
                self.dirty.push(target.link);
            }
        }
    }

    /// Writes relayed packets to the children the router names for the link they came on, and
    /// passes keyframe requests to where the router sends them (rate-limited: requests from
    /// many children merge into one upstream). Adds the links written to to `written`, and
    /// when each forwarded packet arrived to `received`.
    fn forward_packets(
        &mut self,
        now: Instant,
        relayed: &mut Vec<(LinkId, LinkOutput)>,
        written: &mut Vec<LinkId>,
        received: &mut Vec<Instant>,
    ) {
        for (from, output) in relayed.drain(..) {
            match output {
                LinkOutput::Packet {
                    track,
                    packet,
                    layer,
                } => {
                    let children = self.router.downstream(from);
                    if children.is_empty() {
                        continue;
                    }
                    received.push(packet.timestamp);
                    let layered = layer.and_then(|layer| layered_packet(layer, &packet));
                    // Only a parent sending several layers leaves a choice; of one stream (a
                    // source without layers goes out as the top one) no child is paused. It
                    // still goes through the choice: a child must never see one layer's
                    // sequence numbers, then another's (a jump of more than half the space
                    // breaks its SRTP, which reads the rollover counter from the number).
                    let has_choice = layered
                        .as_ref()
                        .is_some_and(|layered| self.simulcast.observe(now, from, track, layered));
                    for child in children {
                        let Some(state) = self.links.get_mut(child) else {
                            continue;
                        };
                        // A child that takes one stream gets the layer its link carries,
                        // renumbered; a relayer takes every layer as it comes.
                        let numbered = match layered {
                            Some(layered) if !state.link.sends_layers(track) => {
                                // Without a choice, no limit: it never pauses.
                                let budget = if has_choice {
                                    state.aim.budget(now)
                                } else {
                                    Budget::default()
                                };
                                let seq = *packet.seq_no;
                                match self
                                    .simulcast
                                    .route_packet(now, from, track, *child, layered, seq, budget)
                                {
                                    Some(renumbered) => Some(renumbered),
                                    None => continue,
                                }
                            }
                            _ => None,
                        };
                        let numbered = numbered.unwrap_or((*packet.seq_no, packet.time.numer()));
                        // The child's numbers and times run on if this node's parent changed.
                        let Some(numbered) = self.packet_splices.splice(
                            (*child, track, state.link.out_stream(track, layer)),
                            from,
                            numbered,
                            now,
                        ) else {
                            continue;
                        };
                        let sent = state.link.write_packet(track, &packet, layer, numbered);
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
                    if layered.is_some()
                        && self.request_layer_keyframes(now, from, track)
                        && !written.contains(&from)
                    {
                        written.push(from);
                    }
                }
                LinkOutput::KeyframeRequested { mid } => {
                    // The track asked about, as this link sends it (a relayed or local stream).
                    let sent = self
                        .links
                        .get(&from)
                        .and_then(|state| state.link.send_track(mid));
                    let mut targets = std::mem::take(&mut self.scratch.keyframes);
                    self.router
                        .route_keyframe_request(now, from, mid, sent, &mut targets);
                    for target in targets.drain(..) {
                        if self.request_keyframe(now, target) && !written.contains(&target.link) {
                            written.push(target.link);
                        }
                    }
                    self.scratch.keyframes = targets;
                }
                _ => {}
            }
        }
    }

    /// Relay figures in the log every 10 s while relaying.
    fn log_relay(&mut self, now: Instant) {
        let children = self.router.child_count();
        if children == 0
            || now.saturating_duration_since(self.last_relay_log) < Duration::from_secs(10)
        {
            return;
        }
        self.last_relay_log = now;
        let r = &self.relay;
        tracing::info!(
            children,
            packets = r.packets_forwarded,
            bytes = r.bytes_forwarded,
            dropped = r.dropped,
            keyframe_requests = r.keyframe_requests,
            frames_dropped = r.frames_dropped,
            hop_p50_us = r.hop_latency.percentile(50.0).map(|d| d.as_micros()),
            hop_p99_us = r.hop_latency.percentile(99.0).map(|d| d.as_micros()),
            "relaying"
        );
    }
}

/// What the layer choice needs of a relayed video packet of simulcast `layer` (`None` for a
/// payload that is not VP8 as it should be: it goes nowhere a layer is chosen).
fn layered_packet(layer: LayerIndex, packet: &RtpPacket) -> Option<LayeredFrame> {
    let vp8 = vp8_packet(&packet.payload)?;
    Some(LayeredFrame {
        layer,
        temporal: vp8.temporal,
        keyframe: vp8.keyframe,
        rtp_time: packet.time.numer(),
        bytes: packet.payload.len(),
        height: vp8.height,
    })
}
