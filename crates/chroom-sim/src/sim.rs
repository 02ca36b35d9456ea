//! The event loop, the network model, the invariant checks and the measurements.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chroom_overlay::{Message, Overlay, OverlayConfig, OverlayEvent, Role, SeekReason};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Member id of the broadcaster.
const ROOT: u32 = 0;
/// Longest a member may stay without a parent before it counts as a violation.
const MAX_ORPHAN_TIME: Duration = Duration::from_secs(10);
/// Violations kept with their details; the rest are only counted.
const MAX_VIOLATIONS_KEPT: usize = 50;

/// A simulated run: who takes part, how the network behaves, when members come and go.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Seeds every random choice; the same seed gives the same run.
    pub seed: u64,
    /// Relayers (registered volunteers feeding children).
    pub relayers: u32,
    /// Viewers (leaves).
    pub viewers: u32,
    /// Children the broadcaster feeds itself.
    pub root_capacity: u32,
    /// Relayer capacities and their weights.
    pub relayer_capacities: Vec<(u32, u32)>,
    /// Median round-trip time between two members.
    pub median_rtt: Duration,
    /// Spread (sigma of the log-normal) of each member's access delay.
    pub rtt_sigma: f64,
    /// Relayers join uniformly within this window.
    pub relayer_joins: (Duration, Duration),
    /// Viewers join uniformly within this window.
    pub viewer_joins: (Duration, Duration),
    /// Share of relayers that crash, uniformly within `crashes`.
    pub crash_fraction: f64,
    /// When crashes happen.
    pub crashes: (Duration, Duration),
    /// Share of relayers that leave gracefully, uniformly within `leaves`.
    pub relayer_leave_fraction: f64,
    /// Share of viewers that leave, uniformly within `leaves`.
    pub viewer_leave_fraction: f64,
    /// When graceful leaves happen.
    pub leaves: (Duration, Duration),
    /// How long a crash takes to be noticed by each neighbour (media silence, link failure):
    /// uniform within this range.
    pub detection: (Duration, Duration),
    /// Simulated time to run.
    pub duration: Duration,
    /// How often the global checks and the time series are sampled.
    pub sample_interval: Duration,
    /// The overlay's tuning.
    pub overlay: OverlayConfig,
    /// Log every message to and from this member (a debugging aid).
    pub trace: Option<u32>,
}

impl Scenario {
    /// The acceptance run: 100 000 viewers, 2 000 relayers, 50 ms median RTT, 5 % of relayers
    /// crashing while viewers still arrive.
    pub fn acceptance(seed: u64) -> Self {
        let secs = Duration::from_secs;
        Self {
            seed,
            relayers: 2_000,
            viewers: 100_000,
            root_capacity: 16,
            relayer_capacities: vec![(16, 1), (32, 1), (64, 1), (128, 1)],
            median_rtt: Duration::from_millis(50),
            rtt_sigma: 0.5,
            relayer_joins: (secs(0), secs(10)),
            viewer_joins: (secs(10), secs(70)),
            crash_fraction: 0.05,
            crashes: (secs(30), secs(80)),
            relayer_leave_fraction: 0.02,
            viewer_leave_fraction: 0.05,
            leaves: (secs(35), secs(85)),
            detection: (Duration::from_millis(100), Duration::from_millis(300)),
            duration: secs(100),
            sample_interval: secs(1),
            overlay: OverlayConfig::default(),
            trace: None,
        }
    }

    /// The same run scaled down by `factor` in members (times stay).
    pub fn scaled_down(seed: u64, factor: u32) -> Self {
        let full = Self::acceptance(seed);
        Self {
            relayers: full.relayers / factor,
            viewers: full.viewers / factor,
            ..full
        }
    }

    /// Mean advertised relayer capacity: the tree's mean fan-out.
    pub fn mean_fanout(&self) -> f64 {
        let total: u32 = self.relayer_capacities.iter().map(|(_, w)| w).sum();
        let weighted: f64 = self
            .relayer_capacities
            .iter()
            .map(|(c, w)| f64::from(*c) * f64::from(*w))
            .sum();
        weighted / f64::from(total.max(1))
    }

    /// The depth bound of the acceptance: ⌈log_f N⌉ + 2 for N members and mean fan-out f.
    pub fn depth_bound(&self) -> u32 {
        let members = f64::from(self.relayers + self.viewers);
        let bound = (members.ln() / self.mean_fanout().ln()).ceil() + 2.0;
        // A small positive float: the cast cannot truncate anything that matters.
        bound as u32
    }
}

/// A tree invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// A member feeds more children than its capacity.
    FanOut,
    /// Following parents from a member comes back to it.
    Cycle,
    /// A member's parent is not at a lower level (the rule that rules out cycles).
    LevelOrder,
    /// A member still names a crashed parent after every neighbour must have noticed.
    StaleParent,
    /// A member has had no parent for longer than 10 s.
    OrphanedTooLong,
    /// A member's message queue overflowed.
    DroppedMessages,
}

/// One broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Simulated time.
    pub at: Duration,
    /// Which invariant.
    pub invariant: Invariant,
    /// The member where it was seen.
    pub member: u32,
    /// Details.
    pub detail: String,
}

/// A point of the time series.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Simulated time.
    pub at: Duration,
    /// Members in the tree (joined, not gone).
    pub members: u32,
    /// Share of members fed from the root through live, agreeing parents.
    pub connected: f64,
    /// Children fed over slots offered, across live relayers and the root.
    pub fanout_use: f64,
    /// Deepest fed member.
    pub max_depth: u32,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The scenario run.
    pub scenario: Scenario,
    /// Events processed.
    pub events: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages the root received.
    pub root_messages: u64,
    /// Join times (first join to attached), sorted.
    pub join_times: Vec<Duration>,
    /// Crash to re-attached, for each child of a crashed relayer, sorted.
    pub repair_times: Vec<Duration>,
    /// Handover start to attached, for children of leaving relayers, sorted.
    pub handover_times: Vec<Duration>,
    /// Viewers pushed down by relayers.
    pub evictions: u64,
    /// Moves up into freed slots.
    pub improvements: u64,
    /// Rounds of candidates that found no parent, by why the member was looking.
    pub failed_rounds: BTreeMap<&'static str, u64>,
    /// Messages delivered, by kind.
    pub messages_by_kind: BTreeMap<&'static str, u64>,
    /// Messages sent to members that had crashed or left.
    pub lost_messages: u64,
    /// Children of crashed relayers not re-attached by the end.
    pub unrepaired: usize,
    /// Members that never attached.
    pub never_joined: usize,
    /// Fed members per depth at the end (index = depth).
    pub depth_histogram: Vec<u64>,
    /// Deepest fed member at any sample.
    pub max_depth: u32,
    /// The time series.
    pub samples: Vec<Sample>,
    /// Broken invariants (the first few with details).
    pub violations: Vec<Violation>,
    /// How many invariant checks failed in all.
    pub violation_count: u64,
}

impl SimReport {
    /// The `p`-th percentile (0..=100) of sorted `values`.
    pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
        if values.is_empty() {
            return None;
        }
        let rank = (p / 100.0 * (values.len() - 1) as f64).round() as usize;
        values.get(rank.min(values.len() - 1)).copied()
    }

    /// What fails the acceptance criteria, in words; empty if the run passes.
    pub fn acceptance_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.violation_count > 0 {
            failures.push(format!("{} invariant violations", self.violation_count));
        }
        let bound = self.scenario.depth_bound();
        if self.max_depth > bound {
            failures.push(format!("max depth {} > bound {bound}", self.max_depth));
        }
        let p99 = |v: &[Duration]| Self::percentile(v, 99.0).unwrap_or_default();
        if p99(&self.join_times) >= Duration::from_millis(1500) {
            failures.push(format!("join p99 {:?} >= 1.5 s", p99(&self.join_times)));
        }
        if p99(&self.repair_times) >= Duration::from_secs(1) {
            failures.push(format!("repair p99 {:?} >= 1 s", p99(&self.repair_times)));
        }
        if self.unrepaired > 0 {
            failures.push(format!("{} orphans never repaired", self.unrepaired));
        }
        if self.never_joined > 0 {
            failures.push(format!("{} members never joined", self.never_joined));
        }
        failures
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.0} ms", d.as_secs_f64() * 1e3),
            )
        };
        let dist = |v: &[Duration]| {
            format!(
                "n={} p50 {} p90 {} p99 {} max {}",
                v.len(),
                ms(Self::percentile(v, 50.0)),
                ms(Self::percentile(v, 90.0)),
                ms(Self::percentile(v, 99.0)),
                ms(v.last().copied())
            )
        };
        let _ = writeln!(
            out,
            "scenario: seed {} | {} viewers, {} relayers (mean fan-out {:.1}), root capacity {} | median RTT {:?} | {:.0}% relayers crash, {:.0}% relayers and {:.0}% viewers leave",
            s.seed,
            s.viewers,
            s.relayers,
            s.mean_fanout(),
            s.root_capacity,
            s.median_rtt,
            s.crash_fraction * 100.0,
            s.relayer_leave_fraction * 100.0,
            s.viewer_leave_fraction * 100.0
        );
        let _ = writeln!(
            out,
            "events {} | messages {} ({} to the root)",
            self.events, self.messages, self.root_messages
        );
        let _ = writeln!(out, "join:     {}", dist(&self.join_times));
        let _ = writeln!(out, "repair:   {}", dist(&self.repair_times));
        let _ = writeln!(out, "handover: {}", dist(&self.handover_times));
        let _ = writeln!(
            out,
            "pushed down {} viewers | {} moves up | {} never joined | {} unrepaired",
            self.evictions, self.improvements, self.never_joined, self.unrepaired
        );
        let kinds: Vec<String> = self
            .messages_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "messages by kind: {} | lost to departed members {}",
            kinds.join(", "),
            self.lost_messages
        );
        let _ = writeln!(out, "rounds that found no parent: {:?}", self.failed_rounds);
        let histogram: Vec<String> = self
            .depth_histogram
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(d, n)| format!("{d}:{n}"))
            .collect();
        let _ = writeln!(
            out,
            "depth at end {} | max depth during run {} (bound ⌈log_f N⌉+2 = {})",
            histogram.join(" "),
            self.max_depth,
            s.depth_bound()
        );
        if let Some(last) = self.samples.last() {
            let min_connected = self
                .samples
                .iter()
                .filter(|x| x.at >= s.viewer_joins.1)
                .map(|x| x.connected)
                .fold(1.0, f64::min);
            let _ = writeln!(
                out,
                "at end: {} members, {:.2}% connected, fan-out use {:.1}% | lowest connected share after joins: {:.2}%",
                last.members,
                last.connected * 100.0,
                last.fanout_use * 100.0,
                min_connected * 100.0
            );
        }
        let _ = writeln!(out, "invariant violations: {}", self.violation_count);
        for v in &self.violations {
            let _ = writeln!(
                out,
                "  {:?} at {:?} on {}: {}",
                v.invariant, v.at, v.member, v.detail
            );
        }
        out
    }
}

/// Runs `scenario` to the end.
pub fn run(scenario: &Scenario) -> SimReport {
    let mut sim = Sim::new(scenario.clone());
    sim.run();
    sim.report()
}

#[derive(Debug)]
enum Action {
    Deliver {
        from: u32,
        to: u32,
        message: Message<u32>,
    },
    Disconnect {
        member: u32,
        peer: u32,
    },
    Timer {
        member: u32,
    },
    Join {
        member: u32,
    },
    Crash {
        member: u32,
    },
    Leave {
        member: u32,
    },
    Sample,
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug)]
struct Member {
    overlay: Overlay<u32>,
    /// One-way delay to the network core; a message takes the mean of both ends'.
    access: Duration,
    alive: bool,
    joined: bool,
    attached_once: bool,
    timer: Option<Duration>,
    died_at: Option<Duration>,
    unattached_since: Option<Duration>,
    orphan_reported: bool,
}

struct Sim {
    scenario: Scenario,
    epoch: Instant,
    now: Duration,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    members: Vec<Member>,
    /// Children of crashed relayers waiting to re-attach, with the crash time.
    repairing: HashMap<u32, Duration>,
    /// A member whose every message is logged (`Scenario::trace`).
    trace: Option<u32>,
    events: u64,
    messages: u64,
    root_messages: u64,
    join_times: Vec<Duration>,
    repair_times: Vec<Duration>,
    handover_times: Vec<Duration>,
    evictions: u64,
    improvements: u64,
    failed_rounds: BTreeMap<&'static str, u64>,
    messages_by_kind: BTreeMap<&'static str, u64>,
    lost_messages: u64,
    samples: Vec<Sample>,
    max_depth: u32,
    violations: Vec<Violation>,
    violation_count: u64,
}

impl Sim {
    fn new(scenario: Scenario) -> Self {
        // Any instant works as the origin: only offsets from it are used.
        #[allow(clippy::disallowed_methods)]
        let epoch = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let count = 1 + scenario.relayers + scenario.viewers;
        let weights: u32 = scenario.relayer_capacities.iter().map(|(_, w)| w).sum();
        let mut members = Vec::with_capacity(count as usize);
        for id in 0..count {
            let role = if id == ROOT {
                Role::Root {
                    capacity: scenario.root_capacity,
                }
            } else if id <= scenario.relayers {
                let mut pick = rng.random_range(0..weights.max(1));
                let capacity = scenario
                    .relayer_capacities
                    .iter()
                    .find(|(_, w)| {
                        let hit = pick < *w;
                        pick = pick.saturating_sub(*w);
                        hit
                    })
                    .map_or(0, |(c, _)| *c);
                Role::Relayer { capacity }
            } else {
                Role::Viewer
            };
            let access = log_normal(&mut rng, scenario.median_rtt / 2, scenario.rtt_sigma);
            let seed = scenario.seed ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let overlay = Overlay::new(scenario.overlay.clone(), id, role, seed, epoch);
            members.push(Member {
                overlay,
                access,
                alive: true,
                joined: id == ROOT,
                attached_once: id == ROOT,
                timer: None,
                died_at: None,
                unattached_since: None,
                orphan_reported: false,
            });
        }
        let mut sim = Self {
            epoch,
            now: Duration::ZERO,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            members,
            repairing: HashMap::new(),
            trace: scenario.trace,
            events: 0,
            messages: 0,
            root_messages: 0,
            join_times: Vec::new(),
            repair_times: Vec::new(),
            handover_times: Vec::new(),
            evictions: 0,
            improvements: 0,
            failed_rounds: BTreeMap::new(),
            messages_by_kind: BTreeMap::new(),
            lost_messages: 0,
            samples: Vec::new(),
            max_depth: 0,
            violations: Vec::new(),
            violation_count: 0,
            scenario,
        };
        sim.schedule_churn();
        sim
    }

    fn schedule_churn(&mut self) {
        let s = self.scenario.clone();
        let relayers: Vec<u32> = (1..=s.relayers).collect();
        let viewers: Vec<u32> = (s.relayers + 1..=s.relayers + s.viewers).collect();
        for &member in &relayers {
            let at = self.uniform(s.relayer_joins);
            self.push(at, Action::Join { member });
        }
        for &member in &viewers {
            let at = self.uniform(s.viewer_joins);
            self.push(at, Action::Join { member });
        }
        // Distinct relayers crash and leave: shuffle once, take from the front.
        let mut shuffled = relayers;
        for i in (1..shuffled.len()).rev() {
            let j = self.rng.random_range(0..=i);
            shuffled.swap(i, j);
        }
        let crashes = (f64::from(s.relayers) * s.crash_fraction).round() as usize;
        let leaves = (f64::from(s.relayers) * s.relayer_leave_fraction).round() as usize;
        for &member in shuffled.iter().take(crashes) {
            let at = self.uniform(s.crashes);
            self.push(at, Action::Crash { member });
        }
        for &member in shuffled.iter().skip(crashes).take(leaves) {
            let at = self.uniform(s.leaves);
            self.push(at, Action::Leave { member });
        }
        let viewer_leaves = (f64::from(s.viewers) * s.viewer_leave_fraction).round() as usize;
        for i in 0..viewer_leaves {
            // Spread over the viewers deterministically; which ones does not matter.
            let member = viewers[i * viewers.len() / viewer_leaves.max(1)];
            let at = self.uniform(s.leaves);
            self.push(at, Action::Leave { member });
        }
        self.push(s.sample_interval, Action::Sample);
    }

    fn run(&mut self) {
        while let Some(next) = self.queue.pop() {
            if next.at > self.scenario.duration {
                break;
            }
            self.now = next.at;
            self.events += 1;
            self.step(next.action);
        }
    }

    fn step(&mut self, action: Action) {
        let now = self.instant();
        match action {
            Action::Deliver { from, to, message } => {
                if self.trace.is_some_and(|t| t == from || t == to) {
                    let alive = self.members[to as usize].alive;
                    tracing::info!(at = ?self.now, from, to, alive, ?message, "deliver");
                }
                *self.messages_by_kind.entry(kind_of(&message)).or_default() += 1;
                if !self.members[to as usize].alive {
                    self.lost_messages += 1;
                }
                if self.members[to as usize].alive {
                    self.touch(to, |o| o.handle_message(now, from, message));
                }
            }
            Action::Disconnect { member, peer } => {
                if self.trace == Some(member) {
                    tracing::info!(at = ?self.now, member, peer, "disconnect");
                }
                if self.members[member as usize].alive {
                    self.touch(member, |o| o.handle_peer_disconnected(now, peer));
                }
            }
            Action::Timer { member } => {
                let m = &self.members[member as usize];
                if m.alive && m.timer == Some(self.now) {
                    if self.trace == Some(member) {
                        tracing::info!(at = ?self.now, member, "timer");
                    }
                    self.members[member as usize].timer = None;
                    self.touch(member, |o| o.handle_timeout(now));
                }
            }
            Action::Join { member } => {
                self.members[member as usize].joined = true;
                self.touch(member, |o| {
                    o.join(now, ROOT).expect("each member joins once");
                });
            }
            Action::Crash { member } => self.crash(member),
            Action::Leave { member } => {
                if self.members[member as usize].alive {
                    self.touch(member, |o| o.leave(now));
                }
            }
            Action::Sample => {
                self.sample();
                let next = self.now + self.scenario.sample_interval;
                self.push(next, Action::Sample);
            }
        }
    }

    /// Feeds one input to `member`, carries out what it asks and checks the invariants that
    /// the step could have changed.
    fn touch(&mut self, member: u32, input: impl FnOnce(&mut Overlay<u32>)) {
        let index = member as usize;
        let (level_before, parent_before) = {
            let o = &self.members[index].overlay;
            (o.level(), o.parent())
        };
        input(&mut self.members[index].overlay);
        while let Some(transmit) = self.members[index].overlay.poll_transmit() {
            self.messages += 1;
            if transmit.to == ROOT {
                self.root_messages += 1;
            }
            let delay =
                (self.members[index].access + self.members[transmit.to as usize].access) / 2;
            let at = self.now + delay;
            self.push(
                at,
                Action::Deliver {
                    from: member,
                    to: transmit.to,
                    message: transmit.message,
                },
            );
        }
        while let Some(event) = self.members[index].overlay.poll_event() {
            self.record(member, event);
        }
        let timer = self.members[index]
            .overlay
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.epoch).max(self.now));
        if timer != self.members[index].timer {
            self.members[index].timer = timer;
            if let Some(at) = timer {
                self.push(at, Action::Timer { member });
            }
        }
        self.check_member(member, level_before, parent_before);
    }

    fn record(&mut self, member: u32, event: OverlayEvent<u32>) {
        match event {
            OverlayEvent::Attached { reason, took, .. } => {
                let m = &mut self.members[member as usize];
                m.attached_once = true;
                m.unattached_since = None;
                m.orphan_reported = false;
                match reason {
                    SeekReason::Join => self.join_times.push(took),
                    SeekReason::Handover => self.handover_times.push(took),
                    SeekReason::Improve => self.improvements += 1,
                    SeekReason::Evicted | SeekReason::Repair => {}
                }
                if let Some(crashed_at) = self.repairing.remove(&member) {
                    let took = self.now - crashed_at;
                    if took > Duration::from_secs(1) {
                        tracing::info!(member, ?took, "slow repair: rerun with --trace {member}");
                    }
                    self.repair_times.push(took);
                }
            }
            OverlayEvent::ChildRemoved { .. } | OverlayEvent::ChildAdded { .. } => {}
            OverlayEvent::Left => {
                // The member is gone: its link to any child still naming it closes now.
                self.members[member as usize].alive = false;
                self.members[member as usize].died_at = Some(self.now);
                self.notify_neighbours(member, (Duration::ZERO, Duration::ZERO));
            }
            OverlayEvent::PeerMisbehaved { peer, reason } => {
                self.violation(
                    Invariant::LevelOrder,
                    member,
                    format!("{peer} misbehaved: {reason}"),
                );
            }
            OverlayEvent::SeekFailed { reason, .. } => {
                *self.failed_rounds.entry(reason_name(reason)).or_default() += 1;
            }
            OverlayEvent::ParentLost { .. } => {}
            _ => {}
        }
        if let OverlayEvent::ChildRemoved { child } = event
            && self.members[child as usize].overlay.parent() == Some(member)
            && self.members[member as usize].alive
        {
            // A child removed while it still names this parent was pushed down (evicted).
            self.evictions += 1;
        }
    }

    fn crash(&mut self, member: u32) {
        let m = &mut self.members[member as usize];
        if !m.alive {
            return;
        }
        m.alive = false;
        m.died_at = Some(self.now);
        for (id, other) in self.members.iter().enumerate() {
            if other.alive && other.overlay.parent() == Some(member) {
                self.repairing.insert(id as u32, self.now);
            }
        }
        let detection = self.scenario.detection;
        self.notify_neighbours(member, detection);
    }

    /// Tells every live member linked to `member` (its parent, its children, members naming
    /// it as parent) that the link is gone, each after a delay drawn from `delay`.
    fn notify_neighbours(&mut self, member: u32, delay: (Duration, Duration)) {
        let mut neighbours: Vec<u32> = self.members[member as usize].overlay.children().collect();
        neighbours.extend(self.members[member as usize].overlay.parent());
        neighbours.extend(
            self.members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.alive && m.overlay.parent() == Some(member))
                .map(|(id, _)| id as u32),
        );
        neighbours.sort_unstable();
        neighbours.dedup();
        for neighbour in neighbours {
            let at = self.now + self.uniform(delay);
            self.push(
                at,
                Action::Disconnect {
                    member: neighbour,
                    peer: member,
                },
            );
        }
    }

    /// The invariants one step can break: the member's fan-out, and the level order on the
    /// edges whose ends changed (the member's parent edge, and its child edges if its level
    /// changed). Checked after every step; together they rule out cycles (docs/tree.md).
    fn check_member(&mut self, member: u32, level_before: u32, parent_before: Option<u32>) {
        let m = &self.members[member as usize];
        let o = &m.overlay;
        let mut found = Vec::new();
        if o.child_count() > o.capacity() as usize {
            found.push((
                Invariant::FanOut,
                format!("{} children, capacity {}", o.child_count(), o.capacity()),
            ));
        }
        if o.dropped_transmits() > 0 {
            found.push((
                Invariant::DroppedMessages,
                format!("{} dropped", o.dropped_transmits()),
            ));
        }
        let level = o.level();
        if (o.parent() != parent_before || level != level_before)
            && let Some(parent) = o.parent()
        {
            let p = &self.members[parent as usize];
            if p.alive && p.overlay.level() >= level {
                found.push((
                    Invariant::LevelOrder,
                    format!(
                        "parent {parent} at level {} not above {level}",
                        p.overlay.level()
                    ),
                ));
            }
        }
        if level != level_before {
            for child in o.children() {
                let c = &self.members[child as usize];
                if c.alive && c.overlay.parent() == Some(member) && c.overlay.level() <= level {
                    found.push((
                        Invariant::LevelOrder,
                        format!(
                            "child {child} at level {} not below {level}",
                            c.overlay.level()
                        ),
                    ));
                }
            }
        }
        for (invariant, detail) in found {
            self.violation(invariant, member, detail);
        }
    }

    /// Global checks and the time series: cycles, stale parents, long orphans, depth,
    /// connectivity, fan-out use.
    fn sample(&mut self) {
        const UNKNOWN: u32 = u32::MAX;
        const VISITING: u32 = u32::MAX - 1;
        const UNFED: u32 = u32::MAX - 2;
        let n = self.members.len();
        let mut depth = vec![UNKNOWN; n];
        depth[ROOT as usize] = 0;
        let mut found = Vec::new();
        let mut path = Vec::new();
        for start in 0..n {
            if depth[start] != UNKNOWN {
                continue;
            }
            // Walk up until a known depth, marking the path to detect a cycle.
            path.clear();
            let mut at = start;
            let base = loop {
                match depth[at] {
                    VISITING => {
                        found.push((Invariant::Cycle, at as u32, format!("cycle through {at}")));
                        break UNFED;
                    }
                    UNKNOWN => {}
                    known => break known,
                }
                depth[at] = VISITING;
                path.push(at);
                let m = &self.members[at];
                let fed_by = m.overlay.parent().filter(|p| {
                    let parent = &self.members[*p as usize];
                    m.alive && parent.alive && parent.overlay.children().any(|c| c as usize == at)
                });
                match fed_by {
                    Some(p) => at = p as usize,
                    None => break UNFED,
                }
            };
            for (i, member) in path.iter().rev().enumerate() {
                depth[*member] = if base >= UNFED {
                    UNFED
                } else {
                    base + 1 + i as u32
                };
            }
        }
        let (mut members, mut fed, mut used, mut offered, mut deepest) =
            (0u32, 0u32, 0u64, 0u64, 0u32);
        // A crash is noticed within the detection window; a graceful exit at once.
        let stale_after = self.scenario.detection.1 + Duration::from_millis(1);
        let died: Vec<Option<Duration>> = self.members.iter().map(|m| m.died_at).collect();
        for (id, m) in self.members.iter_mut().enumerate() {
            if !m.alive {
                continue;
            }
            if m.overlay.capacity() > 0 {
                used += m.overlay.child_count() as u64;
                offered += u64::from(m.overlay.capacity());
            }
            if !m.joined || m.overlay.has_left() {
                continue;
            }
            members += 1;
            if depth[id] < UNFED {
                fed += 1;
                deepest = deepest.max(depth[id]);
            }
            if let Some(parent) = m.overlay.parent()
                && let Some(died) = died[parent as usize]
                && self.now - died > stale_after
            {
                found.push((
                    Invariant::StaleParent,
                    id as u32,
                    format!("parent {parent} gone since {died:?}"),
                ));
            }
            if m.overlay.is_attached() {
                m.unattached_since = None;
            } else if m.attached_once {
                let since = *m.unattached_since.get_or_insert(self.now);
                if self.now - since > MAX_ORPHAN_TIME && !m.orphan_reported {
                    m.orphan_reported = true;
                    found.push((
                        Invariant::OrphanedTooLong,
                        id as u32,
                        format!("no parent since {since:?}"),
                    ));
                }
            }
        }
        self.max_depth = self.max_depth.max(deepest);
        self.samples.push(Sample {
            at: self.now,
            members,
            connected: if members == 0 {
                1.0
            } else {
                f64::from(fed) / f64::from(members)
            },
            fanout_use: if offered == 0 {
                0.0
            } else {
                used as f64 / offered as f64
            },
            max_depth: deepest,
        });
        for (invariant, member, detail) in found {
            self.violation(invariant, member, detail);
        }
    }

    fn report(self) -> SimReport {
        let sorted = |mut v: Vec<Duration>| {
            v.sort_unstable();
            v
        };
        let mut depth_histogram = Vec::new();
        let unrepaired = self
            .repairing
            .keys()
            .filter(|id| self.members[**id as usize].alive)
            .count();
        let never_joined = self
            .members
            .iter()
            .filter(|m| m.alive && m.joined && !m.attached_once)
            .count();
        // Final depths: follow parents of fed members.
        for id in 0..self.members.len() {
            if let Some(d) = self.fed_depth(id as u32) {
                let d = d as usize;
                if depth_histogram.len() <= d {
                    depth_histogram.resize(d + 1, 0);
                }
                depth_histogram[d] += 1;
            }
        }
        SimReport {
            events: self.events,
            messages: self.messages,
            root_messages: self.root_messages,
            join_times: sorted(self.join_times),
            repair_times: sorted(self.repair_times),
            handover_times: sorted(self.handover_times),
            evictions: self.evictions,
            improvements: self.improvements,
            failed_rounds: self.failed_rounds,
            messages_by_kind: self.messages_by_kind,
            lost_messages: self.lost_messages,
            unrepaired,
            never_joined,
            depth_histogram,
            max_depth: self.max_depth,
            samples: self.samples,
            violations: self.violations,
            violation_count: self.violation_count,
            scenario: self.scenario,
        }
    }

    fn fed_depth(&self, member: u32) -> Option<u32> {
        let mut at = member;
        let mut depth = 0;
        while at != ROOT {
            let m = &self.members[at as usize];
            let parent = m.overlay.parent()?;
            let p = &self.members[parent as usize];
            if !m.alive || !p.alive || !p.overlay.children().any(|c| c == at) {
                return None;
            }
            depth += 1;
            if depth > self.members.len() as u32 {
                return None;
            }
            at = parent;
        }
        Some(depth)
    }

    fn violation(&mut self, invariant: Invariant, member: u32, detail: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_VIOLATIONS_KEPT {
            self.violations.push(Violation {
                at: self.now,
                invariant,
                member,
                detail,
            });
        }
    }

    fn push(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }

    fn instant(&self) -> Instant {
        self.epoch + self.now
    }

    fn uniform(&mut self, (from, to): (Duration, Duration)) -> Duration {
        if to <= from {
            return from;
        }
        let span = (to - from).as_micros() as u64;
        from + Duration::from_micros(self.rng.random_range(0..span))
    }
}

fn kind_of<P>(message: &Message<P>) -> &'static str {
    match message {
        Message::Accepted { .. } => "accepted",
        Message::Evicted { .. } => "evicted",
        Message::Handover { .. } => "handover",
        Message::Invite { .. } => "invite",
        Message::Join { .. } => "join",
        Message::Left => "left",
        Message::Redirected { .. } => "redirected",
        Message::Refused => "refused",
        Message::Report { .. } => "report",
        Message::State { .. } => "state",
    }
}

fn reason_name(reason: SeekReason) -> &'static str {
    match reason {
        SeekReason::Evicted => "evicted",
        SeekReason::Handover => "handover",
        SeekReason::Improve => "improve",
        SeekReason::Join => "join",
        SeekReason::Repair => "repair",
    }
}

/// A log-normal delay with the given median and spread, clamped to 1 ms ..= 1 s.
fn log_normal(rng: &mut ChaCha8Rng, median: Duration, sigma: f64) -> Duration {
    // Box-Muller: a standard normal from two uniforms.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let value = median.as_secs_f64() * (sigma * z).exp();
    Duration::from_secs_f64(value.clamp(0.001, 1.0))
}
