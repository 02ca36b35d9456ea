//! Whether this node's own account may act in a room, as its user's page asks before joining:
//! answered from what the node holds of the registry, once the registry answers, or as
//! unavailable when the lookup times out.

use std::fmt::Debug;
use std::hash::Hash;

use super::*;

/// Most own-access checks waiting for the registry at once (one per open page, in practice).
const MAX_OWN_CHECKS: usize = 64;

/// An own-access check waiting for the registry.
#[derive(Debug)]
pub(super) struct OwnCheck {
    id: OwnCheckId,
    room: RoomName,
    account: Account,
    action: Action,
    deadline: Instant,
}

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// Asks whether this node's own account may `action` in `room`, as a joining user wants
    /// to know before anything else happens. Answered by [`NodeOutput::OwnAccess`]: at once
    /// from what this node holds of the registry (its cache serves during an outage), or once
    /// the registry answers, or with [`OwnRefusal::Unavailable`] after the lookup timeout.
    pub fn check_own_access(
        &mut self,
        now: Instant,
        id: OwnCheckId,
        room: RoomName,
        action: Action,
    ) {
        self.now = self.now.max(now);
        if self.session.access_policy() == AccessPolicy::Open {
            let access = OwnAccess {
                kind: None,
                role: None,
            };
            return self.answer_own(id, Ok(access));
        }
        let Some(account) = self.account else {
            return self.answer_own(id, Err(OwnRefusal::NoAccount));
        };
        if let Some(facts) = self.session.facts(room.id(), account) {
            let result = own_access(&room, account, facts, action);
            return self.answer_own(id, result);
        }
        if self.own_checks.len() >= MAX_OWN_CHECKS {
            return self.answer_own(id, Err(OwnRefusal::Unavailable));
        }
        self.session.look_up_own(now, room.id(), account);
        let deadline = now + self.session.access_lookup_timeout();
        self.own_checks.push(OwnCheck {
            id,
            room,
            account,
            action,
            deadline,
        });
    }

    /// The registry's `facts` about `account` in `room` answer the checks waiting for them.
    pub(super) fn answer_own_checks(&mut self, room: RoomId, account: Account, facts: AccessFacts) {
        for check in
            self.take_own_checks(|check| check.room.id() == room && check.account == account)
        {
            let result = own_access(&check.room, account, facts, check.action);
            self.answer_own(check.id, result);
        }
    }

    /// Checks whose lookup outlived its timeout are answered that the registry is unavailable.
    pub(super) fn expire_own_checks(&mut self, now: Instant) {
        for check in self.take_own_checks(|check| check.deadline <= now) {
            self.answer_own(check.id, Err(OwnRefusal::Unavailable));
        }
    }

    /// When the next waiting check times out, if any waits.
    pub(super) fn next_own_check_deadline(&self) -> Option<Instant> {
        self.own_checks.iter().map(|check| check.deadline).min()
    }

    /// The waiting checks that `pick` picks, no longer waiting.
    fn take_own_checks(&mut self, pick: impl Fn(&OwnCheck) -> bool) -> Vec<OwnCheck> {
        let (taken, waiting) = std::mem::take(&mut self.own_checks)
            .into_iter()
            .partition(pick);
        self.own_checks = waiting;
        taken
    }

    fn answer_own(&mut self, id: OwnCheckId, result: Result<OwnAccess, OwnRefusal>) {
        self.outputs.push_back(NodeOutput::OwnAccess { id, result });
    }
}
