//! The event loop and the network model; the rest of the simulation in submodules: the
//! node's costs on messages (`costed`), whether media reaches each member (`media`), the
//! overlay's events carried out (`events`), crashes (`failures`), and the invariant checks and
//! measurements (`checks`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use chroom_overlay::{Message, Overlay, OverlayConfig, OverlayEvent, Role, SeekReason};

use crate::report::{Invariant, Sample, SimReport, Violation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::costs::{CostModel, Nat, Path, uniform};

mod checks;
mod costed;
mod events;
mod failures;
mod media;

/// Member id of the broadcaster.
const ROOT: u32 = 0;
/// Longest a member may stay without a parent before it counts as a violation.
const MAX_ORPHAN_TIME: Duration = Duration::from_secs(10);
/// Violations kept with their details; the rest are only counted.
const MAX_VIOLATIONS_KEPT: usize = 50;
/// `Sim::parent_of` of a member without a parent.
const NO_PARENT: u32 = u32::MAX;

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
    /// The real node's costs: registry lookups, link setup per NAT pair, one tree message in
    /// flight per peer, crashes noticed by media silence. `None`: the idealised network of
    /// issue 4 (messages only, crashes noticed within [`Self::detection`], a member counts as
    /// joined or repaired once a parent accepted it).
    pub costs: Option<CostModel>,
    /// Acceptance: join p99 must stay below this.
    pub join_target: Duration,
    /// Acceptance: repair p99 must stay below this.
    pub repair_target: Duration,
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
            costs: None,
            join_target: Duration::from_millis(1500),
            repair_target: Duration::from_secs(1),
            trace: None,
        }
    }

    /// The same run scaled down by `factor` in members (times stay).
    pub fn scaled_down(seed: u64, factor: u32) -> Self {
        Self::acceptance(seed).scaled(factor)
    }

    /// Issue 13's run: 1 000 000 viewers and 20 000 relayers with the real node's costs
    /// ([`CostModel::default`]), 5 % of relayers crashing, on the same timeline as
    /// [`Self::acceptance`]. Targets: join and repair p99 below 2 s, both counted until media
    /// arrives.
    pub fn measured(seed: u64) -> Self {
        Self {
            relayers: 20_000,
            viewers: 1_000_000,
            costs: Some(CostModel::default()),
            join_target: Duration::from_secs(2),
            repair_target: Duration::from_secs(2),
            ..Self::acceptance(seed)
        }
    }

    /// This run with `factor` times fewer members (times stay).
    pub fn scaled(self, factor: u32) -> Self {
        let factor = factor.max(1);
        Self {
            relayers: self.relayers / factor,
            viewers: self.viewers / factor,
            ..self
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
    /// With costs: a report or a state parked in `Sim::parked_news` (a newer one replaces it
    /// while it waits behind the message in flight).
    DeliverNews {
        from: u32,
        to: u32,
        id: u64,
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
    /// With costs: the member's own access check is done; it joins the tree.
    Enter {
        member: u32,
    },
    /// With costs: the link to `parent` connected.
    LinkUp {
        member: u32,
        parent: u32,
    },
    /// With costs: the member's media stopped at `since`; its node may drop a silent parent.
    SilenceCheck {
        member: u32,
        since: Duration,
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
    nat: Nat,
    alive: bool,
    joined: bool,
    attached_once: bool,
    orphan_reported: bool,
    /// With costs: media arrives (from the root, through parents whose links are up).
    receiving: bool,
    received_once: bool,
    timer: Option<Duration>,
    died_at: Option<Duration>,
    unattached_since: Option<Duration>,
    /// With costs: when the member joined the room.
    joined_at: Duration,
    /// With costs: when the link to the current parent connects(ed).
    link_up_at: Option<Duration>,
    /// With costs: the parent before a move, whose link feeds until the new one is up
    /// (the session keeps it as `retiring`) or that parent lets the member go.
    previous: Option<u32>,
    /// With costs: since when media has stopped.
    silent_since: Option<Duration>,
}

/// A directed pair of members, as one key: `from << 32 | to`.
fn pair(from: u32, to: u32) -> u64 {
    (u64::from(from) << 32) | u64::from(to)
}

/// What one member's node knows of another's, with costs.
#[derive(Debug, Default, Clone, Copy)]
struct PairState {
    /// Microseconds since the start until which a tree message from the first to the second is
    /// in flight (sent, not yet acknowledged): the node sends one at a time per peer.
    busy_until_us: u32,
    /// Microseconds since the start at which the second knew the first's rights (0: not
    /// looked up yet).
    verified_at_us: u32,
}

/// Hashes a pair key with splitmix64's finaliser: a million members make tens of millions of
/// pairs, and SipHash's resistance to chosen keys buys nothing in a simulation. (A bare
/// multiplication is not enough: its low bits, which pick the bucket, would depend on the
/// receiver alone, and every joiner's pair with the root would land in one bucket.)
#[derive(Debug, Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }
}

/// For a message that only says what holds now (a report up, a state down), the key under
/// which a newer one replaces it while it waits in the sender's queue (`chroom-room`
/// `node/mod.rs` `queue_tree`).
fn news_key(from: u32, to: u32, message: &Message<u32>) -> Option<u64> {
    let kind = match message {
        Message::Report { .. } => 0,
        Message::State { .. } => 1,
        _ => return None,
    };
    // Member ids stay below 2^31 (a million-member run uses 21 bits).
    Some((pair(from, to) << 1) | kind)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

struct Sim {
    scenario: Scenario,
    epoch: Instant,
    now: Duration,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    members: Vec<Member>,
    /// Each member's parent as its overlay names it (`u32::MAX`: none), kept apart from
    /// `members` so that finding who names a member is a scan of 4 bytes per member.
    parent_of: Vec<u32>,
    /// With costs: what each node knows of each peer it heard from.
    pairs: HashMap<u64, PairState, BuildHasherDefault<PairHasher>>,
    /// With costs: reports and states scheduled, by id (see [`Action::DeliverNews`]).
    parked_news: HashMap<u64, Message<u32>>,
    /// With costs: the latest report or state scheduled per sender, receiver and kind
    /// ([`news_key`]), and when it leaves the sender's queue.
    waiting_news: HashMap<u64, (u64, u32), BuildHasherDefault<PairHasher>>,
    /// Members whose media may have started or stopped, to look at after a step.
    to_refresh: Vec<u32>,
    outages: Vec<Duration>,
    lookups: u64,
    /// Lookups of the root per simulated second.
    root_lookups: Vec<u32>,
    links: (u64, u64),
    queued_messages: u64,
    silent_parent_drops: u64,
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
    violations_by_invariant: BTreeMap<Invariant, u64>,
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
            // Drawn only with costs, so that runs without them stay as they were.
            let nat = match (&scenario.costs, role) {
                (None, _) | (_, Role::Root { .. }) => Nat::Public,
                (Some(costs), Role::Relayer { .. }) => costs.relayer_nat.draw(&mut rng),
                (Some(costs), Role::Viewer) => costs.viewer_nat.draw(&mut rng),
            };
            let seed = scenario.seed ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let overlay = Overlay::new(scenario.overlay.clone(), id, role, seed, epoch);
            members.push(Member {
                overlay,
                access,
                nat,
                alive: true,
                joined: id == ROOT,
                attached_once: id == ROOT,
                orphan_reported: false,
                receiving: id == ROOT,
                received_once: id == ROOT,
                timer: None,
                died_at: None,
                unattached_since: None,
                joined_at: Duration::ZERO,
                link_up_at: None,
                previous: None,
                silent_since: None,
            });
        }
        let mut sim = Self {
            epoch,
            now: Duration::ZERO,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            parent_of: vec![NO_PARENT; members.len()],
            members,
            pairs: HashMap::default(),
            parked_news: HashMap::new(),
            waiting_news: HashMap::default(),
            to_refresh: Vec::new(),
            outages: Vec::new(),
            lookups: 0,
            root_lookups: Vec::new(),
            links: (0, 0),
            queued_messages: 0,
            silent_parent_drops: 0,
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
            violations_by_invariant: BTreeMap::new(),
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
                if self.members[to as usize].alive
                    && let Some(at) = self.check_join(from, to, &message)
                {
                    self.push(at, Action::Deliver { from, to, message });
                    return;
                }
                if self.trace.is_some_and(|t| t == from || t == to) {
                    let alive = self.members[to as usize].alive;
                    tracing::info!(at = ?self.now, from, to, alive, ?message, "deliver");
                }
                *self.messages_by_kind.entry(kind_of(&message)).or_default() += 1;
                if !self.members[to as usize].alive {
                    self.lost_messages += 1;
                    // Unacknowledged, it tells its sender the receiver is gone.
                    let ack = self.scenario.costs.as_ref().map(|c| c.tree_ack_timeout);
                    if let Some(ack) = ack
                        && !matches!(message, Message::Join { .. } | Message::Accepted { .. })
                    {
                        self.disconnect_after(ack, from, to);
                    }
                }
                if self.members[to as usize].alive {
                    self.touch(to, |o| o.handle_message(now, from, message));
                }
            }
            Action::DeliverNews { from, to, id } => {
                let message = self.parked_news.remove(&id).expect("parked when scheduled");
                if let Some(key) = news_key(from, to, &message)
                    && self.waiting_news.get(&key).is_some_and(|(i, _)| *i == id)
                {
                    self.waiting_news.remove(&key);
                }
                self.step(Action::Deliver { from, to, message });
            }
            Action::Disconnect { member, peer } => {
                if self.trace == Some(member) {
                    tracing::info!(at = ?self.now, member, peer, "disconnect");
                }
                // With costs a link closes late (ICE consent, connect timeout): by then the
                // peer may have come back as this member's child, on a new link.
                let came_back = self.scenario.costs.is_some()
                    && self.members[peer as usize].alive
                    && self.parent_of[peer as usize] == member;
                if self.members[member as usize].alive && !came_back {
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
                    let m = &mut self.members[member as usize];
                    if m.timer == Some(self.now) {
                        // Dropped from `timer`, the entry just queued is ignored when it pops.
                        m.timer = None;
                        let detail = "its timeout was still due once handled".to_owned();
                        self.violation(Invariant::StuckTimer, member, detail);
                    }
                }
            }
            Action::Join { member } => {
                let m = &mut self.members[member as usize];
                m.joined = true;
                m.joined_at = self.now;
                if let Some(costs) = &self.scenario.costs {
                    // Before it looks for the tree the node checks its own right to watch and
                    // the broadcaster's claim (`consider_roots`), both at once: the root's
                    // answers need no lookup after that.
                    let own = costs.lookup(&mut self.rng);
                    let root = costs.lookup(&mut self.rng);
                    let at = self.now + own.max(root);
                    self.lookups += 2;
                    self.pairs
                        .entry(pair(ROOT, member))
                        .or_default()
                        .verified_at_us = micros(at);
                    self.push(at, Action::Enter { member });
                } else {
                    self.step(Action::Enter { member });
                }
            }
            Action::Enter { member } => {
                if self.members[member as usize].alive {
                    self.touch(member, |o| {
                        o.join(now, ROOT).expect("each member joins once");
                    });
                }
            }
            Action::LinkUp { member, parent } => {
                let m = &mut self.members[member as usize];
                if m.alive && m.overlay.parent() == Some(parent) && m.link_up_at == Some(self.now) {
                    // The session closes the retiring link once the new one is up.
                    m.previous = None;
                    self.to_refresh.push(member);
                    self.refresh();
                }
            }
            Action::SilenceCheck { member, since } => self.silence_check(member, since),
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
            if self.scenario.costs.is_none() {
                let (from, to, message) = (member, transmit.to, transmit.message);
                self.push(self.now + delay, Action::Deliver { from, to, message });
                continue;
            }
            let news = news_key(member, transmit.to, &transmit.message);
            if let Some(key) = news
                && let Some(&(id, departs_us)) = self.waiting_news.get(&key)
                && departs_us > micros(self.now)
            {
                // Still waiting behind the message in flight: the node replaces it.
                self.parked_news.insert(id, transmit.message);
                continue;
            }
            let (departs_us, at) =
                self.costed_delivery(member, transmit.to, &transmit.message, delay);
            let (from, to) = (member, transmit.to);
            if let Some(key) = news {
                self.seq += 1;
                let id = self.seq;
                self.parked_news.insert(id, transmit.message);
                self.waiting_news.insert(key, (id, departs_us));
                self.push(at, Action::DeliverNews { from, to, id });
            } else {
                let message = transmit.message;
                self.push(at, Action::Deliver { from, to, message });
            }
        }
        while let Some(event) = self.members[index].overlay.poll_event() {
            self.record(member, event);
        }
        self.parent_of[index] = self.members[index].overlay.parent().unwrap_or(NO_PARENT);
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
        if self.scenario.costs.is_some() {
            self.to_refresh.push(member);
            self.refresh();
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

    fn uniform(&mut self, range: (Duration, Duration)) -> Duration {
        uniform(&mut self.rng, range)
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
        Message::Probe => "probe",
        Message::Repairing => "repairing",
        Message::Feeding => "feeding",
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
