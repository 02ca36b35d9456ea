//! The orchestrator: who hosts a room, who presents, who is on its stage and in what order
//! hands are up, decided by every node alike from the same facts, with no election.
//!
//! Sans-IO and per room ([`Orchestration`]). Its facts are:
//! - the room's [`RoomPolicy`] (from the registry);
//! - the members present (from presence beats), each with its on-chain role (a ceiling, from
//!   the registry), whether it is banned, the join time it declares and whether a person is
//!   behind it ([`MemberFacts`]);
//! - what members asked and hosts decided ([`Cue`]s), each stamped by its author with the time
//!   it was sent, as room messages are.
//!
//! Every answer ([`Orchestration::assignments`]) is a function of the set of facts, not of the
//! order they arrived in: every per-member state is a last-writer-wins register ordered by
//! (time, author, kind), and rankings order by role, then join time, then node id. Nodes that
//! heard the same facts agree; nodes that heard different ones agree once gossip has carried
//! them. The one local input is when this node first saw a member: a member counts for hosting
//! only once present for [`HOST_GRACE`] (unless nobody else can host), so a host that blips
//! does not make the room flap, and a returning on-chain host takes its place back after it.
//!
//! A ban always wins: a banned member is assigned nothing and its cues count for nothing. An
//! acting host (one the policy made host because no on-chain host is present) hosts with a
//! host's powers over members below host, never over an on-chain host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chroom_types::{Account, Role};
pub use chroom_types::{Cue, HostFallback, Presenting, RoomPolicy};

/// How long a member must have been present before it counts for hosting, when someone who
/// has been present longer can host.
pub const HOST_GRACE: Duration = Duration::from_secs(2);

/// What every node knows about a member present in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberFacts {
    /// The account its beats proved, if any.
    pub account: Option<Account>,
    /// Its role in the registry, if it has one (a ceiling: the orchestrator never grants more
    /// than the policy adds to it).
    pub role: Option<Role>,
    /// The registry bans it.
    pub banned: bool,
    /// When it joined the room, by its own word (unix milliseconds).
    pub joined_at_ms: u64,
    /// A person is behind it (a page), not a headless publisher: it can host and present.
    pub person: bool,
}

/// Why a cue was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CueRefused {
    /// Only a host may do this.
    #[error("only a host may do that")]
    NotHost,
    /// The author is banned.
    #[error("the author is banned")]
    Banned,
    /// The room's policy does not allow it (the stage is not open).
    #[error("the room's policy does not allow it")]
    Policy,
}

/// Who holds what in a room, as every node computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignments<P> {
    /// Who hosts, first the lead: the on-chain hosts present, or else the acting host.
    pub hosts: Vec<P>,
    /// The hosts hold an on-chain host role (false: one acting host made by the policy).
    pub hosts_on_chain: bool,
    /// Who presents.
    pub presenter: Option<P>,
    /// Who asked to present and waits, first asked first.
    pub waiting_to_present: Vec<P>,
    /// Raised hands, first raised first.
    pub hands: Vec<P>,
    /// Members a host invited onto the stage (or who stepped on an open stage), on top of
    /// those whose role lets them speak anyway.
    pub stage: Vec<P>,
}

impl<P> Default for Assignments<P> {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            hosts_on_chain: false,
            presenter: None,
            waiting_to_present: Vec::new(),
            hands: Vec::new(),
            stage: Vec::new(),
        }
    }
}

/// What a write is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Topic {
    /// The subject asks to present (only the subject writes it).
    Asks,
    /// A host hands the presentation to the subject (only hosts write it).
    Passed,
    /// The subject's hand.
    Hand,
    /// The subject is on the stage.
    Stage,
}

/// The latest write of one author about one subject and topic: when, and on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Write {
    at_ms: u64,
    on: bool,
}

/// The order of two writes: later time, then the author's id, then an "off" over an "on"
/// at the same instant (a total order, so the winner does not depend on arrival).
fn write_order<P: Copy + Ord>(author: P, write: Write) -> (u64, P, bool) {
    (write.at_ms, author, !write.on)
}

/// Most writes kept per author (a member's own few, a host's about many members); beyond,
/// the author's oldest goes.
const MAX_WRITES_PER_AUTHOR: usize = 256;

/// Most writes kept in a room.
const MAX_WRITES: usize = 16 * 1024;

/// What the orchestrator knows and decides for one room (see the module docs).
#[derive(Debug, Clone)]
pub struct Orchestration<P> {
    policy: RoomPolicy,
    members: BTreeMap<P, Member>,
    /// Every author's latest write per (topic, subject); whether a write counts (its author
    /// may make it) is judged when the assignments are computed, so it does not depend on
    /// whether the author's presence arrived first.
    writes: BTreeMap<(Topic, P), BTreeMap<P, Write>>,
}

/// A member present in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    facts: MemberFacts,
    /// When this node first saw this visit.
    present_since: Instant,
}

impl<P> Default for Orchestration<P> {
    fn default() -> Self {
        Self {
            policy: RoomPolicy::default(),
            members: BTreeMap::new(),
            writes: BTreeMap::new(),
        }
    }
}

impl<P: Copy + Ord> Orchestration<P> {
    /// A room under `policy`.
    pub fn new(policy: RoomPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// The room's policy.
    pub fn policy(&self) -> RoomPolicy {
        self.policy
    }

    /// The registry changed the room's policy.
    pub fn set_policy(&mut self, policy: RoomPolicy) {
        self.policy = policy;
    }

    /// `peer` is present with `facts` (a beat, or a registry answer about its account).
    /// Returns whether that is news (a new visit, or facts that changed): a beat that repeats
    /// what is known changes no assignment.
    pub fn member_present(&mut self, now: Instant, peer: P, facts: MemberFacts) -> bool {
        match self.members.get_mut(&peer) {
            // The same visit: its facts may have grown (its role is known now).
            Some(member) if member.facts.joined_at_ms == facts.joined_at_ms => {
                let news = member.facts != facts;
                member.facts = facts;
                news
            }
            // A new visit: the grace period starts again, and what it asked before is void
            // (older than its join).
            _ => {
                self.members.insert(
                    peer,
                    Member {
                        facts,
                        present_since: now,
                    },
                );
                true
            }
        }
    }

    /// `peer` left (its goodbye, its silence, or its removal): its asks and grants go.
    /// Returns whether it was present (the writes of an author never present counted for
    /// nothing).
    pub fn member_left(&mut self, peer: P) -> bool {
        self.writes.retain(|(_, subject), by_author| {
            by_author.remove(&peer);
            *subject != peer && !by_author.is_empty()
        });
        self.members.remove(&peer).is_some()
    }

    /// Whether `cue` from `author` would count now: what a node checks before it sends one for
    /// its user, and before it delivers or forwards one from a peer (a forged grant is
    /// refused there, and logged).
    pub fn judge(&self, now: Instant, author: P, cue: Cue<P>) -> Result<(), CueRefused> {
        if self.members.get(&author).is_some_and(|m| m.facts.banned) {
            return Err(CueRefused::Banned);
        }
        let (hosts, _) = self.hosts(now);
        let is_host = hosts.contains(&author);
        match cue {
            Cue::PassPresentation { .. } if !is_host => Err(CueRefused::NotHost),
            Cue::LowerHand { of: subject }
            | Cue::InviteToStage { who: subject }
            | Cue::RemoveFromStage { who: subject }
                if subject != author && !is_host =>
            {
                Err(CueRefused::NotHost)
            }
            Cue::InviteToStage { .. } if !is_host && !self.policy.open_stage => {
                Err(CueRefused::Policy)
            }
            _ => Ok(()),
        }
    }

    /// Takes `cue` from `author`, sent at `at_ms`. Whether it counts is judged when the
    /// assignments are computed (a host-only cue counts while its author hosts), so the
    /// answer does not depend on whether the author's presence arrived first. Refused here is
    /// only a banned author's.
    pub fn handle_cue(&mut self, author: P, at_ms: u64, cue: Cue<P>) -> Result<(), CueRefused> {
        if self.members.get(&author).is_some_and(|m| m.facts.banned) {
            return Err(CueRefused::Banned);
        }
        let (topic, subject, on) = match cue {
            Cue::Present => (Topic::Asks, author, true),
            Cue::StopPresenting => (Topic::Asks, author, false),
            Cue::PassPresentation { to } => (Topic::Passed, to, true),
            Cue::RaiseHand => (Topic::Hand, author, true),
            Cue::LowerHand { of } => (Topic::Hand, of, false),
            Cue::InviteToStage { who } => {
                // An invitation answers a raised hand.
                self.write(Topic::Hand, who, author, at_ms, false);
                (Topic::Stage, who, true)
            }
            Cue::RemoveFromStage { who } => (Topic::Stage, who, false),
        };
        self.write(topic, subject, author, at_ms, on);
        Ok(())
    }

    fn write(&mut self, topic: Topic, subject: P, author: P, at_ms: u64, on: bool) {
        let write = Write { at_ms, on };
        let current = self
            .writes
            .get(&(topic, subject))
            .and_then(|by_author| by_author.get(&author));
        match current {
            Some(current) if write_order(author, *current) >= write_order(author, write) => return,
            Some(_) => {}
            None => self.make_room_for(author),
        }
        self.writes
            .entry((topic, subject))
            .or_default()
            .insert(author, write);
    }

    /// Bounds the writes kept before a new one: the author's oldest goes beyond
    /// [`MAX_WRITES_PER_AUTHOR`], the room's oldest beyond [`MAX_WRITES`]. Only a flood
    /// reaches either, and then what it loses is its own or the stalest.
    fn make_room_for(&mut self, author: P) {
        let all = || {
            self.writes.iter().flat_map(|(key, by_author)| {
                by_author.iter().map(move |(a, w)| (w.at_ms, *key, *a))
            })
        };
        let authors = all().filter(|(_, _, a)| *a == author);
        let oldest = if authors.clone().count() >= MAX_WRITES_PER_AUTHOR {
            authors.min()
        } else if all().count() >= MAX_WRITES {
            all().min()
        } else {
            None
        };
        if let Some((_, key, a)) = oldest
            && let Some(by_author) = self.writes.get_mut(&key)
        {
            by_author.remove(&a);
            if by_author.is_empty() {
                self.writes.remove(&key);
            }
        }
    }

    /// The members present and not banned, with their facts and whether they are past the
    /// grace period.
    fn standing(&self, now: Instant) -> impl Iterator<Item = (P, MemberFacts, bool)> + '_ {
        self.members.iter().filter_map(move |(peer, member)| {
            let settled = now.saturating_duration_since(member.present_since) >= HOST_GRACE;
            (!member.facts.banned).then_some((*peer, member.facts, settled))
        })
    }

    /// Who hosts, and whether on-chain. Members past the grace period first: only when none of
    /// them can host do newer ones count.
    fn hosts(&self, now: Instant) -> (Vec<P>, bool) {
        let candidates = |settled_only: bool| {
            let mut hosts: Vec<(P, MemberFacts)> = self
                .members
                .iter()
                .filter(|(_, m)| m.facts.person && !m.facts.banned)
                .filter(|(_, m)| {
                    !settled_only || now.saturating_duration_since(m.present_since) >= HOST_GRACE
                })
                .map(|(p, m)| (*p, m.facts))
                .collect();
            // Highest role first, then the first to join, then the lowest id.
            hosts.sort_by_key(|(peer, facts)| {
                (std::cmp::Reverse(facts.role), facts.joined_at_ms, *peer)
            });
            hosts
        };
        let mut ranked = candidates(true);
        if ranked.is_empty() {
            ranked = candidates(false);
        }
        let on_chain: Vec<P> = ranked
            .iter()
            .filter(|(_, f)| f.role >= Some(Role::Host))
            .map(|(p, _)| *p)
            .collect();
        if !on_chain.is_empty() {
            return (on_chain, true);
        }
        let acting = match self.policy.host_fallback {
            HostFallback::None => None,
            HostFallback::HighestRole => ranked.first().map(|(p, _)| *p),
            HostFallback::FirstJoiner => ranked
                .iter()
                .min_by_key(|(peer, facts)| (facts.joined_at_ms, *peer))
                .map(|(p, _)| *p),
        };
        (acting.into_iter().collect(), false)
    }

    /// Whether `by` may act as a host on `target` now: it hosts, and an acting host never acts
    /// on an on-chain host or above.
    pub fn may_moderate(&self, now: Instant, by: P, target: P) -> bool {
        let (hosts, on_chain) = self.hosts(now);
        if !hosts.contains(&by) {
            return false;
        }
        on_chain
            || self
                .members
                .get(&target)
                .is_none_or(|m| m.facts.role.is_none_or(|role| role < Role::Host))
    }

    /// Whether `peer` acts as host by the policy (not by its on-chain role).
    pub fn is_acting_host(&self, now: Instant, peer: P) -> bool {
        let (hosts, on_chain) = self.hosts(now);
        !on_chain && hosts.contains(&peer)
    }

    /// The winning write about `subject` on `topic` among those that count: made during the
    /// subject's visit, by an author `may_write` allows.
    fn latest(
        &self,
        topic: Topic,
        subject: P,
        may_write: impl Fn(P) -> bool,
    ) -> Option<(P, Write)> {
        let joined = self.members.get(&subject)?.facts.joined_at_ms;
        self.writes
            .get(&(topic, subject))?
            .iter()
            .filter(|(author, w)| w.at_ms >= joined && may_write(**author))
            .map(|(author, w)| (*author, *w))
            .max_by_key(|(author, w)| write_order(*author, *w))
    }

    /// Who holds what now.
    pub fn assignments(&self, now: Instant) -> Assignments<P> {
        let (hosts, hosts_on_chain) = self.hosts(now);
        let is_host = |peer: P| hosts.contains(&peer);
        let people: Vec<P> = self
            .standing(now)
            .filter(|(_, f, _)| f.person)
            .map(|(p, _, _)| p)
            .collect();
        let own_or_host = |subject: P| move |author: P| author == subject || is_host(author);

        // The latest hand-over by a host, to someone present.
        let passed = people
            .iter()
            .filter_map(|to| {
                self.latest(Topic::Passed, *to, is_host)
                    .map(|(by, w)| (*to, by, w))
            })
            .max_by_key(|(_, by, w)| write_order(*by, *w));
        // Asks that stand: a hand-over voids every ask older than it but its receiver's.
        let mut asks: Vec<(u64, P)> = people
            .iter()
            .filter_map(|peer| {
                let (_, ask) = self.latest(Topic::Asks, *peer, |a| a == *peer)?;
                let void =
                    passed.is_some_and(|(to, _, pass)| to != *peer && ask.at_ms < pass.at_ms);
                (ask.on && !void).then_some((ask.at_ms, *peer))
            })
            .collect();
        asks.sort();
        // The receiver of a hand-over presents until it says it stopped.
        let presenter = passed
            .filter(|(to, _, pass)| {
                self.latest(Topic::Asks, *to, |a| a == *to)
                    .is_none_or(|(_, ask)| ask.on || ask.at_ms < pass.at_ms)
            })
            .map(|(to, _, _)| to)
            .or_else(|| {
                asks.iter()
                    .map(|(_, peer)| *peer)
                    .find(|peer| self.policy.presenting == Presenting::Free || is_host(*peer))
            });
        let waiting_to_present = asks
            .iter()
            .map(|(_, peer)| *peer)
            .filter(|peer| Some(*peer) != presenter)
            .collect();

        let standing: Vec<P> = self.standing(now).map(|(p, _, _)| p).collect();
        let mut hands: Vec<(u64, P)> = standing
            .iter()
            .filter_map(|peer| {
                // Only the member raises its hand, so one up is its raise.
                let (_, hand) = self.latest(Topic::Hand, *peer, own_or_host(*peer))?;
                hand.on.then_some((hand.at_ms, *peer))
            })
            .collect();
        hands.sort();

        // A grant holds while its grantor may grant: a host now, or the member itself on an
        // open stage. Anyone may step down.
        let open = self.policy.open_stage;
        let stage = standing
            .iter()
            .filter(|peer| {
                let peer = **peer;
                self.latest(Topic::Stage, peer, |author| {
                    is_host(author) || (author == peer)
                })
                .is_some_and(|(by, grant)| grant.on && (is_host(by) || open))
            })
            .copied()
            .collect();

        Assignments {
            hosts,
            hosts_on_chain,
            presenter,
            waiting_to_present,
            hands: hands.into_iter().map(|(_, p)| p).collect(),
            stage,
        }
    }

    /// When the assignments may change with no new fact: a member's grace period ends.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        self.members
            .values()
            .map(|m| m.present_since + HOST_GRACE)
            .filter(|at| *at > now)
            .min()
    }

    /// The cues `author` made that stand, with their times: what it tells members who arrive
    /// (gossip keeps nothing for them).
    pub fn cues_by(&self, author: P) -> Vec<(u64, Cue<P>)> {
        self.writes
            .iter()
            .filter_map(|((topic, subject), by_author)| {
                let write = by_author.get(&author)?;
                let cue = match (topic, write.on) {
                    (Topic::Asks, true) => Cue::Present,
                    (Topic::Asks, false) => Cue::StopPresenting,
                    (Topic::Passed, _) => Cue::PassPresentation { to: *subject },
                    (Topic::Hand, true) => Cue::RaiseHand,
                    (Topic::Hand, false) => Cue::LowerHand { of: *subject },
                    (Topic::Stage, true) => Cue::InviteToStage { who: *subject },
                    (Topic::Stage, false) => Cue::RemoveFromStage { who: *subject },
                };
                Some((write.at_ms, cue))
            })
            .collect()
    }

    /// Whether `peer`'s presence is known here.
    pub fn is_present(&self, peer: P) -> bool {
        self.members.contains_key(&peer)
    }

    /// Members present (their presence known here).
    pub fn present(&self) -> impl Iterator<Item = P> + '_ {
        self.members.keys().copied()
    }
}

#[cfg(test)]
mod tests;
