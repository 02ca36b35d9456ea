//! A member crashing, and the members linked to it learning that their link is gone.

use super::*;

impl Sim {
    pub(super) fn crash(&mut self, member: u32) {
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
    pub(super) fn namers(&self, member: u32) -> Vec<u32> {
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
    pub(super) fn notify_neighbours(&mut self, member: u32, delay: (Duration, Duration)) {
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
    pub(super) fn disconnect_after(&mut self, after: Duration, member: u32, peer: u32) {
        let at = self.now + after;
        self.push(at, Action::Disconnect { member, peer });
    }
}
