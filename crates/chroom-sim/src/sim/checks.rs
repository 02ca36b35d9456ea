//! The invariants, checked after every step and on every sample, and the time series and
//! report they add up to.

use super::*;

impl Sim {
    /// The invariants one step can break: the member's fan-out, and the level order on the
    /// edges whose ends changed (the member's parent edge, and its child edges if its level
    /// changed). Checked after every step; together they rule out cycles (docs/tree.md).
    pub(super) fn check_member(
        &mut self,
        member: u32,
        level_before: u32,
        parent_before: Option<u32>,
    ) {
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
    pub(super) fn sample(&mut self) {
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

    pub(super) fn report(self) -> SimReport {
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

    pub(super) fn fed_depth(&self, member: u32) -> Option<u32> {
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

    pub(super) fn violation(&mut self, invariant: Invariant, member: u32, detail: String) {
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
}
