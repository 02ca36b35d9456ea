//! A link's bandwidth estimate as layers are chosen by it, and its estimation kept aimed and
//! moving (sans-IO: time is an input).
//!
//! str0m reports a 3 s average of its estimate, which layers follow; the estimator's own
//! latest value comes with the link's stats and shows whether the estimator is alive.
//!
//! str0m's estimator is aimed with `set_bitrate(minimum, desired)` ([`BitrateGoals`]). What it
//! should aim at follows the link's receivers and the layers arriving for them, which change
//! while the estimate stays put, so the goals are derived again on a timer rather than only
//! when an estimate comes.
//!
//! An estimate can also stall for good. str0m 0.25 reads why its estimate is limited (a delay
//! increase, loss) only when the estimate moves, and probes only while the last reason read
//! allows it. Its delay-based estimate grows no further than 1.5× what the link is seen to
//! carry. So a link whose estimate last moved in a delay increase, and that then carries
//! little (a receiver held on a lower layer), never probes and never moves again: the lab saw
//! a viewer's link sit at its first 1 Mbit/s estimate for a whole test, and another stay at
//! the 0.95 Mbit/s of a lifted limit. A link held below a layer it wants whose estimate has not
//! moved for [`STALLED_AFTER`] restarts its estimator from the estimate it has: the fresh one
//! probes at once (three and six times that, as at a link's start), so a link with room finds
//! it, and one without sees a 15 ms burst, as a periodic probe would send.

use std::time::{Duration, Instant};

use crate::layers::BitrateGoals;

/// How long an estimate may stay put while its link wants more before the estimator restarts.
/// One with room to find moves sooner (str0m reports a new estimate when its 3 s average
/// moves by 5 %); restarting one that only looked stuck costs a 15 ms probe, and a lifted
/// limit must show within the 10 s the adaptive-quality issue allows.
pub(crate) const STALLED_AFTER: Duration = Duration::from_secs(3);

/// How far goals may drift from those given before they are given again: a layer's measured
/// rate moves a little every second, and each rise of the desired rate above the estimate
/// would start a probe.
const GOALS_TOLERANCE: f64 = 0.1;

/// What to do with a link's estimator, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Steer {
    /// Aim it at these goals.
    pub aim: Option<BitrateGoals>,
    /// Start it again from this estimate, bit/s (it keeps the goals it was given).
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
    /// When either last moved (or the estimator last restarted).
    moved_at: Instant,
}

impl Aim {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            applied: None,
            average: None,
            latest: None,
            moved_at: now,
        }
    }

    /// The link reported an estimate: str0m's average, or the estimator's latest.
    pub(crate) fn estimated(&mut self, now: Instant, bps: u64, average: bool) {
        let kept = if average {
            &mut self.average
        } else {
            &mut self.latest
        };
        if *kept != Some(bps) {
            *kept = Some(bps);
            self.moved_at = now;
        }
    }

    /// What the link is taken to carry, bit/s: str0m's average. (Following the estimator's
    /// latest value where it drops well below the average took a narrowed link's receiver down
    /// within a second or two in the lab, but on a starved machine it also paused loopback
    /// calls' video on deep momentary dips: see docs/PERFORMANCE.md.)
    pub(crate) fn estimate(&self) -> Option<u64> {
        self.average
    }

    /// What to do now that the link's receivers need `goals`: aim the estimator at them if
    /// it has other goals, and restart it if it stalled below them.
    pub(crate) fn steer(&mut self, now: Instant, goals: BitrateGoals) -> Steer {
        let aim = self
            .applied
            .is_none_or(|applied| drifted(applied, goals))
            .then_some(goals);
        if aim.is_some() {
            self.applied = aim;
        }
        let restart_from = self.latest.or(self.average).filter(|estimate| {
            goals.minimum > *estimate
                && now.saturating_duration_since(self.moved_at) >= STALLED_AFTER
        });
        if restart_from.is_some() {
            self.moved_at = now;
        }
        Steer { aim, restart_from }
    }
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
    };
    const ON_TOP: BitrateGoals = BitrateGoals {
        minimum: 0,
        desired: 2_000_000,
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
    fn an_estimate_stuck_below_what_its_link_wants_restarts_the_estimator_each_period() {
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.estimated(start, 950_000, true);
        steering.steer(start, HELD_LOW);
        // Moving, it is left alone however long it stays low.
        for second in 1..=12 {
            let now = start + Duration::from_secs(second);
            steering.estimated(now, 950_000 + second * 1_000, true);
            assert_eq!(steering.steer(now, HELD_LOW), AIMED);
        }
        // Stuck: a restart from where it is, then another a period later.
        let stuck_at = start + Duration::from_secs(12);
        assert_eq!(
            steering.steer(stuck_at + STALLED_AFTER / 2, HELD_LOW),
            AIMED
        );
        assert_eq!(
            steering.steer(stuck_at + STALLED_AFTER, HELD_LOW),
            restart(962_000)
        );
        assert_eq!(
            steering.steer(stuck_at + STALLED_AFTER * 3 / 2, HELD_LOW),
            AIMED
        );
        assert_eq!(
            steering.steer(stuck_at + STALLED_AFTER * 2, HELD_LOW),
            restart(962_000)
        );
    }

    #[test]
    fn a_flat_estimate_that_covers_what_its_link_wants_is_left_alone() {
        let start = epoch();
        let late = start + STALLED_AFTER * 4;
        // On its top layer: nothing to look for.
        let mut on_top = Aim::new(start);
        on_top.estimated(start, 950_000, true);
        on_top.steer(start, ON_TOP);
        assert_eq!(on_top.steer(late, ON_TOP), AIMED);
        // Already above what the next layer needs.
        let mut roomy = Aim::new(start);
        roomy.estimated(start, 3_000_000, true);
        roomy.steer(start, HELD_LOW);
        assert_eq!(roomy.steer(late, HELD_LOW), AIMED);
        // No estimate at all (a link without estimation).
        let mut blind = Aim::new(start);
        blind.steer(start, HELD_LOW);
        assert_eq!(blind.steer(late, HELD_LOW), AIMED);
        // Goals given and a stall seen at once: both, the goals first.
        let mut both = Aim::new(start);
        both.estimated(start, 950_000, true);
        assert_eq!(
            both.steer(late, HELD_LOW),
            Steer {
                aim: Some(HELD_LOW),
                restart_from: Some(950_000)
            }
        );
    }

    #[test]
    fn the_estimators_latest_value_moving_shows_it_alive() {
        let start = epoch();
        let mut steering = Aim::new(start);
        steering.estimated(start, 950_000, true);
        steering.steer(start, HELD_LOW);
        for tick in 1..=8 {
            let now = start + STALLED_AFTER / 2 * tick;
            steering.estimated(now, 900_000 + u64::from(tick), false);
            assert_eq!(steering.steer(now, HELD_LOW), AIMED);
        }
        // Restarted from where the estimator is, not from the average.
        let stuck = start + STALLED_AFTER * 4 + STALLED_AFTER;
        assert_eq!(steering.steer(stuck, HELD_LOW), restart(900_008));
    }
}
