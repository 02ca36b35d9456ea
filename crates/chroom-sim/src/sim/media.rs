//! Whether media reaches each member: who feeds it now, the repairs and outages that follow
//! from a change, and the node's reaction to a silent parent.

use super::*;

impl Sim {
    /// Looks again at whether media reaches the members in `to_refresh`, and below them when
    /// that changed: records first media, repairs and outages, and starts the node's silence
    /// timer where media stopped.
    pub(super) fn refresh(&mut self) {
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
    pub(super) fn feeder(&self, id: u32) -> Option<u32> {
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
    pub(super) fn silence_check(&mut self, member: u32, since: Duration) {
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
}
