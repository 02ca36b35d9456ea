//! Looking for a parent: which candidate to ask next, and what the answers do to the search.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;

use super::feed::Feed;
use super::{MAX_QUEUED_CANDIDATES, Overlay, OverlayEvent, SeekReason, draw_weighted};
use crate::message::{Candidate, MAX_CANDIDATES, Message};

/// How many candidates a search remembers having asked, over all its rounds.
const MAX_REMEMBERED_ASKED: usize = 64;

/// Where [`Overlay::enqueue`] puts candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Freshness {
    /// From the answer just received.
    Fresh,
    /// From earlier knowledge (backups, handovers).
    Known,
}

#[derive(Debug)]
pub(super) struct Seek<P> {
    pub(super) reason: SeekReason,
    pub(super) started: Instant,
    /// Candidates from the latest redirect: fresher than `queue`, and pointing down the
    /// subtree that answered, so they are asked first.
    pub(super) fresh: Vec<Candidate<P>>,
    /// Candidates not asked yet in this round.
    pub(super) queue: Vec<Candidate<P>>,
    /// Candidates asked in this round, and when.
    pub(super) tried: HashMap<P, Instant>,
    /// Candidates asked in any round of this search (at most [`MAX_REMEMBERED_ASKED`]): an
    /// acceptance from one of them comes late, not unasked.
    pub(super) asked: HashSet<P>,
    /// The quickest answer to a join in this search: a redirect or a refusal needs no
    /// registry lookup, so it shows the round trip of the links alone.
    pub(super) fastest_answer: Option<Duration>,
    /// The candidate asked, until when, and the level bound the request carried.
    pub(super) current: Option<(P, Instant, Option<u32>)>,
    pub(super) hops: u32,
    pub(super) rounds: u32,
    pub(super) retry_at: Option<Instant>,
    /// Ask the entry (the root) before anything else: a round that followed what this member
    /// knew found nothing, and reports near it may be stale; the root redirects by the room
    /// of whole subtrees.
    pub(super) entry_first: bool,
}

impl<P: Copy + Eq + Hash> Seek<P> {
    /// An answer to a join from `from` arrived.
    pub(super) fn note_answer(&mut self, now: Instant, from: P) {
        if let Some(asked) = self.tried.get(&from) {
            let took = now.saturating_duration_since(*asked);
            self.fastest_answer = Some(self.fastest_answer.map_or(took, |t| t.min(took)));
        }
    }
}

impl<P: Copy + Ord + Hash + Debug> Overlay<P> {
    pub(super) fn on_accepted(
        &mut self,
        now: Instant,
        from: P,
        level: u32,
        candidates: Vec<Candidate<P>>,
    ) {
        let current = self
            .seek
            .as_ref()
            .and_then(|s| s.current)
            .filter(|(peer, _, _)| *peer == from)
            .map(|(_, _, below)| below);
        // An acceptance that came after its request timed out, in this round or an earlier
        // one of the search, is as good while the search goes on: the slot is held for this
        // member, and the search may only find dead or slower members after it (on a slow
        // link or a starved node every answer is late; releasing them all left viewers
        // without a parent for minutes).
        let late = self
            .seek
            .as_ref()
            .filter(|s| s.asked.contains(&from))
            .map(|_| self.seek_bound());
        let Some(below) = current.or(late) else {
            if self.parent != Some(from) {
                // Unasked, or answered after the search ended: release the slot.
                self.transmit(from, Message::Left);
            }
            return;
        };
        let new_level = level.saturating_add(1);
        if !self.children.is_empty() && new_level > self.level {
            // Going deeper while feeding children could close a cycle through them.
            if below.is_some_and(|b| level >= b) {
                self.event(OverlayEvent::PeerMisbehaved {
                    peer: from,
                    reason: "accepted a join below the level it was asked to be under",
                });
            }
            self.transmit(from, Message::Left);
            self.clear_current();
            self.try_next(now);
            return;
        }
        let seek = self.seek.take().expect("checked above");
        self.parent_rtt = seek.fastest_answer;
        let previous = self.parent.replace(from).filter(|old| *old != from);
        // A new link, whose silence is noticed anew. A member that lost its feed has none
        // until the link carries media ([`Self::handle_parent_flowing`]); one that moves
        // keeps the old parent's until then.
        self.feed = if previous.is_some() {
            Feed::Flowing
        } else {
            Feed::Starting {
                since: now,
                probe_at: now + self.config.link_setup_timeout,
            }
        };
        if let Some(old) = previous {
            self.transmit(old, Message::Left);
        }
        self.level = new_level;
        self.set_backups(candidates);
        self.reported = None;
        self.event(OverlayEvent::Attached {
            parent: from,
            previous,
            level: new_level,
            reason: seek.reason,
            took: now.saturating_duration_since(seek.started),
        });
        self.after_change(now);
    }

    pub(super) fn start_seek(
        &mut self,
        now: Instant,
        reason: SeekReason,
        candidates: Vec<Candidate<P>>,
    ) {
        self.seek = Some(Seek {
            reason,
            started: now,
            fresh: Vec::new(),
            queue: Vec::new(),
            tried: HashMap::new(),
            asked: HashSet::new(),
            fastest_answer: None,
            current: None,
            hops: 0,
            rounds: 0,
            retry_at: None,
            entry_first: false,
        });
        self.enqueue(candidates, Freshness::Known);
        self.try_next(now);
    }

    pub(super) fn enqueue(&mut self, candidates: Vec<Candidate<P>>, freshness: Freshness) {
        let Some(seek) = &mut self.seek else {
            return;
        };
        for candidate in candidates.into_iter().take(2 * MAX_CANDIDATES) {
            let known = seek
                .queue
                .iter()
                .chain(&seek.fresh)
                .any(|c| c.peer == candidate.peer);
            if seek.queue.len() + seek.fresh.len() < MAX_QUEUED_CANDIDATES
                && candidate.peer != self.local
                && !seek.tried.contains_key(&candidate.peer)
                && !known
            {
                match freshness {
                    Freshness::Fresh => seek.fresh.push(candidate),
                    Freshness::Known => seek.queue.push(candidate),
                }
            }
        }
    }

    /// Asks the best untried candidate, or ends the round.
    pub(super) fn try_next(&mut self, now: Instant) {
        let below = self.seek_bound();
        let capacity = self.capacity();
        let Some(seek) = &mut self.seek else {
            return;
        };
        if seek.current.is_some() {
            return;
        }
        self.unresponsive.retain(|(_, until)| *until > now);
        let unresponsive = &self.unresponsive;
        let usable = |c: &Candidate<P>| {
            !self.children.contains_key(&c.peer)
                && Some(c.peer) != self.parent
                && below.is_none_or(|b| c.level < b)
                && !unresponsive.iter().any(|(p, _)| *p == c.peer)
        };
        seek.queue.retain(usable);
        seek.fresh.retain(usable);
        let entry_untried = self
            .entry
            .filter(|e| !seek.tried.contains_key(e) && !self.children.contains_key(e));
        let next = if seek.hops >= self.config.max_join_hops {
            None
        } else if (std::mem::take(&mut seek.entry_first) || seek.hops >= self.config.max_local_hops)
            && entry_untried.is_some()
        {
            entry_untried
        } else if let Some(index) = pick_with_room(&seek.fresh, self.entry, below, &mut self.rng) {
            Some(seek.fresh.swap_remove(index).peer)
        } else if let Some(index) = pick_with_room(&seek.queue, self.entry, below, &mut self.rng) {
            Some(seek.queue.swap_remove(index).peer)
        } else if seek.reason == SeekReason::Improve {
            None
        } else if entry_untried.is_some() {
            // Nothing known here has room: ask the root, which knows where the free slots are
            // (a full subtree only redirects within itself).
            entry_untried
        } else if let Some(index) = shallowest(&seek.fresh, self.entry) {
            Some(seek.fresh.swap_remove(index).peer)
        } else {
            shallowest(&seek.queue, self.entry).map(|index| seek.queue.swap_remove(index).peer)
        };
        if let Some(peer) = next {
            seek.tried.insert(peer, now);
            if seek.asked.len() < MAX_REMEMBERED_ASKED {
                seek.asked.insert(peer);
            }
            seek.hops += 1;
            seek.current = Some((peer, now + self.config.request_timeout, below));
            self.transmit(
                peer,
                Message::Join {
                    below_level: below,
                    capacity,
                },
            );
            return;
        }
        if seek.reason == SeekReason::Improve {
            self.seek = None;
            return;
        }
        seek.rounds += 1;
        let factor = 2u32.saturating_pow(seek.rounds.saturating_sub(1).min(16));
        let backoff = self
            .config
            .retry_backoff
            .saturating_mul(factor)
            .min(self.config.max_retry_backoff);
        seek.retry_at = Some(now + backoff);
        let (reason, rounds) = (seek.reason, seek.rounds);
        self.event(OverlayEvent::SeekFailed { reason, rounds });
    }

    pub(super) fn restart_round(&mut self, now: Instant) {
        let backups = self.backups.clone();
        if let Some(seek) = &mut self.seek {
            seek.retry_at = None;
            seek.tried.clear();
            seek.fresh.clear();
            seek.hops = 0;
            seek.entry_first = true;
        }
        self.enqueue(backups, Freshness::Known);
        self.try_next(now);
    }

    /// The level a new parent must be below: moving up must really move up, and a member
    /// feeding children may never go deeper than it is (docs/tree.md, "No cycles").
    pub(super) fn seek_bound(&self) -> Option<u32> {
        match self.seek.as_ref().map(|s| s.reason) {
            Some(SeekReason::Improve) => Some(self.level.saturating_sub(1)),
            _ if self.children.is_empty() => None,
            _ => Some(self.level),
        }
    }

    pub(super) fn is_asking(&self, peer: P) -> bool {
        self.seek
            .as_ref()
            .and_then(|s| s.current)
            .is_some_and(|(p, _, _)| p == peer)
    }

    pub(super) fn clear_current(&mut self) {
        if let Some(seek) = &mut self.seek {
            seek.current = None;
        }
    }
}

/// A candidate other than `entry` (the root) drawn at random, weighted by the room it reported
/// (free slots in its subtree, its own included); `None` if none reported any. For a member
/// that must stay above level `below`, a candidate one level above that counts only its own
/// free slots: the room under it is too deep.
///
/// Weighting by room sends members that join or repair at the same moment where the slots are
/// in proportion to them, instead of letting them all race for the few nearest free slots
/// (each of which turns into another round trip when it fills first).
fn pick_with_room<P: Copy + PartialEq>(
    queue: &[Candidate<P>],
    entry: Option<P>,
    below: Option<u32>,
    rng: &mut ChaCha8Rng,
) -> Option<usize> {
    let weights: Vec<u64> = queue
        .iter()
        .map(|c| {
            if Some(c.peer) == entry {
                0
            } else if below.is_some_and(|b| c.level + 1 >= b) {
                u64::from(c.spare)
            } else {
                u64::from(c.room.max(c.spare))
            }
        })
        .collect();
    draw_weighted(&weights, rng)
}

/// The shallowest candidate other than `entry`: reports lag, so one said to be full may not be.
fn shallowest<P: Copy + PartialEq>(queue: &[Candidate<P>], entry: Option<P>) -> Option<usize> {
    (0..queue.len())
        .filter(|i| Some(queue[*i].peer) != entry)
        .min_by_key(|i| queue[*i].level)
}
