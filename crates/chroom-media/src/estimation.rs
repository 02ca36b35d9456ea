//! A link's bandwidth estimate as layers are chosen by it, and its estimation kept aimed and
//! probing (sans-IO: time is an input).
//!
//! **Which estimate.** str0m reports a 3 s average of its estimate: a link that narrowed
//! shows in it only as the old values age out, so a receiver waited up to 5 s for a lower
//! layer in the lab. The estimator's own latest value comes with the link's stats every
//! 500 ms and shows a narrowed link within a second. It also dips deeply for a moment on a
//! machine too busy to read its sockets in time (to 70 kbit/s on a loopback link in CI), and
//! there str0m's average can follow it down within seconds too (it averages the estimate's
//! changes, not time). What tells a narrowed link from a late reader is loss: a bottleneck's
//! queue overflows, a late reader's socket buffer holds. So layers take both ([`Budget`]): a
//! new layer follows the latest value once it fell well below the average
//! ([`DROP_BELOW_AVERAGE`]) or the link lost packets ([`FULL_LOSS`]), for
//! [`NARROWED_MEMORY`]; thinning a layer or pausing video, which the user sees as a freeze,
//! needs the link to have lost packets within that time, and the average to agree.
//!
//! **Aiming.** str0m's estimator is aimed with `set_bitrate(minimum, desired)`
//! ([`BitrateGoals`]). What it should aim at follows the link's receivers and the layers
//! arriving for them, which change while the estimate stays put, so the goals are derived again
//! on a timer rather than only when an estimate comes.
//!
//! **Probing.** str0m 0.25 reads why its estimate is limited (a delay increase, loss) only
//! when the estimate moves, and probes only while the last reason read allows it. Its
//! delay-based estimate grows no further than 1.5× what the link is seen to carry, and from
//! there by about 8 % a second. So a link held on a lower layer carries little and finds room
//! slowly or never: the lab saw a viewer's link sit at its first 1 Mbit/s estimate for a whole
//! test, and a member's climb back from 100 kbit/s take 16 s. A link held below a layer it
//! wants, that has lost nothing for [`PROBE_AFTER`], restarts its estimator from the estimate
//! it has: the fresh one probes at once (three and six times that, for 15 ms, as at a link's
//! start), so a link with room finds it within a second, and one without sees a short burst,
//! as libwebrtc's periodic probes send. A probe that found room is followed by the next after
//! [`PROBE_AGAIN_AFTER`], so a climb from a paused video to a top layer takes seconds, not
//! several periods. A link carrying a paused video probes that often all along while quiet
//! ([`BitrateGoals::paused`]): each second of it is a freeze its user sees, and its probes,
//! three and six times an estimate sunk to its audio's rate, are a kilobyte or two.

use std::time::{Duration, Instant};

use crate::layers::{AUDIO_RESERVE_BPS, BitrateGoals, Budget};

/// How long a link held below what it wants goes without loss or a probe before its
/// estimator restarts and probes. A lifted limit must show within the 10 s the
/// adaptive-quality issue allows; each probe costs a link without room a 15 ms burst.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(3);

/// How soon a link probes again after a probe that found room ([`FOUND_ROOM`]): a link
/// climbing back from a lifted limit (from a paused video's 40 kbit/s to a top layer's
/// 400) takes several probes, each at most six times the last estimate, and libwebrtc too
/// probes on at once while each probe finds more. Also the period of a link carrying a
/// paused video ([`BitrateGoals::paused`]).
const PROBE_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// A probe found room when the estimate rose by this factor over what it restarted from.
const FOUND_ROOM: f64 = 1.5;

/// The estimator's latest value below this share of str0m's average means the link narrowed
/// (or the machine is busy): the dips of a delay-based estimate on a steady link are
/// shallower.
const DROP_BELOW_AVERAGE: f64 = 0.75;

/// Loss over the last second (TWCC's count, in the link's stats) from which the link is taken
/// to have narrowed: its queue overflows. libwebrtc's loss-based estimator backs off from 10 %.
const FULL_LOSS: f32 = 0.05;

/// How long after it narrowed the estimator's latest value is still followed below the
/// average: past str0m's 3 s window, so a receiver moved down does not move straight back up
/// on an average still full of the old estimates.
const NARROWED_MEMORY: Duration = Duration::from_secs(4);

/// How far goals may drift from those given before they are given again: a layer's measured
/// rate moves a little every second, and each rise of the desired rate above the estimate
/// would start a probe.
const GOALS_TOLERANCE: f64 = 0.1;

/// What to do with a link's estimator, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Steer {
    /// Aim it at these goals.
    pub aim: Option<BitrateGoals>,
    /// Start it again from this estimate, bit/s, to probe (it keeps the goals it was given).
    pub restart_from: Option<u64>,
}

/// One link's estimation, as far as choosing layers and aiming it goes.
#[derive(Debug)]
pub(crate) struct Aim {
    /// The goals the estimator was given last.
    applied: Option<BitrateGoals>,
    /// str0m's reported estimate (a 3 s average), bit/s.
    average: Option<u64>,
    /// The estimator's own latest estimate, from the link's stats, bit/s.
    latest: Option<u64>,
    /// When the link last showed it narrowed: the latest estimate well below the average, or
    /// loss.
    narrowed_at: Option<Instant>,
    /// When the link last lost [`FULL_LOSS`] of its packets or more.
    lost_at: Option<Instant>,
    /// When the estimator was created or last restarted.
    probed_at: Instant,
    /// The estimate it last restarted from, bit/s.
    probed_from: Option<u64>,
}

impl Aim {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            applied: None,
            average: None,
            latest: None,
            narrowed_at: None,
            lost_at: None,
            probed_at: now,
            probed_from: None,
        }
    }

    /// str0m reported its averaged estimate.
    pub(crate) fn averaged(&mut self, bps: u64) {
        self.average = Some(bps);
    }

    /// The link's stats came: the estimator's latest value, and the share of packets lost
    /// over the last second (`None` if none were reported on). Returns whether they show a
    /// link that had not narrowed (lately) narrowing.
    pub(crate) fn sampled(&mut self, now: Instant, latest_bps: u64, loss: Option<f32>) -> bool {
        self.latest = Some(latest_bps);
        let dropped = self
            .average
            .is_some_and(|average| (latest_bps as f64) < average as f64 * DROP_BELOW_AVERAGE);
        let lost = loss.is_some_and(|loss| loss >= FULL_LOSS);
        if lost {
            self.lost_at = Some(now);
        }
        if !dropped && !lost {
            return false;
        }
        let was_narrowed = self.narrowed(now);
        self.narrowed_at = Some(now);
        !was_narrowed
    }

    fn narrowed(&self, now: Instant) -> bool {
        lately(self.narrowed_at, now)
    }

    /// What the link can take now, for its receivers' layers (see the module doc).
    pub(crate) fn budget(&self, now: Instant) -> Budget {
        let estimate = match (self.average, self.latest) {
            (Some(average), Some(latest)) if self.narrowed(now) => Some(average.min(latest)),
            (average, _) => average,
        };
        Budget {
            estimate,
            confirmed: self.average.filter(|_| lately(self.lost_at, now)),
            reserved: AUDIO_RESERVE_BPS,
            max_layer: None,
        }
    }

    /// What to do now that the link's receivers need `goals`: aim the estimator at them if
    /// it has other goals, and restart it to probe if it is held below them and quiet.
    pub(crate) fn steer(&mut self, now: Instant, goals: BitrateGoals) -> Steer {
        let aim = self
            .applied
            .is_none_or(|applied| drifted(applied, goals))
            .then_some(goals);
        if aim.is_some() {
            self.applied = aim;
        }
        let quiet_since = self
            .lost_at
            .map_or(self.probed_at, |at| at.max(self.probed_at));
        let estimate = self.latest.or(self.average);
        let found_room = self
            .probed_from
            .zip(estimate)
            .is_some_and(|(from, now)| now as f64 >= from as f64 * FOUND_ROOM);
        let wait = if found_room || goals.paused {
            PROBE_AGAIN_AFTER
        } else {
            PROBE_AFTER
        };
        let restart_from = estimate.filter(|estimate| {
            goals.minimum > *estimate && now.saturating_duration_since(quiet_since) >= wait
        });
        if restart_from.is_some() {
            self.probed_at = now;
            self.probed_from = restart_from;
        }
        Steer { aim, restart_from }
    }
}

/// Whether `at` is within [`NARROWED_MEMORY`] of `now`.
fn lately(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now.saturating_duration_since(at) < NARROWED_MEMORY)
}

/// Whether `goals` moved far enough from `applied` to be given again.
fn drifted(applied: BitrateGoals, goals: BitrateGoals) -> bool {
    let far = |was: u64, is: u64| {
        (was == 0) != (is == 0) || (is as f64 - was as f64).abs() > was as f64 * GOALS_TOLERANCE
    };
    far(applied.minimum, goals.minimum) || far(applied.desired, goals.desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The origin of virtual time (`Instant` has no constructor but `now()`).
    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    const HELD_LOW: BitrateGoals = BitrateGoals {
        minimum: 2_000_000,
        desired: 2_000_000,
        paused: false,
    };
    const ON_TOP: BitrateGoals = BitrateGoals {
        minimum: 0,
        desired: 2_000_000,
        paused: false,
    };

    const AIMED: Steer = Steer {
        aim: None,
        restart_from: None,
    };

    fn aim(goals: BitrateGoals) -> Steer {
        Steer {
            aim: Some(goals),
            restart_from: None,
        }
    }

    fn restart(bps: u64) -> Steer {
        Steer {
            aim: None,
            restart_from: Some(bps),
        }
    }

    /// Asserts that `steering`, aimed at `goals`, probes from `bps` at `at` and not before.
    fn probes_at(steering: &mut Aim, at: Instant, goals: BitrateGoals, bps: u64) {
        let before = at - Duration::from_millis(1);
        assert_eq!(
            steering.steer(before, goals),
            AIMED,
            "a probe before {at:?}"
        );
        assert_eq!(steering.steer(at, goals), restart(bps));
    }

    #[test]
    fn goals_are_given_once_and_again_when_they_move() {
        let start = epoch();
        let mut steering = Aim::new(start);
        assert_eq!(steering.steer(start, ON_TOP), aim(ON_TOP));
        assert_eq!(steering.steer(start, ON_TOP), AIMED);
        // A layer's rate moving a little is not worth new goals; a change of layer is.
        let jittered = BitrateGoals {
            desired: ON_TOP.desired * 105 / 100,
            ..ON_TOP
        };
        assert_eq!(steering.steer(start, jittered), AIMED);
        assert_eq!(steering.steer(start, HELD_LOW), aim(HELD_LOW));
    }

    #[test]
    fn a_link_held_below_what_it_wants_probes_each_period_however_its_estimate_moves() {
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.averaged(950_000);
        assert_eq!(steering.steer(start, HELD_LOW), aim(HELD_LOW));
        // Climbing by 1 % a second is no reason to wait: it would take minutes to get there.
        let mut restarts = Vec::new();
        for tenth in 1..=70 {
            let now = start + Duration::from_millis(100 * tenth);
            steering.sampled(now, 950_000 + tenth * 1_000, Some(0.0));
            if let Some(from) = steering.steer(now, HELD_LOW).restart_from {
                restarts.push((now - start, from));
            }
        }
        assert_eq!(
            restarts,
            [(PROBE_AFTER, 980_000), (PROBE_AFTER * 2, 1_010_000)],
            "restarted from the estimator's own latest value, once a period"
        );
    }

    #[test]
    fn loss_holds_probes_off_until_the_link_was_quiet_for_a_period() {
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.averaged(400_000);
        steering.steer(start, HELD_LOW);
        let lossy = start + PROBE_AFTER - Duration::from_millis(500);
        steering.sampled(lossy, 380_000, Some(0.2));
        assert_eq!(steering.steer(start + PROBE_AFTER, HELD_LOW), AIMED);
        // Loss under the threshold (a retransmitted packet, a lost probe) does not count.
        steering.sampled(lossy + PROBE_AFTER / 2, 380_000, Some(0.01));
        assert_eq!(
            steering.steer(lossy + PROBE_AFTER, HELD_LOW),
            restart(380_000)
        );
    }

    #[test]
    fn a_drop_without_loss_does_not_hold_probes_off() {
        // A starved reader's dip: the link may well have room, and a paused video waits for
        // a probe to find it.
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.averaged(400_000);
        steering.steer(start, HELD_LOW);
        let dipped = start + PROBE_AFTER - Duration::from_millis(500);
        assert!(steering.sampled(dipped, 60_000, Some(0.0)));
        assert_eq!(
            steering.steer(start + PROBE_AFTER, HELD_LOW),
            restart(60_000)
        );
    }

    #[test]
    fn a_probe_that_found_room_is_followed_by_the_next_sooner() {
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.averaged(40_000);
        steering.sampled(start, 40_000, Some(0.0));
        steering.steer(start, HELD_LOW);
        let first = start + PROBE_AFTER;
        assert_eq!(steering.steer(first, HELD_LOW), restart(40_000));
        // It found room: the next probe goes after a second, from there.
        steering.sampled(first, 200_000, Some(0.0));
        let again = first + PROBE_AGAIN_AFTER;
        probes_at(&mut steering, again, HELD_LOW, 200_000);
        // This one found little: back to the usual period.
        steering.sampled(again, 240_000, Some(0.0));
        assert_eq!(steering.steer(again + PROBE_AGAIN_AFTER, HELD_LOW), AIMED);
        assert_eq!(
            steering.steer(again + PROBE_AFTER, HELD_LOW),
            restart(240_000)
        );
    }

    #[test]
    fn a_link_carrying_a_paused_video_probes_every_second_while_quiet() {
        // Its estimate sank to 40 kbit/s; the lowest layer needs 150.
        let paused = BitrateGoals {
            minimum: 150_000,
            desired: 600_000,
            paused: true,
        };
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.averaged(40_000);
        steering.sampled(start, 40_000, Some(0.3));
        steering.steer(start, paused);
        // The limit lifts: the loss ends, and a second after the last of it, it probes.
        steering.sampled(start + Duration::from_millis(500), 40_000, Some(0.0));
        let first = start + PROBE_AGAIN_AFTER;
        probes_at(&mut steering, first, paused, 40_000);
        // It found nothing (the link is still narrow): again a second later, not a period.
        steering.sampled(first, 45_000, Some(0.0));
        let again = first + PROBE_AGAIN_AFTER;
        assert_eq!(steering.steer(again, paused), restart(45_000));
        // The video resumed on the lowest layer: the usual period again.
        let resumed = BitrateGoals {
            paused: false,
            ..paused
        };
        steering.sampled(again, 50_000, Some(0.0));
        assert_eq!(steering.steer(again + PROBE_AGAIN_AFTER, resumed), AIMED);
        assert_eq!(
            steering.steer(again + PROBE_AFTER, resumed),
            restart(50_000)
        );
    }

    #[test]
    fn a_flat_estimate_that_covers_what_its_link_wants_is_left_alone() {
        let start = epoch();
        let late = start + PROBE_AFTER * 4;
        // On its top layer: nothing to look for.
        let mut on_top = Aim::new(start);
        on_top.averaged(950_000);
        on_top.steer(start, ON_TOP);
        assert_eq!(on_top.steer(late, ON_TOP), AIMED);
        // Already above what the next layer needs.
        let mut roomy = Aim::new(start);
        roomy.averaged(3_000_000);
        roomy.steer(start, HELD_LOW);
        assert_eq!(roomy.steer(late, HELD_LOW), AIMED);
        // No estimate at all (a link without estimation).
        let mut blind = Aim::new(start);
        blind.steer(start, HELD_LOW);
        assert_eq!(blind.steer(late, HELD_LOW), AIMED);
        // Goals given and a probe due at once: both, the goals first.
        let mut both = Aim::new(start);
        both.averaged(950_000);
        assert_eq!(
            both.steer(late, HELD_LOW),
            Steer {
                aim: Some(HELD_LOW),
                restart_from: Some(950_000)
            }
        );
    }

    #[test]
    fn layers_follow_the_latest_value_for_a_while_once_the_link_narrowed() {
        let start = epoch();
        let mut steering = Aim::new(start);
        assert_eq!(steering.budget(start).estimate, None);
        steering.averaged(2_000_000);
        // A shallow dip is no narrowing.
        assert!(!steering.sampled(start, 1_800_000, Some(0.0)));
        assert_eq!(steering.budget(start).estimate, Some(2_000_000));
        // Well below the average: followed at once, the average beside it.
        let narrowed = start + Duration::from_secs(1);
        assert!(steering.sampled(narrowed, 450_000, Some(0.0)));
        let budget = steering.budget(narrowed);
        assert_eq!(
            (budget.estimate, budget.confirmed),
            (Some(450_000), None),
            "no loss confirms it: the lowest layer stays whole"
        );
        // The receiver moved down and the estimator recovers a little; the average still
        // remembers the old rate, so the latest value is followed until it has caught up.
        let calm = narrowed + NARROWED_MEMORY - Duration::from_millis(1);
        assert!(!steering.sampled(calm, 1_600_000, Some(0.0)));
        steering.averaged(1_700_000);
        assert_eq!(steering.budget(calm).estimate, Some(1_600_000));
        // A latest value above the average is never followed.
        steering.sampled(calm, 3_000_000, Some(0.0));
        assert_eq!(steering.budget(calm).estimate, Some(1_700_000));
        steering.sampled(calm, 1_600_000, Some(0.0));
        assert_eq!(
            steering.budget(narrowed + NARROWED_MEMORY).estimate,
            Some(1_700_000),
            "the average again"
        );
        // Loss is narrowing too, however close the latest value is to the average, and it
        // confirms the average for as long.
        let lossy = narrowed + NARROWED_MEMORY * 2;
        assert!(steering.sampled(lossy, 1_500_000, Some(0.2)));
        let budget = steering.budget(lossy);
        assert_eq!(
            (budget.estimate, budget.confirmed),
            (Some(1_500_000), Some(1_700_000))
        );
        assert_eq!(steering.budget(lossy + NARROWED_MEMORY).confirmed, None);
    }
}
