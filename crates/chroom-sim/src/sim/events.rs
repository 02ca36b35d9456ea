//! What a member's overlay reports (recorded, and carried out: a new parent's media link,
//! set up in the time its NAT pair takes).

use super::*;

impl Sim {
    /// Records what `member`'s overlay reported, and carries out what it implies.
    pub(super) fn record(&mut self, member: u32, event: OverlayEvent<u32>) {
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
    pub(super) fn open_link(&mut self, member: u32, parent: u32, previous: Option<u32>) {
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
}
