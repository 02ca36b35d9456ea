//! What the session knows about who may do what: accounts proven by peers and registry facts
//! about accounts in rooms. Pure bookkeeping; the decisions are in `session.rs`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_types::{Account, Action, Membership, RoomId, RoomKind};

/// Most (room, account) facts kept; the oldest are forgotten first and looked up again if
/// needed.
const MAX_FACTS: usize = 16 * 1024;

/// How long a lookup may go unanswered before the registry is asked again (the driver may have
/// dropped it, or the RPC failed); doubled per unanswered try.
const LOOKUP_RETRY: Duration = Duration::from_secs(2);

/// Longest wait before asking again about an account the registry never answers for.
const MAX_LOOKUP_RETRY: Duration = Duration::from_secs(60);

/// Whether rights are checked against the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessPolicy {
    /// No registry: every peer may do everything. For local development only.
    #[default]
    Open,
    /// Every request is checked against the peer's proven account and the registry.
    Enforce,
}

/// What the registry says about an account in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessFacts {
    /// The room exists; the account has this membership in it.
    Known {
        /// The room's kind.
        kind: RoomKind,
        /// The account's standing.
        membership: Membership,
        /// The account is in the relayer directory: it may carry the room's broadcast.
        relayer: bool,
    },
    /// The registry has no such room.
    UnknownRoom,
}

impl AccessFacts {
    /// Whether the account may feed others in the room's relay tree: a registered relayer,
    /// unless banned from the room.
    pub fn allows_relaying(self) -> bool {
        match self {
            Self::Known {
                membership,
                relayer,
                ..
            } => relayer && membership != Membership::Banned,
            Self::UnknownRoom => false,
        }
    }

    /// Whether these facts permit `action`.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Self::Known {
                kind, membership, ..
            } => membership.allows(kind, action),
            Self::UnknownRoom => false,
        }
    }
}

/// Outcome of checking a peer's right to an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    /// The peer proved no account.
    NoAccount,
    /// The account's facts are not known yet: look them up.
    Unknown(Account),
    Denied(Account, AccessFacts),
}

#[derive(Debug)]
pub(crate) struct AccessBook<P> {
    policy: AccessPolicy,
    accounts: HashMap<P, Account>,
    facts: HashMap<(RoomId, Account), AccessFacts>,
    /// Insertion order of `facts`, for forgetting the oldest.
    order: VecDeque<(RoomId, Account)>,
    lookups: HashMap<(RoomId, Account), Lookup>,
    /// The registry has been unreachable for longer than cached facts are trusted: every
    /// fact is unknown until it answers again (kept, to be served again then).
    expired: bool,
}

/// A lookup under way: when to ask again if no answer came, and how often it was asked.
#[derive(Debug, Clone, Copy)]
struct Lookup {
    retry_at: Instant,
    tries: u32,
}

impl<P: Copy + Eq + Hash> AccessBook<P> {
    pub(crate) fn new(policy: AccessPolicy) -> Self {
        Self {
            policy,
            accounts: HashMap::new(),
            facts: HashMap::new(),
            order: VecDeque::new(),
            lookups: HashMap::new(),
            expired: false,
        }
    }

    pub(crate) fn set_account(&mut self, peer: P, account: Option<Account>) {
        match account {
            Some(account) => self.accounts.insert(peer, account),
            None => self.accounts.remove(&peer),
        };
    }

    pub(crate) fn account(&self, peer: P) -> Option<Account> {
        self.accounts.get(&peer).copied()
    }

    /// Checks the account `peer` proved.
    pub(crate) fn check(&self, peer: P, room: RoomId, action: Action) -> Verdict {
        self.check_account(self.account(peer), room, action)
    }

    /// Checks an account proven some other way (the author binding of a gossip message).
    pub(crate) fn check_account(
        &self,
        account: Option<Account>,
        room: RoomId,
        action: Action,
    ) -> Verdict {
        if self.policy == AccessPolicy::Open {
            return Verdict::Allowed;
        }
        let Some(account) = account else {
            return Verdict::NoAccount;
        };
        match self.facts(room, account) {
            None => Verdict::Unknown(account),
            Some(facts) if facts.allows(action) => Verdict::Allowed,
            Some(facts) => Verdict::Denied(account, facts),
        }
    }

    /// The facts known for `account` in `room`, if any.
    pub(crate) fn facts(&self, room: RoomId, account: Account) -> Option<AccessFacts> {
        if self.expired {
            return None;
        }
        self.facts.get(&(room, account)).copied()
    }

    /// Sets cached facts aside (`true`: the registry has been unreachable too long) or trusts
    /// them again.
    pub(crate) fn set_expired(&mut self, expired: bool) {
        self.expired = expired;
    }

    /// Whether cached facts are set aside.
    pub(crate) fn is_expired(&self) -> bool {
        self.expired
    }

    /// The facts known for `peer`'s account in `room`, if any.
    pub(crate) fn facts_of(&self, peer: P, room: RoomId) -> Option<AccessFacts> {
        self.facts(room, self.account(peer)?)
    }

    /// Whether every peer is let in without checks.
    pub(crate) fn is_open(&self) -> bool {
        self.policy == AccessPolicy::Open
    }

    /// Marks a lookup as started; false if one is under way and not yet overdue. An overdue
    /// one (lost on the way, or the registry unreachable) is started again, each time after a
    /// longer wait.
    pub(crate) fn start_lookup(&mut self, now: Instant, room: RoomId, account: Account) -> bool {
        let lookup = self.lookups.entry((room, account)).or_insert(Lookup {
            retry_at: now,
            tries: 0,
        });
        if now < lookup.retry_at {
            return false;
        }
        let wait = LOOKUP_RETRY
            .saturating_mul(2u32.saturating_pow(lookup.tries.min(16)))
            .min(MAX_LOOKUP_RETRY);
        lookup.tries += 1;
        lookup.retry_at = now + wait;
        true
    }

    pub(crate) fn set_facts(&mut self, room: RoomId, account: Account, facts: AccessFacts) {
        self.lookups.remove(&(room, account));
        if self.facts.insert((room, account), facts).is_none() {
            self.order.push_back((room, account));
            if self.order.len() > MAX_FACTS
                && let Some(oldest) = self.order.pop_front()
            {
                self.facts.remove(&oldest);
            }
        }
    }

    /// Peers currently proven to act for `account`.
    pub(crate) fn peers_of(&self, account: Account) -> Vec<P> {
        self.accounts
            .iter()
            .filter(|(_, a)| **a == account)
            .map(|(p, _)| *p)
            .collect()
    }
}
