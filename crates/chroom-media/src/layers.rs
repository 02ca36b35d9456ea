//! Simulcast: which of a source's layers each receiving link gets (LiveKit's and mediasoup's
//! "simulcast consumer"), and how the switch stays invisible to the receiver's decoder.
//!
//! Sans-IO, like the router: time and bandwidth estimates are inputs, frames are described by
//! their layer, temporal layer and keyframe flag, and every answer is a plain value.
//!
//! The policy, per receiving link and source:
//! - the **target** is the highest layer whose measured bitrate fits the link's estimate, less
//!   what audio needs (audio is never dropped), and no higher than [`Budget::max_layer`];
//! - a new target must hold before it is taken ([`LayerChoice::propose`]): a dip of a
//!   delay-based estimate moves nobody;
//! - going **down**, the current layer is thinned to its base temporal layer (a frame in two
//!   or four is kept, which still decodes) until a keyframe of the lower layer arrives;
//! - every switch happens on a keyframe of the target layer, which the caller asks the source
//!   for ([`Simulcast::wanted_keyframes`]);
//! - less than the lowest layer whole (its base, or nothing) is chosen only when the link
//!   loses packets and its averaged estimate too leaves no room for it
//!   ([`Budget::confirmed`]): an estimate that dipped on a busy machine lowers layers, never
//!   freezes video;
//! - when not even the lowest layer's base fits, video **pauses**; the link stays audio-only
//!   until the estimate grows back over the lowest layer, and pads toward it meanwhile
//!   ([`BitrateGoals`]);
//! - the receiver sees one stream: RTP time continues across switches (each layer has its own
//!   timestamp origin in some browsers), and the sending link numbers packets itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chroom_types::{LinkId, Track};

use crate::{VIDEO_CLOCK_HZ, clock_ticks};

/// A simulcast layer of one source: 0 is the lowest (smallest) one.
pub type LayerIndex = u8;

/// How many layers a source sends at most.
pub const MAX_LAYERS: usize = 3;

/// The highest layer there is.
pub const TOP_LAYER: LayerIndex = MAX_LAYERS as LayerIndex - 1;

/// The RTP stream ids pages send their camera's layers under, lowest first (LiveKit's names:
/// quarter, half, full resolution).
pub const LAYER_RIDS: [&str; MAX_LAYERS] = ["q", "h", "f"];

/// The layer a stream id names, if it is one of [`LAYER_RIDS`].
pub fn layer_of_rid(rid: &str) -> Option<LayerIndex> {
    LAYER_RIDS
        .iter()
        .position(|name| *name == rid)
        .map(|index| index as LayerIndex)
}

/// What a link's audio takes beside the video (Opus at about 32 kbit/s, plus RTP, SRTP and
/// UDP overhead at 50 packets a second): reserved before any layer is chosen.
pub const AUDIO_RESERVE_BPS: u64 = 56_000;

/// Share of a link's estimate video may use: the rest absorbs the estimate's error and
/// retransmissions.
const ESTIMATE_USABLE: f64 = 0.85;

/// What a switch up must leave spare, so a layer at the edge of the estimate does not flap.
const UP_HEADROOM: f64 = 1.15;

/// The base temporal layer's share of a layer's bitrate (libwebrtc's L1T3 split is roughly
/// 60/20/20; the base is kept when a link cannot take the whole layer).
const BASE_TEMPORAL_SHARE: f64 = 0.6;

/// How long a lower choice must hold before a receiver is moved down to it: a delay-based
/// estimate dips for a moment when a machine is busy, and a switch costs a keyframe.
const DOWN_AFTER: Duration = Duration::from_millis(500);

/// How long "nothing fits" must hold before a receiver's video pauses: a pause is a freeze,
/// so only a lasting shortfall earns it.
const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// How long a higher choice must hold before a receiver is moved up to it.
const UP_AFTER: Duration = Duration::from_millis(1500);

/// How long after its first frame a receiver moves up without waiting for [`UP_AFTER`]: a
/// source's lowest layer tends to arrive first, and a call should not open on it.
const STARTING: Duration = Duration::from_secs(2);

/// Window the layers' bitrates are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A layer that sent nothing for this long is taken as gone: the browser stopped it (its
/// encoder drops top layers when its CPU or its own link cannot keep up), and a receiver
/// forwarded that layer sees nothing until it switches, so the wait is a freeze. 15 frames at
/// 30 fps: longer than an encoder skips.
const LAYER_GONE_AFTER: Duration = Duration::from_millis(500);

/// One frame of a layered source, as far as the choice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayeredFrame {
    pub layer: LayerIndex,
    /// The temporal layer (0 the base), where the codec says.
    pub temporal: Option<u8>,
    pub keyframe: bool,
    /// The source's RTP time of the frame (90 kHz for video).
    pub rtp_time: u64,
    pub bytes: usize,
    /// The picture's height, where the frame says (a VP8 keyframe).
    pub height: Option<u16>,
}

/// The measured bitrate of each layer of one source.
#[derive(Debug, Default)]
pub struct LayerRates {
    layers: [RateWindow; MAX_LAYERS],
    /// Every layer a frame ever arrived of, one bit each.
    seen: u8,
    /// Each layer's picture height, from its last keyframe.
    heights: [Option<u16>; MAX_LAYERS],
}

#[derive(Debug, Default)]
struct RateWindow {
    /// Bytes counted in the window that began at `since`.
    bytes: u64,
    since: Option<Instant>,
    /// The last full window's bitrate.
    rate: Option<u64>,
    last_frame: Option<Instant>,
}

impl LayerRates {
    /// Counts a frame of `layer`.
    pub fn observe(&mut self, now: Instant, frame: &LayeredFrame) {
        let layer = frame.layer as usize;
        let Some(window) = self.layers.get_mut(layer) else {
            return;
        };
        if frame.height.is_some() {
            self.heights[layer] = frame.height;
        }
        self.seen |= 1 << layer;
        let bytes = frame.bytes;
        window.last_frame = Some(now);
        let since = *window.since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= RATE_WINDOW {
            window.rate = Some((window.bytes * 8 * 1000) / elapsed.as_millis().max(1) as u64);
            window.bytes = 0;
            window.since = Some(now);
        }
        window.bytes += bytes as u64;
    }

    /// The bitrate of `layer` over its last full window; `None` while unknown or when the
    /// layer stopped arriving.
    pub fn rate(&self, now: Instant, layer: LayerIndex) -> Option<u64> {
        if !self.is_arriving(now, layer) {
            return None;
        }
        self.layers[layer as usize].rate
    }

    /// The lowest arriving layer at least `height` pixels tall (the top one if none is): what
    /// a receiver showing the source that tall has use for.
    pub fn layer_for_height(&self, now: Instant, height: u32) -> Option<LayerIndex> {
        let mut arriving = (0..MAX_LAYERS as LayerIndex).filter(|l| self.is_arriving(now, *l));
        let tall_enough = |layer: &LayerIndex| {
            self.heights[*layer as usize].is_some_and(|h| u32::from(h) >= height)
        };
        arriving
            .clone()
            .find(tall_enough)
            .or_else(|| arriving.next_back())
    }

    /// Whether frames of more than one layer ever arrived: only then is there a choice (a
    /// source sending one stream is forwarded as it is, as it would be without layers).
    pub fn has_choice(&self) -> bool {
        self.seen.count_ones() > 1
    }

    /// Whether frames of `layer` arrive.
    pub fn is_arriving(&self, now: Instant, layer: LayerIndex) -> bool {
        self.layers.get(layer as usize).is_some_and(|window| {
            window
                .last_frame
                .is_some_and(|at| now.saturating_duration_since(at) < LAYER_GONE_AFTER)
        })
    }
}

/// What a receiving link should get of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This layer, whole.
    Layer(LayerIndex),
    /// This layer's base temporal layer only (nothing whole fits).
    Base(LayerIndex),
    /// No video: not even the lowest layer's base fits.
    Paused,
}

/// What the receiver may take, in the terms of [`choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// The link's send estimate (bit/s); `None` without bandwidth estimation: no limit.
    pub estimate: Option<u64>,
    /// The link's estimate where loss shows it short (bit/s): less than the lowest layer
    /// whole (its base temporal layer, or a pause, which the user sees as a freeze) is taken
    /// only if this too leaves no room for that layer. `None`: the link loses nothing, so its
    /// estimate may be a busy machine's dip (a receiver reading late), and the lowest layer
    /// stays whole.
    pub confirmed: Option<u64>,
    /// What else the link carries (audio, other streams), bit/s.
    pub reserved: u64,
    /// The highest layer the receiver has use for (the size it shows the source at, see
    /// [`Simulcast::set_shown_height`]); `None`: any.
    pub max_layer: Option<LayerIndex>,
}

/// The layer a receiver with `budget` should get now that it gets `current`, from the
/// layers' measured `rates`. Layers not arriving are skipped; a layer whose rate is not known
/// yet (its first second) counts as fitting, so a call starts on the top layer and adapts.
pub fn choose(now: Instant, rates: &LayerRates, budget: Budget, current: Target) -> Target {
    let layers = 0..MAX_LAYERS as LayerIndex;
    let lowest = layers.clone().find(|layer| rates.is_arriving(now, *layer));
    let Some(lowest) = lowest else {
        return current;
    };
    // The receiver's limit, but never below what there is.
    let highest_useful = budget
        .max_layer
        .map_or(MAX_LAYERS as LayerIndex - 1, |max| max.max(lowest));
    let mut candidates = layers
        .rev()
        .filter(|layer| *layer <= highest_useful && rates.is_arriving(now, *layer));
    let Some(estimate) = budget.estimate else {
        return candidates.next().map_or(current, Target::Layer);
    };
    let spare_of = |estimate: u64| (estimate as f64 * ESTIMATE_USABLE) - budget.reserved as f64;
    let spare = spare_of(estimate);
    let held = match current {
        Target::Layer(layer) => Some(layer),
        Target::Base(_) | Target::Paused => None,
    };
    // Staying (or going down) needs the layer to fit; going up needs headroom too.
    let fits = |layer: LayerIndex, spare: f64| {
        let rate = rates.rate(now, layer).unwrap_or(0) as f64;
        let headroom = if held.is_some_and(|held| layer <= held) {
            1.0
        } else {
            UP_HEADROOM
        };
        rate * headroom <= spare
    };
    if let Some(layer) = candidates.find(|layer| fits(*layer, spare)) {
        return Target::Layer(layer);
    }
    // Less than a whole layer is a visible loss (a quarter of the frames, or none): only a
    // shortfall that loss confirms earns it. Without one, a receiver on a whole layer keeps
    // the lowest, and a thinned or paused one stays so until its estimate has room for a
    // whole layer again.
    let Some(confirmed) = budget.confirmed else {
        return match current {
            Target::Layer(_) => Target::Layer(lowest),
            held_back => held_back,
        };
    };
    let spare = spare_of(confirmed);
    if fits(lowest, spare) {
        return Target::Layer(lowest);
    }
    let base = rates.rate(now, lowest).unwrap_or(0) as f64 * BASE_TEMPORAL_SHARE;
    if base <= spare {
        Target::Base(lowest)
    } else {
        Target::Paused
    }
}

impl Target {
    /// Order from nothing to the top layer whole.
    fn rank(self) -> u8 {
        match self {
            Self::Paused => 0,
            Self::Base(layer) => 2 * layer + 1,
            Self::Layer(layer) => 2 * layer + 2,
        }
    }
}

/// One receiving link's view of one layered source: what it is sent now, what it should be
/// sent, and the RTP time it has seen. See the module doc.
#[derive(Debug)]
pub struct LayerChoice {
    target: Target,
    /// A different target [`choose`] keeps giving, and since when: it becomes the target once
    /// it has held long enough ([`Self::propose`]).
    proposed: Option<(Target, Instant)>,
    /// The layer frames are forwarded from (after its keyframe); `None` before the first
    /// keyframe and while paused.
    current: Option<LayerIndex>,
    /// Added to the source's RTP time of the current layer.
    offset: u64,
    /// The last RTP time sent, and when.
    last_sent: Option<(u64, Instant)>,
    /// When the first frame was forwarded.
    first_sent: Option<Instant>,
    /// Sequence numbering, when packets are forwarded ([`Self::forward_packet`]).
    numbering: Option<Numbering>,
}

/// How a receiver's packets are numbered: one sequence with no gaps, whichever layer they
/// come from and however many the choice held back.
#[derive(Debug, Clone, Copy)]
struct Numbering {
    /// Added to the current layer's (extended) sequence number.
    offset: u64,
    /// Packets numbered below this came before the offset last changed: if one arrives late,
    /// its number would collide with a later packet's, so it is dropped.
    valid_from: u64,
    /// The highest sequence number received of the current layer.
    last_in: u64,
    /// The last number sent.
    last_out: u64,
}

impl Default for LayerChoice {
    fn default() -> Self {
        Self {
            target: Target::Layer(MAX_LAYERS as LayerIndex - 1),
            proposed: None,
            current: None,
            offset: 0,
            last_sent: None,
            first_sent: None,
            numbering: None,
        }
    }
}

impl LayerChoice {
    /// [`choose`] says `target` now. It becomes the target once it has held: down for
    /// `DOWN_AFTER` (a pause for `PAUSE_AFTER`), up for `UP_AFTER`; at once, unless
    /// paused, while nothing is forwarded yet or the layer forwarded stopped arriving (waiting
    /// would only prolong a freeze), and up at once in the receiver's first seconds
    /// (`STARTING`). Returns whether the target changed.
    pub fn propose(&mut self, now: Instant, target: Target, current_arriving: bool) -> bool {
        if target == self.target {
            self.proposed = None;
            return false;
        }
        let down = target.rank() < self.target.rank();
        let since = match self.proposed {
            // The same direction keeps its clock: a choice sliding from one lower layer to
            // another is one lasting shortfall.
            Some((proposed, since)) if (proposed.rank() < self.target.rank()) == down => since,
            _ => now,
        };
        self.proposed = Some((target, since));
        let hold = match target {
            Target::Paused => PAUSE_AFTER,
            _ if down => DOWN_AFTER,
            _ => UP_AFTER,
        };
        let waiting = self.current.is_none() || !current_arriving;
        let starting = self
            .first_sent
            .is_some_and(|first| now.saturating_duration_since(first) < STARTING);
        let at_once = target != Target::Paused
            && self.target != Target::Paused
            && (waiting || (starting && !down));
        if at_once || now.saturating_duration_since(since) >= hold {
            self.set_target(target);
            self.proposed = None;
            return true;
        }
        false
    }

    /// The layer this receiver should get from now on.
    pub fn set_target(&mut self, target: Target) {
        self.target = target;
        if target == Target::Paused {
            self.current = None;
        }
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// The layer being forwarded, if any.
    pub fn current(&self) -> Option<LayerIndex> {
        self.current
    }

    /// The layer a keyframe is needed of before the target can be forwarded: the target is
    /// not the layer being forwarded.
    pub fn wants_keyframe(&self) -> Option<LayerIndex> {
        let wanted = match self.target {
            Target::Layer(layer) | Target::Base(layer) => layer,
            Target::Paused => return None,
        };
        (self.current != Some(wanted)).then_some(wanted)
    }

    /// Whether `frame` goes to this receiver, and under which RTP time.
    pub fn forward(&mut self, now: Instant, frame: LayeredFrame) -> Option<u64> {
        let (wanted, base_only) = match self.target {
            Target::Layer(layer) => (layer, false),
            Target::Base(layer) => (layer, true),
            Target::Paused => return None,
        };
        if frame.layer == wanted && frame.keyframe && self.current != Some(wanted) {
            self.switch_to(now, frame);
        }
        if self.current != Some(frame.layer) {
            return None;
        }
        // Going down, the current layer goes on thinned to its base until the target's
        // keyframe; going up, it goes on whole.
        let thinned = if frame.layer == wanted {
            base_only
        } else {
            wanted < frame.layer
        };
        if thinned && frame.temporal.is_some_and(|temporal| temporal > 0) {
            return None;
        }
        let time = frame.rtp_time.wrapping_add(self.offset);
        self.last_sent = Some((time, now));
        self.first_sent.get_or_insert(now);
        Some(time)
    }

    /// Whether `packet` goes to this receiver, and under which sequence number and RTP time:
    /// [`Self::forward`] for a relayer, which sees each frame as its packets (`packet.keyframe`
    /// set on a keyframe's first packet only). Packets are renumbered so the receiver sees no
    /// gap where a layer switched or a packet was held back, and no jump at a switch.
    pub fn forward_packet(
        &mut self,
        now: Instant,
        packet: LayeredFrame,
        seq: u64,
    ) -> Option<(u64, u64)> {
        let before = self.current;
        let forwarded = self.forward(now, packet);
        let switched = self.current != before;
        let Some(time) = forwarded else {
            // A packet of the forwarded layer held back (thinned): the ones after it close
            // the gap.
            if let Some(numbering) = &mut self.numbering
                && !switched
                && self.current == Some(packet.layer)
                && seq > numbering.last_in
            {
                numbering.offset = numbering.offset.wrapping_sub(1);
                numbering.valid_from = seq + 1;
                numbering.last_in = seq;
            }
            return None;
        };
        let numbering = match &mut self.numbering {
            Some(numbering) if !switched => numbering,
            _ => {
                // A new layer (or the first): its first packet follows the last one sent.
                let next = self.numbering.map_or(seq, |n| n.last_out.wrapping_add(1));
                self.numbering = Some(Numbering {
                    offset: next.wrapping_sub(seq),
                    valid_from: seq,
                    last_in: seq,
                    last_out: next,
                });
                return Some((next, time));
            }
        };
        if seq < numbering.valid_from {
            return None;
        }
        let out = seq.wrapping_add(numbering.offset);
        numbering.last_in = numbering.last_in.max(seq);
        numbering.last_out = numbering.last_out.max(out);
        Some((out, time))
    }

    /// Forwards from `frame`'s layer from now on, its RTP time continuing from the last one
    /// sent by as much as the wall clock moved.
    fn switch_to(&mut self, now: Instant, frame: LayeredFrame) {
        self.current = Some(frame.layer);
        self.offset = match self.last_sent {
            Some((last, at)) => {
                let ticks = clock_ticks(now.saturating_duration_since(at), VIDEO_CLOCK_HZ);
                last.wrapping_add(ticks).wrapping_sub(frame.rtp_time)
            }
            None => 0,
        };
    }
}

/// Logs `receiver` moving from layer `before` to `choice`'s current one (on that layer's
/// keyframe): beside the target's log line, how long the keyframe was waited for.
fn log_switch(receiver: LinkId, before: Option<LayerIndex>, choice: &LayerChoice) {
    if let Some(layer) = choice.current().filter(|_| choice.current() != before) {
        tracing::debug!(%receiver, layer, "simulcast layer switched on its keyframe");
    }
}

/// What a receiving link's bandwidth estimation aims at, bit/s (str0m's `set_bitrate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BitrateGoals {
    /// What the next layer up needs (0 on the top layer). The link pads up to it as far as
    /// its estimate allows: a link carrying less than it could (a receiver lowered or paused)
    /// then shows the estimator the room there is, which it would otherwise find only 1.5×
    /// what the link carries at a time.
    pub minimum: u64,
    /// What the top layer needs: probes go as high.
    pub desired: u64,
    /// A video the link carries is paused: it probes more often ([`crate::estimation`]).
    pub paused: bool,
}

/// The layered sources of this node (its page's camera) and each receiving link's choice of
/// them: the routing state the actor consults per layered frame.
#[derive(Debug, Default)]
pub struct Simulcast {
    sources: HashMap<(LinkId, Track), LayeredSource>,
    /// How tall each receiving link's peer shows this node's camera, where it said.
    shown_heights: HashMap<LinkId, u32>,
}

#[derive(Debug, Default)]
struct LayeredSource {
    rates: LayerRates,
    receivers: HashMap<LinkId, LayerChoice>,
}

impl Simulcast {
    /// A frame of `track` arrived on `source` in one of its layers: counts it. Returns
    /// whether the source has more than one layer to choose from ([`LayerRates::has_choice`]).
    pub fn observe(
        &mut self,
        now: Instant,
        source: LinkId,
        track: Track,
        frame: &LayeredFrame,
    ) -> bool {
        let layered = self.sources.entry((source, track)).or_default();
        layered.rates.observe(now, frame);
        layered.rates.has_choice()
    }

    /// `receiver`'s peer shows this node's camera `height` pixels tall (`None`: it did not
    /// say, or wants it as large as the link carries): it gets no taller layer than that needs.
    pub fn set_shown_height(&mut self, receiver: LinkId, height: Option<u32>) {
        match height {
            Some(height) => self.shown_heights.insert(receiver, height),
            None => self.shown_heights.remove(&receiver),
        };
    }

    /// Whether `frame` (of `track` from `source`) goes to `receiver`, and under which RTP
    /// time; the receiver's target is brought up to date with its `budget` first.
    pub fn route(
        &mut self,
        now: Instant,
        source: LinkId,
        track: Track,
        receiver: LinkId,
        frame: LayeredFrame,
        budget: Budget,
    ) -> Option<u64> {
        let choice = self.choice(now, source, track, receiver, budget)?;
        let before = choice.current();
        let forwarded = choice.forward(now, frame);
        log_switch(receiver, before, choice);
        forwarded
    }

    /// [`Self::route`] for a relayer's packet with sequence number `seq`: whether it goes to
    /// `receiver`, and under which sequence number and RTP time (see
    /// [`LayerChoice::forward_packet`]).
    #[allow(clippy::too_many_arguments)]
    pub fn route_packet(
        &mut self,
        now: Instant,
        source: LinkId,
        track: Track,
        receiver: LinkId,
        packet: LayeredFrame,
        seq: u64,
        budget: Budget,
    ) -> Option<(u64, u64)> {
        let choice = self.choice(now, source, track, receiver, budget)?;
        let before = choice.current();
        let forwarded = choice.forward_packet(now, packet, seq);
        log_switch(receiver, before, choice);
        forwarded
    }

    /// `receiver`'s choice of `source`'s `track`, its target brought up to date with `budget`.
    fn choice(
        &mut self,
        now: Instant,
        source: LinkId,
        track: Track,
        receiver: LinkId,
        budget: Budget,
    ) -> Option<&mut LayerChoice> {
        let layered = self.sources.get_mut(&(source, track))?;
        let shown = self.shown_heights.get(&receiver);
        let budget = Budget {
            max_layer: shown.and_then(|height| layered.rates.layer_for_height(now, *height)),
            ..budget
        };
        let choice = layered.receivers.entry(receiver).or_default();
        let target = choose(now, &layered.rates, budget, choice.target());
        let arriving = choice
            .current()
            .is_some_and(|current| layered.rates.is_arriving(now, current));
        if choice.propose(now, target, arriving) {
            tracing::info!(%receiver, ?target, estimate = ?budget.estimate, "simulcast layer target");
        }
        Some(choice)
    }

    /// The keyframes receivers of `source`'s `track` wait for, one per layer wanted.
    pub fn wanted_keyframes(&self, source: LinkId, track: Track) -> [bool; MAX_LAYERS] {
        let mut wanted = [false; MAX_LAYERS];
        if let Some(layered) = self.sources.get(&(source, track)) {
            for layer in layered
                .receivers
                .values()
                .filter_map(LayerChoice::wants_keyframe)
            {
                wanted[layer as usize] = true;
            }
        }
        wanted
    }

    /// Each link receiving this node's camera, and the layer it gets (`None`: none, paused or
    /// waiting for its first keyframe).
    pub fn camera_layers(&self) -> Vec<(LinkId, Option<LayerIndex>)> {
        self.sources
            .iter()
            .filter(|((_, track), _)| *track == Track::Camera)
            .flat_map(|(_, layered)| layered.receivers.iter())
            .map(|(receiver, choice)| (*receiver, choice.current()))
            .collect()
    }

    /// What `receiver`'s bandwidth estimation should aim at, summed over the layered sources
    /// it gets (`None`: it gets none). See [`BitrateGoals`].
    pub fn bitrate_goals(
        &self,
        now: Instant,
        receiver: LinkId,
        reserved: u64,
    ) -> Option<BitrateGoals> {
        let mut goals: Option<BitrateGoals> = None;
        for layered in self.sources.values() {
            let Some(choice) = layered.receivers.get(&receiver) else {
                continue;
            };
            let rates = &layered.rates;
            let need = |layer: LayerIndex| {
                rates
                    .rate(now, layer)
                    .map(|rate| (rate as f64 * UP_HEADROOM / ESTIMATE_USABLE) as u64 + reserved)
            };
            // Only layers the receiver has use for (no taller than it shows the source).
            let useful = self
                .shown_heights
                .get(&receiver)
                .and_then(|height| rates.layer_for_height(now, *height))
                .unwrap_or(TOP_LAYER);
            let arriving = || (0..=useful).filter(|l| rates.is_arriving(now, *l));
            let Some(top) = arriving().next_back() else {
                continue;
            };
            // The layer to make room for next: the one above the current, the current one
            // if thinned, the lowest if paused; none on top (of what the receiver has use
            // for: a link must not pad toward a layer its receiver would not be sent).
            let next = match choice.target() {
                Target::Layer(layer) => arriving().find(|l| *l > layer),
                Target::Base(layer) => Some(layer),
                Target::Paused => arriving().next(),
            };
            let sum = goals.get_or_insert_default();
            sum.minimum += next.and_then(need).unwrap_or(0);
            sum.desired += need(top).unwrap_or(0);
            sum.paused |= choice.target() == Target::Paused;
        }
        goals
    }

    /// `link` is gone, as source or receiver.
    pub fn forget(&mut self, link: LinkId) {
        self.shown_heights.remove(&link);
        self.sources.retain(|(source, _), _| *source != link);
        for layered in self.sources.values_mut() {
            layered.receivers.remove(&link);
        }
    }
}

#[cfg(test)]
mod tests;
