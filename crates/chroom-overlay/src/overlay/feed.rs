//! What a member knows of its parent's feed, and how it finds out: media silence is the
//! driver's to notice; a silent parent is asked whether it repairs (`Probe`, answered
//! `Repairing` or `Feeding`), and a member whose feed stops tells its children.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::{Overlay, Phase, Role};
use crate::message::Message;

/// What this member knows of its parent's media. Silence is the driver's to notice
/// ([`Overlay::handle_parent_silent`]); a broadcast never pauses, so a silent parent is gone
/// (its process killed, its network cut, which the transport notices only after seconds), or
/// it lost its own feed and repairs. Only the parent knows which: it is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// Media flows, or nothing says otherwise.
    Flowing,
    /// Attached to a new parent after losing the last one; no media yet. A parent whose media
    /// has not come by `probe_at` (it may have died while the link was set up, which ICE
    /// notices only at its connect timeout) is probed.
    Starting { since: Instant, probe_at: Instant },
    /// Media stopped at `since`; the parent was probed and must say it repairs by `deadline`.
    Probing {
        since: Instant,
        deadline: Instant,
        /// Probed because a new link carried nothing yet (rather than fell silent): a parent
        /// that answers it feeds this member is waited for longer.
        starting: bool,
        /// The parent said it feeds this member and the deadline was pushed back once.
        extended: bool,
    },
    /// The parent said it repairs: wait for it until `until`, then probe again.
    Held { since: Instant, until: Instant },
}

impl<P: Copy + Ord + Hash + Debug> Overlay<P> {
    /// Media from the parent stopped arriving. The parent is probed: one that repairs says so
    /// ([`Message::Repairing`]) and is waited for; one that says nothing by
    /// [`crate::OverlayConfig::probe_timeout`] is gone and a repair starts. Either way the children
    /// are told this member repairs, so they wait too rather than scatter.
    pub fn handle_parent_silent(&mut self, now: Instant) {
        let Some(parent) = self.parent else {
            return;
        };
        if !matches!(self.feed, Feed::Flowing | Feed::Starting { .. })
            || self.phase != Phase::Member
        {
            return;
        }
        self.probe(now, now, parent, false);
        self.tell_children_repairing();
    }

    /// Media from the parent arrives (again).
    pub fn handle_parent_flowing(&mut self) {
        self.feed = Feed::Flowing;
        self.children_told = false;
    }

    /// Whether this member's own feed stopped: its parent is silent or it has none.
    fn feed_stopped(&self) -> bool {
        match self.role {
            Role::Root { .. } => false,
            Role::Relayer { .. } | Role::Viewer => {
                self.parent.is_none() || self.feed != Feed::Flowing
            }
        }
    }

    fn probe(&mut self, now: Instant, since: Instant, parent: P, starting: bool) {
        let round_trips = self.parent_rtt.map_or(Duration::ZERO, |rtt| rtt * 2);
        let deadline = now + self.config.probe_timeout.max(round_trips);
        self.feed = Feed::Probing {
            since,
            deadline,
            starting,
            extended: false,
        };
        self.transmit(parent, Message::Probe);
    }

    pub(super) fn tell_children_repairing(&mut self) {
        if self.children_told {
            return;
        }
        self.children_told = true;
        let children: Vec<P> = self.children.keys().copied().collect();
        for child in children {
            self.transmit(child, Message::Repairing);
        }
    }

    /// The feed's deadlines: a probe unanswered, a hold over.
    pub(super) fn feed_timeout(&mut self, now: Instant) {
        let Some(parent) = self.parent else {
            return;
        };
        match self.feed {
            Feed::Probing { deadline, .. } if deadline <= now => {
                self.lose_parent(now, parent, true);
            }
            Feed::Held { since, until } if until <= now => {
                if now.saturating_duration_since(since) >= self.config.max_repair_wait {
                    self.lose_parent(now, parent, true);
                } else {
                    self.probe(now, since, parent, false);
                }
            }
            Feed::Starting { since, probe_at } if probe_at <= now => {
                self.probe(now, since, parent, true);
            }
            Feed::Flowing | Feed::Starting { .. } | Feed::Probing { .. } | Feed::Held { .. } => {}
        }
    }

    /// A child's probe: what this member knows of its own feed. A member that is no child
    /// here takes this one for its parent still, though it was dropped (its messages went
    /// unacknowledged, as a dead child's do): told so, it repairs at once rather than when
    /// its probe times out.
    pub(super) fn on_probe(&mut self, from: P) {
        let answer = if !self.children.contains_key(&from) {
            Message::Refused
        } else if self.feed_stopped() {
            Message::Repairing
        } else {
            Message::Feeding
        };
        self.transmit(from, answer);
    }

    /// The parent says it feeds this member. A link still being set up to it is waited for;
    /// one that fell silent gets a little longer once (this node, or the path, may have
    /// stalled) and is broken after that, whatever the parent sends into it.
    pub(super) fn on_feeding(&mut self, now: Instant, from: P) {
        if self.parent == Some(from)
            && let Feed::Probing {
                since,
                starting,
                extended: false,
                ..
            } = self.feed
        {
            self.feed = if starting {
                let probe_at = now + self.config.link_setup_timeout;
                Feed::Starting { since, probe_at }
            } else {
                Feed::Probing {
                    since,
                    deadline: now + self.config.feeding_grace,
                    starting,
                    extended: true,
                }
            };
        }
    }

    /// The parent says its own feed stopped and it repairs: wait for it, and tell the
    /// children so. Media still flowing from it says more: the word may have waited behind
    /// others on a loaded path while the parent repaired, and holding a flowing feed would
    /// leave a live parent once the hold ran out (a parent whose feed did stop stops this
    /// member's too, and that silence is probed).
    pub(super) fn on_repairing(&mut self, now: Instant, from: P) {
        if self.parent == Some(from) && self.feed != Feed::Flowing {
            let since = match self.feed {
                Feed::Probing { since, .. } | Feed::Held { since, .. } => since,
                Feed::Flowing | Feed::Starting { .. } => now,
            };
            let until = now + self.config.repair_hold;
            self.feed = Feed::Held { since, until };
            self.tell_children_repairing();
        }
    }

    /// When the feed's next deadline falls, if any.
    pub(super) fn feed_deadline(&self) -> Option<Instant> {
        match self.feed {
            Feed::Flowing => None,
            Feed::Starting { probe_at, .. } => Some(probe_at),
            Feed::Probing { deadline, .. } => Some(deadline),
            Feed::Held { until, .. } => Some(until),
        }
    }
}
