//! The node's costs on the tree's messages: one message in flight per peer pair, and a
//! registry lookup of the sender where the receiver needs its rights and lacks them.

use super::*;

impl Sim {
    /// When a tree message from `from` is handled at `to`, with the node's costs: it waits
    /// for the message in flight to the same peer to be acknowledged (the node sends one at a
    /// time per peer, `chroom-room` `node/mod.rs` `TreeQueue`), and for the receiver's registry
    /// lookup of the sender if the message needs the sender's rights and the receiver does not
    /// know them yet (`session/broadcast.rs` `handle_tree_request`). The acknowledgement,
    /// sent once the message is handled, frees the pair for the next one.
    pub(super) fn costed_delivery(
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
    pub(super) fn start_lookup(&mut self, from: u32, to: u32, at_us: u32, lookup: Duration) {
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
    pub(super) fn check_join(
        &mut self,
        from: u32,
        to: u32,
        message: &Message<u32>,
    ) -> Option<Duration> {
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
}
