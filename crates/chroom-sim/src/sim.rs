//! The event loop, the network model, the invariant checks and the measurements.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use chroom_overlay::{Message, Overlay, OverlayConfig, OverlayEvent, Role, SeekReason};

use crate::report::{Invariant, Sample, SimReport, Violation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::costs::{CostModel, Nat, Path, uniform};

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

    /// When a tree message from `from` is handled at `to`, with the node's costs: it waits
    /// for the message in flight to the same peer to be acknowledged (the node sends one at a
    /// time per peer, `chroom-room` `node/mod.rs` `TreeQueue`), and for the receiver's registry
    /// lookup of the sender if the message needs the sender's rights and the receiver does not
    /// know them yet (`session/broadcast.rs` `handle_tree_request`). The acknowledgement,
    /// sent once the message is handled, frees the pair for the next one.
    fn costed_delivery(
        &mut self,
        from: u32,
        to: u32,
        message: &Message<u32>,
        one_way: Duration,
    ) -> (u32, Duration) {
        let costs = self.scenario.costs.clone().expect("called with costs");
        let now_us = micros(self.now);
        let state = self.pairs.entry(pair(from, to)).or_default();
        if state.busy_until_us > now_us {
            self.queued_messages += 1;
        }
        let departs = state.busy_until_us.max(now_us);
        let arrives = departs.saturating_add(micros(one_way));
        // A refusal or a goodbye only takes something away from its sender, and a redirect
        // is a hint: no check. A join is checked only if the receiver takes it, which it
        // decides on arrival ([`Self::check_join`]).
        let checked = !matches!(
            message,
            Message::Refused | Message::Left | Message::Redirected { .. } | Message::Join { .. }
        );
        if matches!(message, Message::Join { .. })
            && self
                .pairs
                .get(&pair(to, from))
                .is_none_or(|s| s.verified_at_us == 0)
        {
            // The joiner looks up the member it asks while the join travels
            // (`session/broadcast.rs` `prefetch_feeder`): its acceptance needs the answer.
            let lookup = costs.lookup(&mut self.rng);
            self.start_lookup(to, from, now_us, lookup);
        }
        let handled = if checked {
            if self
                .pairs
                .get(&pair(from, to))
                .is_none_or(|s| s.verified_at_us == 0)
            {
                let lookup = costs.lookup(&mut self.rng);
                self.start_lookup(from, to, arrives, lookup);
            }
            let state = self.pairs.entry(pair(from, to)).or_default();
            arrives.max(state.verified_at_us)
        } else {
            arrives
        };
        let state = self.pairs.entry(pair(from, to)).or_default();
        state.busy_until_us = handled.saturating_add(micros(one_way));
        (departs, Duration::from_micros(u64::from(handled)))
    }

    /// `to`'s registry lookup of `from`, starting at `at_us` and taking `lookup`.
    fn start_lookup(&mut self, from: u32, to: u32, at_us: u32, lookup: Duration) {
        let state = self.pairs.entry(pair(from, to)).or_default();
        state.verified_at_us = at_us.saturating_add(micros(lookup));
        self.lookups += 1;
        if to == ROOT {
            let second = at_us as usize / 1_000_000;
            if self.root_lookups.len() <= second {
                self.root_lookups.resize(second + 1, 0);
            }
            self.root_lookups[second] += 1;
        }
    }

    /// With costs, a join arriving at `to`: a relayer's that it would take waits for `to`'s
    /// lookup of the joiner if `to` does not know it yet (the acknowledgement with it); a
    /// viewer's is taken at once, the lookup started beside it; one it only redirects is
    /// answered at once. Returns when to deliver it, if not now.
    fn check_join(&mut self, from: u32, to: u32, message: &Message<u32>) -> Option<Duration> {
        let costs = self.scenario.costs.as_ref()?;
        let &Message::Join {
            below_level,
            capacity,
        } = message
        else {
            return None;
        };
        let now_us = micros(self.now);
        let verified_at = self.pairs.get(&pair(from, to)).map(|s| s.verified_at_us);
        if verified_at.is_some_and(|at| at != 0 && at <= now_us)
            || !self.members[to as usize]
                .overlay
                .would_take(from, below_level, capacity)
        {
            return None;
        }
        let at = match verified_at {
            Some(at) if at != 0 => at,
            _ => {
                let lookup = costs.lookup(&mut self.rng);
                self.start_lookup(from, to, now_us, lookup);
                self.pairs[&pair(from, to)].verified_at_us
            }
        };
        if capacity == 0 {
            // A viewer is taken at once; its link stays held until the lookup is back
            // ([`Self::open_link`]).
            return None;
        }
        let one_way = (self.members[from as usize].access + self.members[to as usize].access) / 2;
        let state = self.pairs.entry(pair(from, to)).or_default();
        state.busy_until_us = state.busy_until_us.max(at.saturating_add(micros(one_way)));
        Some(Duration::from_micros(u64::from(at)))
    }

    /// Looks again at whether media reaches the members in `to_refresh`, and below them when
    /// that changed: records first media, repairs and outages, and starts the node's silence
    /// timer where media stopped.
    fn refresh(&mut self) {
        let Some(costs) = self.scenario.costs.clone() else {
            self.to_refresh.clear();
            return;
        };
        while let Some(id) = self.to_refresh.pop() {
            if id == ROOT {
                continue;
            }
            let receiving = self
                .feeder(id)
                .is_some_and(|f| self.members[f as usize].receiving);
            let now = self.now;
            let m = &mut self.members[id as usize];
            if receiving == m.receiving {
                continue;
            }
            m.receiving = receiving;
            if receiving {
                // The node hears the link's first (or renewed) media.
                m.overlay.handle_parent_flowing();
                if !m.received_once {
                    m.received_once = true;
                    self.join_times.push(now - m.joined_at);
                }
                if let Some(since) = m.silent_since.take() {
                    self.outages.push(now - since);
                }
                if let Some(crashed_at) = self.repairing.remove(&id) {
                    self.repair_times.push(now - crashed_at);
                }
            } else if m.alive {
                m.silent_since = Some(now);
                // The last packet came up to one packet gap before; the node's silence timer
                // runs from it.
                let gap = uniform(&mut self.rng, (Duration::ZERO, costs.packet_gap));
                let at = (now + costs.silence_timeout).saturating_sub(gap);
                self.push(
                    at.max(now),
                    Action::SilenceCheck {
                        member: id,
                        since: now,
                    },
                );
            }
            let children: Vec<u32> = self.members[id as usize].overlay.children().collect();
            self.to_refresh.extend(children);
        }
    }

    /// The member whose link feeds `id` media now, if any: its parent once their link is up
    /// and while the parent feeds it, else the parent it is moving from.
    fn feeder(&self, id: u32) -> Option<u32> {
        let m = &self.members[id as usize];
        if !m.alive {
            return None;
        }
        let feeds = |p: u32| {
            let parent = &self.members[p as usize];
            parent.alive && parent.overlay.has_child(id)
        };
        if let Some(parent) = m.overlay.parent()
            && m.link_up_at.is_some_and(|at| at <= self.now)
            && feeds(parent)
        {
            return Some(parent);
        }
        m.previous.filter(|p| feeds(*p))
    }

    /// The node's reaction to media silence (`session/broadcast.rs` `handle_link_media`): the
    /// overlay probes the silent parent and drops it unless it says it repairs.
    fn silence_check(&mut self, member: u32, since: Duration) {
        let m = &self.members[member as usize];
        if !m.alive || m.receiving || m.silent_since != Some(since) {
            return;
        }
        // Only the link that was carrying media goes silent; a link still connecting (or one
        // that never carried media) raises no silence.
        if m.overlay.parent().is_none() || m.link_up_at.is_none_or(|up| up > since) {
            return;
        }
        let now = self.instant();
        self.touch(member, |o| o.handle_parent_silent(now));
    }

    fn record(&mut self, member: u32, event: OverlayEvent<u32>) {
        match event {
            OverlayEvent::Attached {
                parent,
                previous,
                reason,
                took,
                ..
            } => {
                if self.scenario.costs.is_some() {
                    self.open_link(member, parent, previous);
                    let m = &mut self.members[member as usize];
                    m.attached_once = true;
                    m.unattached_since = None;
                    m.orphan_reported = false;
                    match reason {
                        SeekReason::Handover => self.handover_times.push(took),
                        SeekReason::Improve => self.improvements += 1,
                        SeekReason::Evicted | SeekReason::Join | SeekReason::Repair => {}
                    }
                    return;
                }
                let m = &mut self.members[member as usize];
                // Without costs media is not modelled: it flows as soon as a parent takes it.
                m.overlay.handle_parent_flowing();
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
            OverlayEvent::ChildRemoved { child } => self.to_refresh.push(child),
            OverlayEvent::ChildAdded { .. } => {}
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
            OverlayEvent::ParentLost { parent, silent } => {
                // The session closes the lost parent's link.
                self.members[member as usize].link_up_at = None;
                if silent {
                    if self.members[parent as usize].alive {
                        self.silent_parent_drops += 1;
                    }
                    // A live parent notices only when ICE consent fails.
                    let consent = self.scenario.costs.as_ref().map(|c| c.consent_timeout);
                    if let Some(consent) = consent {
                        self.disconnect_after(consent, parent, member);
                    }
                }
            }
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

    /// With costs: the session subscribes to the new parent (a media link, set up in the
    /// time its NAT pair takes) and keeps the old parent's link until then.
    fn open_link(&mut self, member: u32, parent: u32, previous: Option<u32>) {
        let costs = self.scenario.costs.clone().expect("called with costs");
        let (a, b) = (
            &self.members[member as usize],
            &self.members[parent as usize],
        );
        let (nat_a, nat_b, rtt) = (a.nat, b.nat, a.access + b.access);
        let was_fed_by = self.feeder(member);
        let setup = costs.link_setup(&mut self.rng, nat_a, nat_b, rtt);
        self.links.0 += 1;
        if CostModel::path(nat_a, nat_b) == Path::Relayed {
            self.links.1 += 1;
        }
        if !self.members[parent as usize].alive {
            // Accepted just before it died: the subscription fails at the connect timeout.
            self.members[member as usize].link_up_at = None;
            self.disconnect_after(costs.connect_timeout, member, parent);
            return;
        }
        // The parent holds the link until its lookup of this member is back.
        let verified = self
            .pairs
            .get(&pair(member, parent))
            .map_or(Duration::ZERO, |s| {
                Duration::from_micros(u64::from(s.verified_at_us))
            });
        let at = (self.now + setup).max(verified);
        let m = &mut self.members[member as usize];
        m.link_up_at = Some(at);
        m.previous = previous.filter(|p| was_fed_by == Some(*p));
        self.push(at, Action::LinkUp { member, parent });
    }

    fn crash(&mut self, member: u32) {
        let m = &mut self.members[member as usize];
        if !m.alive {
            return;
        }
        m.alive = false;
        m.died_at = Some(self.now);
        let children = self.namers(member);
        for &id in &children {
            self.repairing.insert(id, self.now);
        }
        let Some(costs) = self.scenario.costs.clone() else {
            let detection = self.scenario.detection;
            self.notify_neighbours(member, detection);
            return;
        };
        // Gone without a word: its children see their media stop (and their node acts on the
        // silence); its parent keeps its slot until ICE consent fails; children whose link to
        // it was still connecting see the link fail at its connect timeout, and those whose
        // link never carried media (it was starved itself) at ICE consent.
        let m = &self.members[member as usize];
        if let Some(parent) = m.overlay.parent() {
            self.disconnect_after(costs.consent_timeout, parent, member);
        }
        for id in children {
            let up = self.members[id as usize]
                .link_up_at
                .is_some_and(|at| at <= self.now);
            // A link that carried media goes silent first; ICE consent closes any that is up.
            let fails_after = if up {
                costs.consent_timeout
            } else {
                costs.connect_timeout
            };
            self.disconnect_after(fails_after, id, member);
            self.to_refresh.push(id);
        }
        self.to_refresh
            .extend(self.members[member as usize].overlay.children());
        self.refresh();
    }

    /// Live members whose overlay names `member` as parent.
    fn namers(&self, member: u32) -> Vec<u32> {
        if self.members[member as usize].overlay.capacity() == 0 {
            // Nobody joins under a viewer.
            return Vec::new();
        }
        self.parent_of
            .iter()
            .enumerate()
            .filter(|(id, p)| **p == member && self.members[*id].alive)
            .map(|(id, _)| id as u32)
            .collect()
    }

    /// Tells every live member linked to `member` (its parent, its children, members naming
    /// it as parent) that the link is gone, each after a delay drawn from `delay`.
    fn notify_neighbours(&mut self, member: u32, delay: (Duration, Duration)) {
        let mut neighbours: Vec<u32> = self.members[member as usize].overlay.children().collect();
        neighbours.extend(self.members[member as usize].overlay.parent());
        neighbours.extend(self.namers(member));
        neighbours.sort_unstable();
        neighbours.dedup();
        for neighbour in neighbours {
            let after = self.uniform(delay);
            self.disconnect_after(after, neighbour, member);
        }
    }

    /// `member` learns, `after` from now, that its link to `peer` is gone.
    fn disconnect_after(&mut self, after: Duration, member: u32, peer: u32) {
        let at = self.now + after;
        self.push(at, Action::Disconnect { member, peer });
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
                    m.alive && parent.alive && parent.overlay.has_child(at as u32)
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
        // A crash is noticed within the detection window; a graceful exit at once. With costs
        // a child whose link was still connecting notices last, at the link's timeout.
        let stale_after = match &self.scenario.costs {
            Some(costs) => {
                costs.connect_timeout.max(costs.consent_timeout) + Duration::from_millis(1)
            }
            None => self.scenario.detection.1 + Duration::from_millis(1),
        };
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
                deepest = deepest.max(depth[id]);
            }
            // With costs a member counts as connected once media reaches it.
            let connected = if self.scenario.costs.is_some() {
                m.receiving
            } else {
                depth[id] < UNFED
            };
            if connected {
                fed += 1;
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
        let costs = self.scenario.costs.is_some();
        let never_joined = self
            .members
            .iter()
            .filter(|m| m.alive && m.joined)
            .filter(|m| {
                !if costs {
                    m.received_once
                } else {
                    m.attached_once
                }
            })
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
            outages: sorted(self.outages),
            lookups: self.lookups,
            root_lookups_peak: self.root_lookups.iter().copied().max().unwrap_or(0),
            links: self.links,
            queued_messages: self.queued_messages,
            silent_parent_drops: self.silent_parent_drops,
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
            violations_by_invariant: self.violations_by_invariant,
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
            if !m.alive || !p.alive || !p.overlay.has_child(at) {
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
        *self.violations_by_invariant.entry(invariant).or_default() += 1;
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
