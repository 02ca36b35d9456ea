//! What a run measured and what it broke: the invariants, the time series, the report and its
//! verdict against the acceptance criteria.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::sim::Scenario;

/// A tree invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// A member's next timeout was still due after it was handled: a real node's driver would
    /// spin. The simulator stops calling that member's timer (it would loop forever).
    StuckTimer,
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
    /// Join times, sorted: from the room join to the first media with costs, from the tree
    /// join to the acceptance without.
    pub join_times: Vec<Duration>,
    /// For each child of a crashed relayer, sorted: from the crash to media flowing again with
    /// costs, to re-attached without.
    pub repair_times: Vec<Duration>,
    /// With costs: every stop of a member's media (crashes, repairs, moves, a whole subtree
    /// going dark with its relayer) until it flows again, sorted.
    pub outages: Vec<Duration>,
    /// With costs: registry lookups made, by all members.
    pub lookups: u64,
    /// With costs: the most registry lookups the root made within one second.
    pub root_lookups_peak: u32,
    /// With costs: tree links set up, and how many of them went through a relayer.
    pub links: (u64, u64),
    /// With costs: tree messages that waited for the one in flight to the same peer.
    pub queued_messages: u64,
    /// With costs: live parents dropped by a child because its media stayed silent past its
    /// grace (a relayer above was repairing).
    pub silent_parent_drops: u64,
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
    /// How many invariant checks failed, by invariant.
    pub violations_by_invariant: BTreeMap<Invariant, u64>,
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
        let mut failures = self.tree_failures();
        failures.extend(self.left_out());
        failures.extend(self.time_failures());
        failures
    }

    /// What breaks the tree's shape, whatever the timing: invariant violations (fan-out,
    /// cycles, level order, stale parents, dropped messages), depth beyond ⌈log_f N⌉ + 2.
    pub fn tree_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let broken: u64 = self
            .violations_by_invariant
            .iter()
            .filter(|(invariant, _)| **invariant != Invariant::OrphanedTooLong)
            .map(|(_, n)| n)
            .sum();
        if broken > 0 {
            failures.push(format!(
                "{broken} invariant violations ({:?})",
                self.violations_by_invariant
            ));
        }
        let bound = self.scenario.depth_bound();
        if self.max_depth > bound {
            failures.push(format!("max depth {} > bound {bound}", self.max_depth));
        }
        failures
    }

    /// Members left out at the end: never joined, or orphaned and never repaired.
    pub fn left_out(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.unrepaired > 0 {
            failures.push(format!("{} orphans never repaired", self.unrepaired));
        }
        if self.never_joined > 0 {
            failures.push(format!("{} members never joined", self.never_joined));
        }
        failures
    }

    /// What misses the time targets: join and repair p99, members left without a parent for
    /// more than 10 s.
    pub fn time_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let orphaned = self
            .violations_by_invariant
            .get(&Invariant::OrphanedTooLong)
            .copied()
            .unwrap_or(0);
        if orphaned > 0 {
            failures.push(format!("{orphaned} members without a parent for over 10 s"));
        }
        let p99 = |v: &[Duration]| Self::percentile(v, 99.0).unwrap_or_default();
        let (join, repair) = (self.scenario.join_target, self.scenario.repair_target);
        if p99(&self.join_times) >= join {
            failures.push(format!("join p99 {:?} >= {join:?}", p99(&self.join_times)));
        }
        if p99(&self.repair_times) >= repair {
            failures.push(format!(
                "repair p99 {:?} >= {repair:?}",
                p99(&self.repair_times)
            ));
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
        if s.costs.is_some() {
            let _ = writeln!(out, "outages:  {}", dist(&self.outages));
            let (links, relayed) = self.links;
            let _ = writeln!(
                out,
                "links {links} ({relayed} relayed) | registry lookups {} (root peak {}/s) | {} tree messages queued behind one in flight | {} live parents dropped for silence",
                self.lookups,
                self.root_lookups_peak,
                self.queued_messages,
                self.silent_parent_drops
            );
        }
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
        let _ = writeln!(
            out,
            "invariant violations: {} {:?}",
            self.violation_count, self.violations_by_invariant
        );
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
