//! [`Overlay`]: one member's part in one broadcast tree.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::message::{Candidate, Message, Transmit};
use feed::Feed;
use seek::{Freshness, Seek};

/// Most messages queued for sending; beyond it new ones are dropped and counted
/// ([`Overlay::dropped_transmits`]): the driver is not draining.
const MAX_QUEUED_TRANSMITS: usize = 4096;
/// Most candidates waiting to be asked in one search.
const MAX_QUEUED_CANDIDATES: usize = 32;
/// Most events queued.
const MAX_QUEUED_EVENTS: usize = 1024;

/// Tuning of an [`Overlay`].
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    /// How long to wait for an answer to a join request before asking the next candidate.
    /// Default 500 ms (ten median round trips).
    pub request_timeout: Duration,
    /// How long a member that left a join unanswered is not asked again (the entry excepted).
    /// Default 10 s.
    pub unresponsive_for: Duration,
    /// Most candidates asked in one round before starting again from the entry. Default 12.
    pub max_join_hops: u32,
    /// Candidates asked from what this member knew (its backups, and where they led) before
    /// it asks the entry, which redirects by the room of whole subtrees: free slots near a
    /// lost parent are raced for by all its other children, and the reports naming them lag.
    /// Default 4.
    pub max_local_hops: u32,
    /// Pause after a round that found no parent; doubles per failed round. Default 200 ms.
    pub retry_backoff: Duration,
    /// Longest pause between rounds. Default 5 s.
    pub max_retry_backoff: Duration,
    /// Least time between two state updates to children that change only their backup
    /// candidates (a level change goes out at once). Default 1 s.
    pub state_interval: Duration,
    /// How often a member with a free slot looks for a deep member of its subtree to move up.
    /// Default 1 s, jittered.
    pub improve_interval: Duration,
    /// How long a member whose parent's media stopped ([`Overlay::handle_parent_silent`])
    /// waits for the parent to say it is repairing before taking it as gone. Default 250 ms:
    /// five median round trips. A parent whose own feed stopped has usually said so already
    /// (it tells its children when it notices, as early as they do). A member whose quickest
    /// answer to a join took longer gives twice that round trip instead: on a long link (a
    /// satellite, a far mobile network) a fixed 250 ms would take every live parent for gone,
    /// and such a member would move from parent to parent forever. (The acceptance alone
    /// would overstate it: it may wait for a registry lookup.)
    pub probe_timeout: Duration,
    /// How long a new parent's link may take to carry media before the parent is probed: a
    /// dead one says nothing and is left, a live one says it feeds this member
    /// ([`Message::Feeding`]) and is given as long again. Default 1 s (links connect in
    /// 0.05–0.5 s in the NAT lab; the media layer gives up on a link at its connect timeout).
    pub link_setup_timeout: Duration,
    /// How much longer a silent parent that says it feeds this member is waited for, once:
    /// a stall (of this node under load, or of the path) passes, a broken path does not.
    /// Default 700 ms: a live parent is left after about a second of silence.
    pub feeding_grace: Duration,
    /// How long a parent that said it is repairing is waited for before it is asked again.
    /// Default 2 s.
    pub repair_hold: Duration,
    /// Longest a member waits for a repairing parent in all, from the moment its media
    /// stopped: past it, a parent that still repairs is left for another. Default 8 s.
    pub max_repair_wait: Duration,
    /// How long a leaving relayer keeps feeding children that have not moved yet. Default 3 s.
    pub handover_timeout: Duration,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_millis(300),
            unresponsive_for: Duration::from_secs(10),
            max_join_hops: 12,
            max_local_hops: 4,
            retry_backoff: Duration::from_millis(200),
            max_retry_backoff: Duration::from_secs(5),
            state_interval: Duration::from_secs(1),
            improve_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(250),
            link_setup_timeout: Duration::from_secs(1),
            feeding_grace: Duration::from_millis(700),
            repair_hold: Duration::from_secs(2),
            max_repair_wait: Duration::from_secs(8),
            handover_timeout: Duration::from_secs(3),
        }
    }
}

/// What a member is in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A relayer: feeds up to `capacity` children.
    Relayer {
        /// Most children.
        capacity: u32,
    },
    /// The broadcaster: the root, feeding up to `capacity` children.
    Root {
        /// Most children.
        capacity: u32,
    },
    /// A viewer: a leaf that feeds nobody.
    Viewer,
}

impl Role {
    fn capacity(self) -> u32 {
        match self {
            Self::Relayer { capacity } | Self::Root { capacity } => capacity,
            Self::Viewer => 0,
        }
    }
}

/// Why a member is looking for a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeekReason {
    /// Its parent's slot went to a relayer.
    Evicted,
    /// Its parent is leaving and handed it over.
    Handover,
    /// A slot freed nearer the root.
    Improve,
    /// First join.
    Join,
    /// Its parent vanished.
    Repair,
}

/// Something worth reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverlayEvent<P> {
    /// Now fed by `parent` (open its link; close the one to `previous`, if any).
    Attached {
        /// The new parent.
        parent: P,
        /// The parent before, still linked during a move.
        previous: Option<P>,
        /// This member's level now.
        level: u32,
        /// Why it looked for a parent.
        reason: SeekReason,
        /// From the start of the search to the acceptance.
        took: Duration,
    },
    /// Now feeding `child`.
    ChildAdded {
        /// The child.
        child: P,
    },
    /// No longer feeding `child`.
    ChildRemoved {
        /// The child.
        child: P,
    },
    /// A graceful leave finished: every child moved or the handover timed out.
    Left,
    /// The parent vanished; a repair has started.
    ParentLost {
        /// The lost parent.
        parent: P,
        /// Its media had stopped and it did not say it was repairing (rather than its
        /// connection being lost).
        silent: bool,
    },
    /// A peer broke the protocol; its message was ignored.
    PeerMisbehaved {
        /// The peer.
        peer: P,
        /// What it did.
        reason: &'static str,
    },
    /// A round of candidates found no parent; the next round starts after a backoff.
    SeekFailed {
        /// Why the member is looking.
        reason: SeekReason,
        /// Rounds failed so far.
        rounds: u32,
    },
}

/// Why [`Overlay::join`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The member joined already (or has left: make a new one).
    #[error("already joined")]
    AlreadyJoined,
    /// The root is the tree; it joins nothing.
    #[error("the root does not join")]
    Root,
}

/// One member's part in one broadcast tree. See the crate docs for the run loop and
/// `docs/tree.md` for the algorithm.
#[derive(Debug)]
pub struct Overlay<P> {
    config: OverlayConfig,
    local: P,
    role: Role,
    rng: ChaCha8Rng,
    phase: Phase,
    /// Where joins start when nothing better is known: the root.
    entry: Option<P>,
    parent: Option<P>,
    /// The root's level is 0; a child's is its parent's + 1. Kept while orphaned: it bounds
    /// where the member may re-attach while it has children.
    level: u32,
    children: BTreeMap<P, Child<P>>,
    /// Backup parents, from the parent's latest state.
    backups: Vec<Candidate<P>>,
    /// Whether the parent's media reaches this member.
    feed: Feed,
    /// The quickest answer to a join in the search that found the parent: a round trip of
    /// this member's own link (see [`Self::probe`]'s deadline).
    parent_rtt: Option<Duration>,
    /// Whether the children were told this member's feed stopped (since it last flowed).
    children_told: bool,
    seek: Option<Seek<P>>,
    /// The report last sent to the current parent.
    reported: Option<Report<P>>,
    /// The state last sent to children.
    state_sent: Option<(u32, Vec<Candidate<P>>)>,
    last_state_at: Option<Instant>,
    state_due: Option<Instant>,
    /// Deep members invited to move up, until when the invitation holds a slot.
    invites: Vec<(P, Instant)>,
    /// Members that left a join unanswered, and until when they are not asked again unless
    /// they are heard from: a dead member stays named in others' reports for a while, and
    /// every round would ask it.
    unresponsive: Vec<(P, Instant)>,
    next_improve: Option<Instant>,
    leave_deadline: Option<Instant>,
    transmits: VecDeque<Transmit<P>>,
    events: VecDeque<OverlayEvent<P>>,
    dropped_transmits: u64,
    dropped_events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not joined yet.
    Idle,
    /// In the tree (attached, looking for a parent, or both).
    Member,
    /// Handing children over before leaving.
    Leaving,
    /// Left.
    Gone,
}

#[derive(Debug, Clone)]
struct Child<P> {
    capacity: u32,
    report: Report<P>,
}

impl<P: PartialEq> Child<P> {
    /// Whether the child feeds nobody, as far as its last report says.
    fn is_leaf(&self, peer: P) -> bool {
        self.report.deepest.as_ref().is_some_and(|d| d.peer == peer)
    }
}

/// What a subtree offers, as its root reports it upward.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report<P> {
    spare: Option<Candidate<P>>,
    room: u32,
    pushdown: Option<Candidate<P>>,
    deepest: Option<Candidate<P>>,
}

impl<P> Default for Report<P> {
    fn default() -> Self {
        Self {
            spare: None,
            room: 0,
            pushdown: None,
            deepest: None,
        }
    }
}

impl<P: Copy + Ord + Hash + Debug> Overlay<P> {
    /// A member of the tree. A [`Role::Root`] is in the tree at once; others call
    /// [`Self::join`]. `seed` drives the only randomness (timer jitter).
    pub fn new(config: OverlayConfig, local: P, role: Role, seed: u64, now: Instant) -> Self {
        let mut overlay = Self {
            config,
            local,
            role,
            rng: ChaCha8Rng::seed_from_u64(seed),
            phase: Phase::Idle,
            entry: None,
            parent: None,
            level: 0,
            children: BTreeMap::new(),
            backups: Vec::new(),
            feed: Feed::Flowing,
            parent_rtt: None,
            children_told: false,
            seek: None,
            reported: None,
            state_sent: None,
            last_state_at: None,
            state_due: None,
            invites: Vec::new(),
            unresponsive: Vec::new(),
            next_improve: None,
            leave_deadline: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped_transmits: 0,
            dropped_events: 0,
        };
        if matches!(role, Role::Root { .. }) {
            overlay.phase = Phase::Member;
            overlay.schedule_improve(now);
        }
        overlay
    }

    /// Joins the tree through `entry` (the root, or any member): it answers with a parent or
    /// with better candidates.
    pub fn join(&mut self, now: Instant, entry: P) -> Result<(), JoinError> {
        if matches!(self.role, Role::Root { .. }) {
            return Err(JoinError::Root);
        }
        if self.phase != Phase::Idle {
            return Err(JoinError::AlreadyJoined);
        }
        self.phase = Phase::Member;
        self.entry = Some(entry);
        let first = Candidate {
            peer: entry,
            level: 0,
            spare: 0,
            room: 1,
        };
        self.start_seek(now, SeekReason::Join, vec![first]);
        self.schedule_improve(now);
        Ok(())
    }

    /// Leaves the tree: children are handed over first (to this member's parent and siblings)
    /// and fed until they have moved or [`OverlayConfig::handover_timeout`] passed.
    pub fn leave(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Member) {
            return;
        }
        self.seek = None;
        if self.children.is_empty() {
            self.finish_leave();
            return;
        }
        self.phase = Phase::Leaving;
        self.leave_deadline = Some(now + self.config.handover_timeout);
        // The parent, the nearest backups, and the children with free slots (for viewers).
        let mut candidates = self.candidates_for_children();
        candidates.retain(|c| c.peer != self.local);
        let children: Vec<P> = self.children.keys().copied().collect();
        for child in children {
            let candidates = candidates.clone();
            self.transmit(child, Message::Handover { candidates });
        }
        if let Some(parent) = self.parent {
            // Joiners must not be sent here any more.
            let nothing = Message::Report {
                spare: None,
                room: 0,
                pushdown: None,
                deepest: None,
            };
            self.transmit(parent, nothing);
        }
    }

    /// A message from `from`.
    pub fn handle_message(&mut self, now: Instant, from: P, message: Message<P>) {
        if from == self.local {
            return;
        }
        // Anything from it, a late answer included, says it is alive: only slow.
        self.unresponsive.retain(|(p, _)| *p != from);
        if matches!(self.phase, Phase::Idle | Phase::Gone) {
            match message {
                // Release a slot reserved for a request this member no longer stands by.
                Message::Accepted { .. } => self.transmit(from, Message::Left),
                Message::Join { .. } => self.transmit(from, Message::Refused),
                _ => {}
            }
            return;
        }
        if matches!(
            message,
            Message::Accepted { .. } | Message::Redirected { .. } | Message::Refused
        ) && let Some(seek) = &mut self.seek
        {
            seek.note_answer(now, from);
        }
        match message {
            Message::Join {
                below_level,
                capacity,
            } => self.on_join(now, from, below_level, capacity),
            Message::Accepted { level, candidates } => {
                self.on_accepted(now, from, level, candidates);
            }
            Message::Redirected { candidates } => {
                if self.is_asking(from) {
                    if let Some(seek) = &mut self.seek {
                        let older = std::mem::take(&mut seek.fresh);
                        seek.queue.extend(older);
                    }
                    self.enqueue(candidates, Freshness::Fresh);
                    self.clear_current();
                    self.try_next(now);
                } else if let Some(seek) = self
                    .seek
                    .as_mut()
                    .filter(|s| s.tried.contains_key(&from) && s.current.is_none())
                {
                    // An answer that came after its request timed out, while the search has
                    // nobody left to ask: followed, or a slow network would never get past
                    // its first hop.
                    seek.retry_at = None;
                    seek.hops = 0;
                    self.enqueue(candidates, Freshness::Fresh);
                    self.try_next(now);
                }
            }
            Message::Refused => {
                if self.is_asking(from) {
                    self.clear_current();
                    self.try_next(now);
                } else if self.parent == Some(from) {
                    // The parent took this member in, then found it may not be there: it is
                    // fed from there no more (a repair then asks others, who refuse it too).
                    self.lose_parent(now, from, false);
                }
            }
            Message::State { level, candidates } => {
                if self.parent == Some(from) {
                    self.on_parent_state(now, from, level, candidates);
                }
            }
            Message::Report {
                spare,
                room,
                pushdown,
                deepest,
            } => {
                if let Some(child) = self.children.get_mut(&from) {
                    // A child taken as a viewer (capacity 0) is a leaf whatever it claims: joiners
                    // are never sent its way. This is what keeps a member that is no registered
                    // relayer, and was admitted as a viewer, from feeding anyone.
                    let leaf = child.capacity == 0;
                    child.report = Report {
                        spare: spare.filter(|_| !leaf),
                        room: if leaf { 0 } else { room },
                        pushdown: pushdown.filter(|_| !leaf),
                        deepest,
                    };
                    self.after_change(now);
                }
            }
            Message::Invite { level } => self.on_invite(now, from, level),
            Message::Handover { candidates } => {
                if self.parent == Some(from) && self.phase == Phase::Member {
                    let mut candidates = candidates;
                    candidates.extend(self.backups.iter().filter(|c| c.peer != from).copied());
                    self.start_seek(now, SeekReason::Handover, candidates);
                }
            }
            Message::Evicted { to } => {
                if self.parent == Some(from) {
                    // The parent has already dropped this member.
                    self.detach();
                    let mut candidates = vec![to];
                    candidates.extend(self.backups.iter().filter(|c| c.peer != from).copied());
                    self.start_seek(now, SeekReason::Evicted, candidates);
                }
            }
            Message::Left => {
                if self.children.remove(&from).is_some() {
                    self.event(OverlayEvent::ChildRemoved { child: from });
                    self.after_change(now);
                    self.finish_leave_if_done();
                }
            }
            Message::Probe => self.on_probe(from),
            Message::Feeding => self.on_feeding(now, from),
            Message::Repairing => self.on_repairing(now, from),
        }
    }

    /// The transport lost `peer` (link closed, or silent for too long).
    pub fn handle_peer_disconnected(&mut self, now: Instant, peer: P) {
        self.backups.retain(|c| c.peer != peer);
        self.invites.retain(|(p, _)| *p != peer);
        if self.children.remove(&peer).is_some() {
            self.event(OverlayEvent::ChildRemoved { child: peer });
            self.after_change(now);
            self.finish_leave_if_done();
        }
        if self.parent == Some(peer) {
            self.lose_parent(now, peer, false);
        } else if self.is_asking(peer) {
            self.clear_current();
            self.try_next(now);
        }
    }

    /// The parent is gone (`silent`: its media stopped and it did not say it repairs): a
    /// repair starts, and the children, whose feed stops with this member's, are told.
    fn lose_parent(&mut self, now: Instant, parent: P, silent: bool) {
        self.detach();
        if silent {
            // A parent taken for gone by its silence may only be slow (a starved process, a
            // link still being set up): told, it frees the slot now instead of when the link
            // times out, 15 s later.
            self.transmit(parent, Message::Left);
        }
        self.event(OverlayEvent::ParentLost { parent, silent });
        if self.phase == Phase::Member {
            self.tell_children_repairing();
            // Others may still list the lost parent for a while (and its own state named it
            // among the backups): not asked again unless it is heard from.
            self.backups.retain(|c| c.peer != parent);
            self.unresponsive
                .push((parent, now + self.config.unresponsive_for));
            let backups = self.backups.clone();
            self.start_seek(now, SeekReason::Repair, backups);
        }
    }

    /// Time passed. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.feed_timeout(now);
        if let Some(seek) = &mut self.seek {
            if let Some((peer, _, _)) = seek.current.filter(|(_, deadline, _)| *deadline <= now) {
                seek.current = None;
                self.unresponsive
                    .push((peer, now + self.config.unresponsive_for));
                self.try_next(now);
            } else if seek.retry_at.is_some_and(|at| at <= now) {
                self.restart_round(now);
            }
        }
        if self.state_due.is_some_and(|at| at <= now) {
            self.send_state(now);
        }
        if self.leave_deadline.is_some_and(|at| at <= now) {
            self.finish_leave();
        }
        self.invites.retain(|(_, until)| *until > now);
        if self.next_improve.is_some_and(|at| at <= now) {
            self.invite_deepest(now);
            self.schedule_improve(now);
        }
    }

    /// Next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.transmits.pop_front()
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<OverlayEvent<P>> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let seek = self
            .seek
            .as_ref()
            .and_then(|s| s.current.map(|(_, deadline, _)| deadline).or(s.retry_at));
        let invites = self.invites.iter().map(|(_, until)| *until);
        let feed = self.feed_deadline();
        [
            seek,
            feed,
            self.state_due,
            self.leave_deadline,
            self.next_improve,
        ]
        .into_iter()
        .flatten()
        .chain(invites)
        .min()
    }

    /// This member.
    pub fn local(&self) -> P {
        self.local
    }

    /// The member this one is asking to take it, if it is looking for a parent.
    pub fn asking(&self) -> Option<P> {
        self.seek.as_ref()?.current.map(|(peer, _, _)| peer)
    }

    /// The member feeding this one, if attached.
    pub fn parent(&self) -> Option<P> {
        self.parent
    }

    /// This member's level (0 for the root). Meaningful while attached or feeding children.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The members this one feeds.
    pub fn children(&self) -> impl Iterator<Item = P> + '_ {
        self.children.keys().copied()
    }

    /// Whether this member feeds `peer`.
    pub fn has_child(&self, peer: P) -> bool {
        self.children.contains_key(&peer)
    }

    /// How many members this one feeds.
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Most children this member feeds.
    pub fn capacity(&self) -> u32 {
        self.role.capacity()
    }

    /// Whether this member is the root or has a parent.
    pub fn is_attached(&self) -> bool {
        self.parent.is_some() || matches!(self.role, Role::Root { .. })
    }

    /// Whether this member is looking for a parent.
    pub fn is_seeking(&self) -> bool {
        self.seek.is_some()
    }

    /// Whether this member has left (or finished handing over).
    pub fn has_left(&self) -> bool {
        self.phase == Phase::Gone
    }

    /// Messages not queued because the queue was full.
    pub fn dropped_transmits(&self) -> u64 {
        self.dropped_transmits
    }

    /// Events not queued because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    fn spare(&self) -> u32 {
        let used = self.children.len() + self.invites.len();
        self.capacity()
            .saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
    }

    fn me(&self) -> Candidate<P> {
        Candidate {
            peer: self.local,
            level: self.level,
            spare: self.spare(),
            room: self.spare(),
        }
    }

    fn schedule_improve(&mut self, now: Instant) {
        if self.capacity() == 0 {
            return;
        }
        let interval = self.config.improve_interval;
        let jitter = interval.mul_f64(self.rng.random_range(0.5..1.5));
        self.next_improve = Some(now + jitter);
    }

    fn finish_leave_if_done(&mut self) {
        if self.phase == Phase::Leaving && self.children.is_empty() {
            self.finish_leave();
        }
    }

    fn finish_leave(&mut self) {
        if let Some(parent) = self.detach() {
            self.transmit(parent, Message::Left);
        }
        let children: Vec<P> = std::mem::take(&mut self.children).into_keys().collect();
        for child in children {
            self.event(OverlayEvent::ChildRemoved { child });
        }
        self.phase = Phase::Gone;
        self.seek = None;
        self.leave_deadline = None;
        self.state_due = None;
        self.next_improve = None;
        self.invites.clear();
        self.event(OverlayEvent::Left);
    }

    /// Forgets the parent, and with it what was known of its feed: a feed deadline without a
    /// parent would never be handled (nothing to probe), and a driver that asks for the next
    /// timeout would be called back at once forever.
    fn detach(&mut self) -> Option<P> {
        self.reported = None;
        self.feed = Feed::Flowing;
        self.parent_rtt = None;
        self.parent.take()
    }

    fn transmit(&mut self, to: P, message: Message<P>) {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            self.dropped_transmits += 1;
            return;
        }
        self.transmits.push_back(Transmit { to, message });
    }

    fn event(&mut self, event: OverlayEvent<P>) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.dropped_events += 1;
            return;
        }
        self.events.push_back(event);
    }
}

/// Up to `count` distinct items of `items`, each drawn with probability proportional to
/// `weight` among those left; items of weight 0 are never drawn.
fn draw_by<T: Copy>(
    items: &[T],
    count: usize,
    weight: impl Fn(&T) -> u32,
    rng: &mut ChaCha8Rng,
) -> Vec<T> {
    let mut pool: Vec<T> = items.to_vec();
    let mut drawn = Vec::with_capacity(count);
    while drawn.len() < count {
        let weights: Vec<u64> = pool.iter().map(|item| u64::from(weight(item))).collect();
        let Some(index) = draw_weighted(&weights, rng) else {
            break;
        };
        drawn.push(pool.swap_remove(index));
    }
    drawn
}

/// An index drawn with probability proportional to its weight; `None` if all weights are 0.
fn draw_weighted(weights: &[u64], rng: &mut ChaCha8Rng) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let mut ticket = rng.random_range(0..total);
    weights.iter().position(|weight| {
        let hit = ticket < *weight;
        ticket = ticket.saturating_sub(*weight);
        hit
    })
}

/// Keeps the first entry of each peer.
fn dedup_by_peer<P: Eq + Hash + Copy>(candidates: &mut Vec<Candidate<P>>) {
    let mut seen = HashSet::new();
    candidates.retain(|c| seen.insert(c.peer));
}

mod answer;
mod feed;
mod invite;
mod seek;
mod state;
#[cfg(test)]
mod tests;
