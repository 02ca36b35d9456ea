use std::collections::HashMap;
use std::time::{Duration, Instant};

use chroom_types::{LinkId, Track};

use super::*;

/// A source sending three layers at 150 kbit/s, 500 kbit/s and 1.5 Mbit/s, 30 frames a
/// second, L1T3 (temporal layers 0, 2, 1, 2, …), a keyframe of every layer at frame 0.
struct Source {
    start: Instant,
    frame: u64,
    rates: LayerRates,
}

const LAYER_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
const LAYER_HEIGHTS: [u16; 3] = [180, 360, 720];
const FRAME_GAP: Duration = Duration::from_micros(33_333);

impl Source {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            frame: 0,
            rates: LayerRates::default(),
        }
    }

    fn now(&self) -> Instant {
        self.start + FRAME_GAP * self.frame as u32
    }

    /// The next captured frame, as each layer sends it; `keyframes` marks them keyframes.
    fn next(&mut self, keyframes: bool) -> [LayeredFrame; 3] {
        let now = self.now();
        let temporal = [0, 2, 1, 2][(self.frame % 4) as usize];
        let frames = std::array::from_fn(|layer| LayeredFrame {
            layer: layer as LayerIndex,
            temporal: Some(temporal),
            keyframe: keyframes,
            // Each layer's timestamps start elsewhere, as separate RTP streams may.
            rtp_time: 1_000_000 * (layer as u64 + 1) + self.frame * 3000,
            bytes: (LAYER_BPS[layer] / 8 / 30) as usize,
            height: keyframes.then_some(LAYER_HEIGHTS[layer]),
        });
        for frame in &frames {
            self.rates.observe(now, frame);
        }
        self.frame += 1;
        frames
    }

    /// Runs `n` frames through `choice`; returns the layers and RTP times it forwarded.
    fn run(
        &mut self,
        choice: &mut LayerChoice,
        n: usize,
        keyframe_at: Option<usize>,
    ) -> Vec<(u8, u64)> {
        let mut sent = Vec::new();
        for i in 0..n {
            let now = self.now();
            for frame in self.next(keyframe_at == Some(i)) {
                if let Some(time) = choice.forward(now, frame) {
                    sent.push((frame.layer, time));
                }
            }
        }
        sent
    }
}

fn budget(estimate: u64) -> Budget {
    Budget {
        estimate: Some(estimate),
        confirmed: Some(estimate),
        reserved: 40_000,
        max_layer: None,
    }
}

#[test]
fn stream_ids_name_layers_lowest_first() {
    assert_eq!(layer_of_rid("q"), Some(0));
    assert_eq!(layer_of_rid("f"), Some(2));
    assert_eq!(layer_of_rid("x"), None);
}

#[test]
fn the_highest_layer_that_fits_the_estimate_is_chosen() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    source.run(&mut choice, 40, Some(0));
    let now = source.now();
    let top = Target::Layer(2);
    // No estimate (no bandwidth estimation on the link): the top layer.
    let unlimited = Budget::default();
    assert_eq!(choose(now, &source.rates, unlimited, top), top);
    assert_eq!(choose(now, &source.rates, budget(4_000_000), top), top);
    assert_eq!(
        choose(now, &source.rates, budget(1_000_000), top),
        Target::Layer(1)
    );
    assert_eq!(
        choose(now, &source.rates, budget(300_000), top),
        Target::Layer(0)
    );
    // 150 kbit/s does not fit in 100 kbit/s, its base (60 %) does.
    assert_eq!(
        choose(now, &source.rates, budget(160_000), top),
        Target::Base(0)
    );
    assert_eq!(
        choose(now, &source.rates, budget(100_000), top),
        Target::Paused
    );
}

#[test]
fn a_quick_estimate_lowers_layers_but_only_a_confirmed_one_thins_or_pauses() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    source.run(&mut choice, 40, Some(0));
    let now = source.now();
    let top = Target::Layer(2);
    let dipped = |confirmed: Option<u64>| Budget {
        confirmed,
        ..budget(100_000)
    };
    // A dip to 100 kbit/s on a link that loses nothing takes the lowest layer whole.
    assert_eq!(
        choose(now, &source.rates, dipped(None), top),
        Target::Layer(0)
    );
    // A paused or thinned video stays so: no loss is no sign of room.
    for held_back in [Target::Paused, Target::Base(0)] {
        assert_eq!(
            choose(now, &source.rates, dipped(None), held_back),
            held_back
        );
    }
    // One whose confirmed estimate still has room for it takes the lowest layer whole.
    assert_eq!(
        choose(now, &source.rates, dipped(Some(4_000_000)), top),
        Target::Layer(0)
    );
    // It thins the lowest layer, or pauses it, only where the confirmed estimate does.
    assert_eq!(
        choose(now, &source.rates, dipped(Some(160_000)), top),
        Target::Base(0)
    );
    assert_eq!(
        choose(now, &source.rates, dipped(Some(100_000)), top),
        Target::Paused
    );
    // A quick estimate with room for a higher layer is followed up to it.
    let narrowed = Budget {
        confirmed: None,
        ..budget(1_000_000)
    };
    assert_eq!(choose(now, &source.rates, narrowed, top), Target::Layer(1));
}

#[test]
fn a_small_tile_gets_a_small_layer_however_much_bandwidth() {
    let mut source = Source::new();
    source.run(&mut LayerChoice::default(), 40, Some(0));
    let small = Budget {
        max_layer: Some(0),
        ..budget(10_000_000)
    };
    assert_eq!(
        choose(source.now(), &source.rates, small, Target::Layer(2)),
        Target::Layer(0)
    );
}

#[test]
fn going_up_needs_headroom_staying_does_not() {
    let mut source = Source::new();
    source.run(&mut LayerChoice::default(), 40, Some(0));
    let now = source.now();
    // 1.5 Mbit/s + 40 kbit/s of audio in 85 % of 1.85 Mbit/s: it stays, it would not go up.
    let edge = budget(1_850_000);
    assert_eq!(
        choose(now, &source.rates, edge, Target::Layer(2)),
        Target::Layer(2)
    );
    assert_eq!(
        choose(now, &source.rates, edge, Target::Layer(1)),
        Target::Layer(1)
    );
}

#[test]
fn layers_that_stop_arriving_are_not_chosen() {
    let mut source = Source::new();
    source.run(&mut LayerChoice::default(), 40, Some(0));
    // Only the lowest layer goes on (the browser dropped the others).
    let mut now = source.now();
    for _ in 0..60 {
        now += FRAME_GAP;
        let frame = LayeredFrame {
            layer: 0,
            temporal: None,
            keyframe: false,
            rtp_time: 0,
            bytes: 600,
            height: None,
        };
        source.rates.observe(now, &frame);
    }
    assert_eq!(
        choose(now, &source.rates, Budget::default(), Target::Layer(2)),
        Target::Layer(0)
    );
}

#[test]
fn a_switch_down_thins_at_once_and_moves_on_the_lower_keyframe() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    let sent = source.run(&mut choice, 8, Some(0));
    assert!(sent.iter().all(|(layer, _)| *layer == 2), "{sent:?}");
    assert_eq!(sent.len(), 8);
    choice.set_target(Target::Layer(0));
    assert_eq!(choice.wants_keyframe(), Some(0));
    // Until layer 0's keyframe the top layer goes on, its base temporal layer only.
    let thinned = source.run(&mut choice, 8, None);
    assert_eq!(thinned.len(), 2, "{thinned:?}");
    assert!(thinned.iter().all(|(layer, _)| *layer == 2));
    let switched = source.run(&mut choice, 8, Some(0));
    assert!(
        switched.iter().all(|(layer, _)| *layer == 0),
        "{switched:?}"
    );
    assert_eq!(switched.len(), 8);
    assert_eq!(choice.wants_keyframe(), None);
}

#[test]
fn a_switch_up_waits_for_the_upper_keyframe_and_keeps_the_lower_layer_whole() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    choice.set_target(Target::Layer(0));
    source.run(&mut choice, 4, Some(0));
    choice.set_target(Target::Layer(2));
    let waiting = source.run(&mut choice, 4, None);
    assert_eq!(
        waiting.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 0, 0, 0]
    );
    // The lower layer's frame of the same capture may go before the upper keyframe; nothing of
    // it after.
    let switched = source.run(&mut choice, 4, Some(0));
    assert_eq!(
        switched.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 2, 2, 2, 2]
    );
}

#[test]
fn rtp_time_runs_on_across_switches() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    let mut sent = source.run(&mut choice, 5, Some(0));
    choice.set_target(Target::Layer(0));
    sent.extend(source.run(&mut choice, 5, Some(0)));
    choice.set_target(Target::Layer(1));
    sent.extend(source.run(&mut choice, 5, Some(2)));
    let times: Vec<u64> = sent.iter().map(|(_, time)| *time).collect();
    assert!(times.len() >= 12, "{sent:?}");
    // One frame is 3000 ticks at 90 kHz; a switch keeps that step, whatever the layer's own
    // timestamps.
    for pair in times.windows(2) {
        let step = pair[1].wrapping_sub(pair[0]);
        assert!(step > 0 && step <= 3 * 3000, "{sent:?}");
    }
}

#[test]
fn a_paused_link_sends_no_video_and_resumes_on_a_keyframe() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    source.run(&mut choice, 4, Some(0));
    choice.set_target(Target::Paused);
    assert_eq!(choice.wants_keyframe(), None);
    assert!(source.run(&mut choice, 10, Some(5)).is_empty());
    choice.set_target(Target::Layer(0));
    assert_eq!(choice.wants_keyframe(), Some(0));
    assert!(source.run(&mut choice, 3, None).is_empty());
    assert_eq!(source.run(&mut choice, 3, Some(0)).len(), 3);
}

#[test]
fn a_base_target_sends_the_base_temporal_layer_only() {
    let mut source = Source::new();
    let mut choice = LayerChoice::default();
    choice.set_target(Target::Base(0));
    let sent = source.run(&mut choice, 16, Some(0));
    // Frames 0, 4, 8, 12 are temporal layer 0.
    assert_eq!(sent.len(), 4, "{sent:?}");
}

/// A receiver forwarding the top layer, at `start`.
fn forwarding_top(start: Instant) -> LayerChoice {
    let mut choice = LayerChoice::default();
    let keyframe = LayeredFrame {
        layer: 2,
        temporal: Some(0),
        keyframe: true,
        rtp_time: 0,
        bytes: 1000,
        height: Some(720),
    };
    assert!(choice.forward(start, keyframe).is_some());
    choice
}

#[test]
fn a_dip_shorter_than_the_hold_moves_nobody() {
    let start = Instant::now();
    let mut choice = forwarding_top(start);
    let ms = |n| start + Duration::from_millis(n);
    assert!(!choice.propose(ms(0), Target::Layer(0), true));
    assert!(!choice.propose(ms(300), Target::Layer(1), true));
    // The estimate recovered: the dip is forgotten.
    assert!(!choice.propose(ms(400), Target::Layer(2), true));
    assert!(!choice.propose(ms(600), Target::Layer(1), true));
    assert_eq!(choice.target(), Target::Layer(2));
    // A lasting shortfall moves it down half a second after it began.
    assert!(choice.propose(ms(1100), Target::Layer(0), true));
    assert_eq!(choice.target(), Target::Layer(0));
}

#[test]
fn only_a_lasting_shortfall_pauses_and_going_up_waits_longer_than_going_down() {
    let start = Instant::now();
    let mut choice = forwarding_top(start);
    // Past its first seconds, when it moves up at once.
    let start = start + Duration::from_secs(5);
    let ms = |n| start + Duration::from_millis(n);
    assert!(!choice.propose(ms(0), Target::Paused, true));
    assert!(!choice.propose(ms(1900), Target::Paused, true));
    assert!(choice.propose(ms(2000), Target::Paused, true));
    assert!(!choice.propose(ms(2100), Target::Layer(2), false));
    assert!(!choice.propose(ms(3500), Target::Layer(2), false));
    assert!(choice.propose(ms(3600), Target::Layer(2), false));
}

#[test]
fn a_receiver_with_nothing_yet_or_a_layer_gone_moves_at_once() {
    let start = Instant::now();
    let mut fresh = LayerChoice::default();
    assert!(fresh.propose(start, Target::Layer(1), false));
    let mut choice = forwarding_top(start);
    // Its layer stopped arriving (the browser dropped it): waiting would prolong a freeze.
    assert!(choice.propose(start, Target::Layer(1), false));
}

#[test]
fn a_lowered_receiver_makes_room_for_the_next_layer_and_one_on_top_pads_nothing() {
    let source_link = LinkId(1);
    let (lowered, on_top, paused) = (LinkId(2), LinkId(3), LinkId(4));
    let mut source = Source::new();
    let mut simulcast = Simulcast::default();
    let unlimited = Budget::default();
    let tight = budget(700_000);
    // Long enough for the starved receiver's pause to hold.
    for _ in 0..100 {
        let now = source.now();
        for frame in source.next(false) {
            simulcast.observe(now, source_link, Track::Camera, &frame);
            for (receiver, budget) in [
                (lowered, tight),
                (on_top, unlimited),
                (paused, budget(50_000)),
            ] {
                simulcast.route(now, source_link, Track::Camera, receiver, frame, budget);
            }
        }
    }
    let now = source.now();
    let need = |bps: u64| (bps as f64 * UP_HEADROOM / ESTIMATE_USABLE) as u64 + 40_000;
    let goals = |receiver| simulcast.bitrate_goals(now, receiver, 40_000).unwrap();
    // On layer 1 it pads toward layer 2's need; both probe up to the top layer's.
    let lowered_goals = goals(lowered);
    assert!(
        lowered_goals.minimum.abs_diff(need(1_500_000)) < 20_000,
        "{lowered_goals:?}"
    );
    assert!(
        lowered_goals.desired.abs_diff(need(1_500_000)) < 20_000,
        "{lowered_goals:?}"
    );
    assert_eq!(goals(on_top).minimum, 0);
    // Only the link whose video is paused says so (it probes more often).
    assert_eq!(
        [lowered, on_top, paused].map(|receiver| goals(receiver).paused),
        [false, false, true]
    );
    assert!(simulcast.bitrate_goals(now, LinkId(9), 40_000).is_none());
}

#[test]
fn a_receiver_showing_the_source_small_gets_the_smallest_layer_tall_enough() {
    let source_link = LinkId(1);
    let (small, large, unsaid) = (LinkId(2), LinkId(3), LinkId(4));
    let mut source = Source::new();
    let mut simulcast = Simulcast::default();
    simulcast.set_shown_height(small, Some(200));
    simulcast.set_shown_height(large, Some(1080));
    let mut got = HashMap::new();
    for i in 0..100 {
        let now = source.now();
        // A keyframe of every layer now and then, as receivers switching ask for.
        let frames = source.next(i % 10 == 0);
        for frame in &frames {
            simulcast.observe(now, source_link, Track::Camera, frame);
        }
        for frame in frames {
            for receiver in [small, large, unsaid] {
                let budget = Budget::default();
                if simulcast
                    .route(now, source_link, Track::Camera, receiver, frame, budget)
                    .is_some()
                {
                    got.insert(receiver, frame.layer);
                }
            }
        }
    }
    // 200 px wants the 360-line layer; taller than any wants the top; no word, the top.
    assert_eq!(got[&small], 1);
    assert_eq!(got[&large], 2);
    assert_eq!(got[&unsaid], 2);
    // The small one's link neither pads nor probes toward the layers it would not be sent.
    let now = source.now();
    let need = |bps: u64| (bps as f64 * UP_HEADROOM / ESTIMATE_USABLE) as u64 + 40_000;
    let small_goals = simulcast.bitrate_goals(now, small, 40_000).unwrap();
    assert_eq!(small_goals.minimum, 0, "{small_goals:?}");
    assert!(
        small_goals.desired.abs_diff(need(500_000)) < 20_000,
        "{small_goals:?}"
    );
}

#[test]
fn a_receiver_opening_on_a_low_layer_moves_up_at_once_in_its_first_seconds() {
    let start = Instant::now();
    let later = |ms| start + Duration::from_millis(ms);
    let opening_low = || {
        let mut choice = LayerChoice::default();
        assert!(choice.propose(start, Target::Layer(0), false));
        let keyframe = LayeredFrame {
            layer: 0,
            temporal: Some(0),
            keyframe: true,
            rtp_time: 0,
            bytes: 500,
            height: Some(180),
        };
        assert!(choice.forward(start, keyframe).is_some());
        choice
    };
    // The top layer's first frames come a moment later: up at once.
    let mut fresh = opening_low();
    assert!(fresh.propose(later(300), Target::Layer(2), true));
    // Past the first seconds, a move up waits for its choice to hold.
    let mut settled = opening_low();
    assert!(!settled.propose(later(2500), Target::Layer(2), true));
    assert!(settled.propose(later(4000), Target::Layer(2), true));
}

/// Packets of a [`Source`]'s frames, three per frame, each layer numbered from its own origin
/// (separate RTP streams); only a keyframe's first packet says it is one.
struct Packets {
    source: Source,
    next_seq: [u64; 3],
}

impl Packets {
    fn new() -> Self {
        Self {
            source: Source::new(),
            next_seq: [100, 40_000, 65_000],
        }
    }

    /// Runs `n` frames' packets through `choice`; returns (layer, seq out, time out).
    fn run(
        &mut self,
        choice: &mut LayerChoice,
        n: usize,
        keyframe_at: Option<usize>,
    ) -> Vec<(u8, u64, u64)> {
        let mut sent = Vec::new();
        for i in 0..n {
            let now = self.source.now();
            for frame in self.source.next(keyframe_at == Some(i)) {
                for part in 0..3 {
                    let layer = frame.layer as usize;
                    let seq = self.next_seq[layer];
                    self.next_seq[layer] += 1;
                    let packet = LayeredFrame {
                        keyframe: frame.keyframe && part == 0,
                        bytes: frame.bytes / 3,
                        ..frame
                    };
                    if let Some((seq, time)) = choice.forward_packet(now, packet, seq) {
                        sent.push((frame.layer, seq, time));
                    }
                }
            }
        }
        sent
    }
}

#[test]
fn forwarded_packets_are_numbered_without_gaps_across_thinning_and_switches() {
    let mut packets = Packets::new();
    let mut choice = LayerChoice::default();
    let mut sent = packets.run(&mut choice, 8, Some(0));
    choice.set_target(Target::Layer(0));
    // Thinned (three frames in four held back), then layer 0 from its keyframe.
    let down = packets.run(&mut choice, 8, None);
    assert_eq!(down.len(), 2 * 3, "{down:?}");
    sent.extend(down);
    sent.extend(packets.run(&mut choice, 8, Some(0)));
    choice.set_target(Target::Layer(1));
    sent.extend(packets.run(&mut choice, 8, Some(3)));
    let layers: Vec<u8> = sent.iter().map(|s| s.0).collect();
    assert!(layers.contains(&0) && layers.contains(&1) && layers.contains(&2));
    for pair in sent.windows(2) {
        assert_eq!(pair[1].1, pair[0].1 + 1, "a gap or a jump: {pair:?}");
        // At most four frames apart (thinned to one frame in four).
        let step = pair[1].2.wrapping_sub(pair[0].2);
        assert!(step <= 4 * 3000, "RTP time jumped: {pair:?}");
    }
}

#[test]
fn a_late_packet_from_before_a_held_back_one_is_dropped_not_renumbered_onto_another() {
    let start = Instant::now();
    let mut choice = LayerChoice::default();
    let packet = |keyframe: bool, temporal: u8| LayeredFrame {
        layer: 2,
        temporal: Some(temporal),
        keyframe,
        rtp_time: 9000,
        bytes: 400,
        height: None,
    };
    assert_eq!(
        choice.forward_packet(start, packet(true, 0), 10),
        Some((10, 9000))
    );
    choice.set_target(Target::Base(2));
    // Packet 12 (temporal layer 2) is held back; 13 then takes number 12.
    assert_eq!(choice.forward_packet(start, packet(false, 2), 12), None);
    assert_eq!(
        choice.forward_packet(start, packet(false, 0), 13),
        Some((12, 9000))
    );
    // 11 arrives late: numbered as before it would collide with what 12 became.
    assert_eq!(choice.forward_packet(start, packet(false, 0), 11), None);
}

#[test]
fn a_source_with_one_layer_leaves_no_choice_until_a_second_arrives() {
    let start = Instant::now();
    let mut rates = LayerRates::default();
    let frame = |layer| LayeredFrame {
        layer,
        temporal: None,
        keyframe: false,
        rtp_time: 0,
        bytes: 1000,
        height: None,
    };
    rates.observe(start, &frame(2));
    rates.observe(start + FRAME_GAP, &frame(2));
    assert!(!rates.has_choice());
    rates.observe(start + FRAME_GAP * 2, &frame(0));
    assert!(rates.has_choice());
    // A layer that stopped still counts: the source is layered, one of its layers paused.
    let later = start + Duration::from_secs(5);
    rates.observe(later, &frame(2));
    assert!(!rates.is_arriving(later, 0));
    assert!(rates.has_choice());
}
