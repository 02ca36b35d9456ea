//! What the session knows about who may do what: accounts proven by peers and registry facts
//! about accounts in rooms. Pure bookkeeping; the decisions are in `session.rs`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use chroom_types::{Account, Action, Membership, RoomId, RoomKind, RoomPolicy};

use crate::rate::{KeyedBuckets, Rate, TokenBucket};

/// Most (room, account) facts kept; the oldest are forgotten first and looked up again if
/// needed.
const MAX_FACTS: usize = 16 * 1024;

/// How long a lookup may go unanswered before the registry is asked again (the driver may have
/// dropped it, or the RPC failed); doubled per unanswered try.
const LOOKUP_RETRY: Duration = Duration::from_secs(2);

/// Longest wait before asking again about an account the registry never answers for.
const MAX_LOOKUP_RETRY: Duration = Duration::from_secs(60);

/// Most lookups under way at once (unanswered ones are retried, so during an outage they pile
/// up): beyond this, new accounts wait.
const MAX_LOOKUPS: usize = 4 * 1024;

/// Most peers whose lookup rate is tracked at once.
const MAX_RATED_PEERS: usize = 4 * 1024;

/// How often the registry may be asked about accounts it was not asked about before: the
/// cost a flood of fresh accounts can put on the chain RPC. Retries do not count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookupLimits {
    /// All peers together.
    pub total: Rate,
    /// One peer (it may present a new account with each binding).
    pub per_peer: Rate,
}

impl Default for LookupLimits {
    fn default() -> Self {
        Self {
            // A lookup costs three RPC calls: 60 calls/s at most, what an RPC provider's
            // free tier allows, while a room of 100 new members is looked up within 5 s.
            total: Rate {
                per_second: 20.0,
                burst: 100.0,
            },
            per_peer: Rate {
                per_second: 2.0,
                burst: 10.0,
            },
        }
    }
}

/// Who needs a lookup: what limits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asker<P> {
    /// A peer's request: its own limit and the total.
    Peer(P),
    /// A room message's author, whose node may be anyone: the total.
    Author,
    /// This node for its own user: never limited.
    OwnUser,
}

/// Whether a lookup was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupStart {
    /// Ask the registry now.
    Started,
    /// One is under way and not overdue: wait for it.
    UnderWay,
    /// Not now: the registry is asked about new accounts too often (by this peer, or by all).
    Throttled,
}

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
        /// How the room's roles are assigned among the members present.
        policy: RoomPolicy,
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
    limits: LookupLimits,
    /// New lookups, all peers together.
    new_lookups: TokenBucket,
    /// New lookups per asking peer.
    peer_lookups: KeyedBuckets<P>,
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
    pub(crate) fn new(policy: AccessPolicy, limits: LookupLimits) -> Self {
        Self {
            policy,
            accounts: HashMap::new(),
            facts: HashMap::new(),
            order: VecDeque::new(),
            lookups: HashMap::new(),
            limits,
            new_lookups: TokenBucket::new(),
            peer_lookups: KeyedBuckets::new(MAX_RATED_PEERS),
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

    /// Starts a lookup for `asker`, unless one is under way and not yet overdue. An overdue
    /// one (lost on the way, or the registry unreachable) is started again, each time after a
    /// longer wait. A lookup of a new pair is throttled by [`LookupLimits`] unless this node's
    /// own user needs it.
    pub(crate) fn start_lookup(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        asker: Asker<P>,
    ) -> LookupStart {
        if !self.lookups.contains_key(&(room, account)) && asker != Asker::OwnUser {
            let peer_allows = match asker {
                Asker::Peer(peer) => self.peer_lookups.has(now, peer, self.limits.per_peer),
                Asker::Author | Asker::OwnUser => true,
            };
            if self.lookups.len() >= MAX_LOOKUPS
                || !peer_allows
                || !self.new_lookups.take(now, self.limits.total)
            {
                return LookupStart::Throttled;
            }
            if let Asker::Peer(peer) = asker {
                self.peer_lookups.take(now, peer, self.limits.per_peer);
            }
        }
        let lookup = self.lookups.entry((room, account)).or_insert(Lookup {
            retry_at: now,
            tries: 0,
        });
        if now < lookup.retry_at {
            return LookupStart::UnderWay;
        }
        let wait = LOOKUP_RETRY
            .saturating_mul(2u32.saturating_pow(lookup.tries.min(16)))
            .min(MAX_LOOKUP_RETRY);
        lookup.tries += 1;
        lookup.retry_at = now + wait;
        LookupStart::Started
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

    /// Drops the facts of `account` in `room`.
    pub(crate) fn forget(&mut self, room: RoomId, account: Account) {
        self.facts.remove(&(room, account));
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
