//! The registry follower: a sans-IO state machine that keeps registry facts fresh.
//!
//! It decides what to ask the chain and when: poll the head, fetch the changes since its cursor,
//! re-read the facts of every watched (room, account) those changes touch, and commit the facts
//! with the new cursor in one step, so a restart resumes exactly where it stopped and no event
//! is missed. RPC failures back off exponentially; after `stale_after` without a successful
//! poll it reports itself stale (the node keeps serving its cache, and says so) and fresh again
//! once the chain answers. The driver does the RPC calls and decodes logs into [`Change`]s.
//! It watches at most [`FollowerConfig::max_watched`] pairs: the least recently looked up is
//! forgotten first ([`FollowerOutput::Forget`]), and looked up again when next needed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chroom_types::{Account, RoomId};

/// Tuning of the follower.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Head polling period while healthy. Default 500 ms.
    pub poll_interval: Duration,
    /// First retry delay after an RPC failure; doubles per failure. Default 250 ms.
    pub retry_backoff: Duration,
    /// Longest retry delay. Default 10 s.
    pub max_retry_backoff: Duration,
    /// Without a successful poll for this long, the cache is reported stale. Default 3 s.
    pub stale_after: Duration,
    /// Blocks behind the head treated as final (0 on a dev chain). Default 0.
    pub confirmations: u64,
    /// Most blocks fetched in one log query. Default 2 000.
    pub max_block_range: u64,
    /// Most (room, account) pairs followed; beyond this the least recently looked up is
    /// forgotten. Default 16 384.
    pub max_watched: usize,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            retry_backoff: Duration::from_millis(250),
            max_retry_backoff: Duration::from_secs(10),
            stale_after: Duration::from_secs(3),
            confirmations: 0,
            max_block_range: 2_000,
            max_watched: 16 * 1024,
        }
    }
}

/// What a range of chain logs changed, as decoded by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// One account's standing in one room (role granted or revoked, ban, token transfer).
    Account(RoomId, Account),
    /// Something room-wide (kind, join policy, owner): every watched account of it.
    Room(RoomId),
    /// An account joined or left the relayer directory: every watched room of it.
    Relayer(Account),
}

/// A command for the driver, or a result for the node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FollowerOutput<F> {
    /// Ask the chain for its head block; answer with [`Follower::handle_head`].
    FetchHead,
    /// Fetch and decode the registry's logs in `from..=to`; answer with
    /// [`Follower::handle_changes`].
    FetchChanges {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
    },
    /// Read the facts of `account` in `room` as of `block`; answer with
    /// [`Follower::handle_facts`].
    ReadFacts {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
        /// The block to read at.
        block: u64,
    },
    /// Persist these facts and the cursor together, then hand the facts to the room core.
    Commit {
        /// Facts read for the range.
        facts: Vec<(RoomId, Account, F, u64)>,
        /// The new cursor: every change up to here is in `facts` or was already known.
        cursor: u64,
    },
    /// Facts for a lookup (not tied to a cursor advance): hand to the room core, cache them.
    Facts {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
        /// The facts.
        facts: F,
        /// The block they were read at.
        block: u64,
    },
    /// The cache stopped or started matching the chain.
    Freshness(Freshness),
    /// No longer followed (too many pairs are): drop the cached facts of `account` in `room`,
    /// which would go out of date; the next need looks them up again.
    Forget {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
    },
}

/// Whether the follower is in step with the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Polls succeed.
    Fresh,
    /// No successful poll since `since`: facts may be outdated.
    Stale {
        /// Last successful poll (or start).
        since: Instant,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Waiting until `at` to poll the head.
    Idle {
        at: Instant,
    },
    FetchingHead,
    FetchingChanges {
        to: u64,
    },
    /// Re-reading facts touched by a range; commit when `remaining` is empty.
    Reading {
        to: u64,
        remaining: BTreeSet<(RoomId, Account)>,
    },
}

/// The follower. `F` is the facts type (`chroom_room::AccessFacts` in the node).
#[derive(Debug)]
pub struct Follower<F> {
    config: FollowerConfig,
    cursor: Option<u64>,
    /// Followed pairs, with when each was last looked up (a use counter).
    watched: HashMap<(RoomId, Account), u64>,
    /// The same pairs by last use, oldest first.
    by_use: BTreeMap<u64, (RoomId, Account)>,
    uses: u64,
    step: Step,
    read: Vec<(RoomId, Account, F, u64)>,
    /// Lookups not yet sent, and lookups in flight.
    lookups: VecDeque<(RoomId, Account)>,
    lookups_in_flight: HashSet<(RoomId, Account)>,
    head: Option<u64>,
    failures: u32,
    last_success: Instant,
    freshness: Freshness,
    outputs: VecDeque<FollowerOutput<F>>,
}

impl<F: Clone> Follower<F> {
    /// A follower resuming after `cursor` (the last applied block, from the store) and watching
    /// the pairs already cached.
    pub fn new(
        config: FollowerConfig,
        now: Instant,
        cursor: Option<u64>,
        watched: impl IntoIterator<Item = (RoomId, Account)>,
    ) -> Self {
        let mut follower = Self {
            config,
            cursor,
            watched: HashMap::new(),
            by_use: BTreeMap::new(),
            uses: 0,
            step: Step::Idle { at: now },
            read: Vec::new(),
            lookups: VecDeque::new(),
            lookups_in_flight: HashSet::new(),
            head: None,
            failures: 0,
            last_success: now,
            freshness: Freshness::Fresh,
            outputs: VecDeque::new(),
        };
        for pair in watched {
            follower.watch(pair);
        }
        follower
    }

    /// The node needs the facts of `account` in `room` (a request arrived). From now on the pair
    /// is watched: changes to it are followed.
    pub fn lookup(&mut self, now: Instant, room: RoomId, account: Account) {
        self.watch((room, account));
        if !self.lookups_in_flight.contains(&(room, account))
            && !self.lookups.contains(&(room, account))
        {
            self.lookups.push_back((room, account));
        }
        self.handle_timeout(now);
    }

    /// The chain's head block.
    pub fn handle_head(&mut self, now: Instant, head: u64) {
        if self.step != Step::FetchingHead {
            return;
        }
        self.succeeded(now);
        self.head = Some(head);
        self.send_lookups();
        let final_block = head.saturating_sub(self.config.confirmations);
        let Some(cursor) = self.cursor else {
            // First start: nothing to catch up on; lookups read at the head from now on.
            self.outputs.push_back(FollowerOutput::Commit {
                facts: Vec::new(),
                cursor: final_block,
            });
            self.cursor = Some(final_block);
            self.idle(now, self.config.poll_interval);
            return;
        };
        if final_block <= cursor {
            self.idle(now, self.config.poll_interval);
            return;
        }
        let to = final_block.min(cursor + self.config.max_block_range);
        self.step = Step::FetchingChanges { to };
        self.outputs.push_back(FollowerOutput::FetchChanges {
            from: cursor + 1,
            to,
        });
    }

    /// The decoded changes of the range last asked for.
    pub fn handle_changes(&mut self, now: Instant, changes: &[Change]) {
        let Step::FetchingChanges { to } = self.step else {
            return;
        };
        self.succeeded(now);
        let mut remaining = BTreeSet::new();
        for change in changes {
            match *change {
                Change::Account(room, account) if self.watched.contains_key(&(room, account)) => {
                    remaining.insert((room, account));
                }
                Change::Account(..) => {}
                Change::Room(room) => {
                    remaining.extend(self.watched.keys().filter(|(r, _)| *r == room).copied());
                }
                Change::Relayer(account) => {
                    remaining.extend(self.watched.keys().filter(|(_, a)| *a == account).copied());
                }
            }
        }
        for (room, account) in &remaining {
            self.outputs.push_back(FollowerOutput::ReadFacts {
                room: *room,
                account: *account,
                block: to,
            });
        }
        self.step = Step::Reading { to, remaining };
        self.commit_if_read(now);
    }

    /// Facts read at `block` (for a range re-read or a lookup).
    pub fn handle_facts(
        &mut self,
        now: Instant,
        room: RoomId,
        account: Account,
        block: u64,
        facts: F,
    ) {
        self.succeeded(now);
        if self.lookups_in_flight.remove(&(room, account)) {
            self.outputs.push_back(FollowerOutput::Facts {
                room,
                account,
                facts: facts.clone(),
                block,
            });
        }
        if let Step::Reading { to, remaining } = &mut self.step
            && *to == block
            && remaining.remove(&(room, account))
        {
            self.read.push((room, account, facts, block));
            self.commit_if_read(now);
        }
    }

    /// An RPC call failed. Whatever was under way is retried after a backoff; lookups in
    /// flight are asked again.
    pub fn handle_rpc_error(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let factor = 2u32.saturating_pow(self.failures.saturating_sub(1).min(16));
        let delay = self
            .config
            .retry_backoff
            .saturating_mul(factor)
            .min(self.config.max_retry_backoff);
        self.read.clear();
        for pair in self.lookups_in_flight.drain() {
            if !self.lookups.contains(&pair) {
                self.lookups.push_back(pair);
            }
        }
        self.idle(now, delay);
        self.check_staleness(now);
    }

    /// Time passed. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_staleness(now);
        if let Step::Idle { at } = self.step
            && at <= now
        {
            self.step = Step::FetchingHead;
            self.outputs.push_back(FollowerOutput::FetchHead);
        }
        self.send_lookups();
    }

    /// Next output.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<FollowerOutput<F>> {
        self.outputs.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stale_check = match self.freshness {
            Freshness::Fresh => Some(self.last_success + self.config.stale_after),
            Freshness::Stale { .. } => None,
        };
        let poll = match self.step {
            Step::Idle { at } => Some(at),
            _ => None,
        };
        poll.into_iter().chain(stale_check).min()
    }

    /// The last applied block.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// Pairs followed now.
    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Follows `pair` (again), as the most recently used; forgets the least recently used
    /// beyond the limit.
    fn watch(&mut self, pair: (RoomId, Account)) {
        self.uses += 1;
        if let Some(old) = self.watched.insert(pair, self.uses) {
            self.by_use.remove(&old);
        }
        self.by_use.insert(self.uses, pair);
        while self.watched.len() > self.config.max_watched {
            let Some((_, (room, account))) = self.by_use.pop_first() else {
                break;
            };
            self.watched.remove(&(room, account));
            self.outputs
                .push_back(FollowerOutput::Forget { room, account });
        }
    }

    /// Whether the follower is in step with the chain.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    fn commit_if_read(&mut self, now: Instant) {
        let Step::Reading { to, remaining } = &self.step else {
            return;
        };
        if !remaining.is_empty() {
            return;
        }
        let to = *to;
        self.outputs.push_back(FollowerOutput::Commit {
            facts: std::mem::take(&mut self.read),
            cursor: to,
        });
        self.cursor = Some(to);
        // More to catch up on: poll again at once rather than after the interval.
        let behind = self
            .head
            .is_some_and(|h| h.saturating_sub(self.config.confirmations) > to);
        let delay = if behind {
            Duration::ZERO
        } else {
            self.config.poll_interval
        };
        self.idle(now, delay);
        self.handle_timeout(now);
    }

    /// Lookups read at the last known head, alongside whatever else is under way. Without a
    /// head yet they wait for the first poll.
    fn send_lookups(&mut self) {
        let Some(head) = self.head else {
            return;
        };
        while let Some((room, account)) = self.lookups.pop_front() {
            self.lookups_in_flight.insert((room, account));
            self.outputs.push_back(FollowerOutput::ReadFacts {
                room,
                account,
                block: head,
            });
        }
    }

    fn idle(&mut self, now: Instant, delay: Duration) {
        self.step = Step::Idle { at: now + delay };
    }

    fn succeeded(&mut self, now: Instant) {
        self.failures = 0;
        self.last_success = now;
        if self.freshness != Freshness::Fresh {
            self.freshness = Freshness::Fresh;
            self.outputs
                .push_back(FollowerOutput::Freshness(Freshness::Fresh));
        }
    }

    fn check_staleness(&mut self, now: Instant) {
        if self.freshness == Freshness::Fresh
            && now.saturating_duration_since(self.last_success) >= self.config.stale_after
        {
            self.freshness = Freshness::Stale {
                since: self.last_success,
            };
            self.outputs
                .push_back(FollowerOutput::Freshness(self.freshness));
        }
    }
}

#[cfg(test)]
mod tests;
