//! What tree members say to each other.

/// Most candidates a message carries; receivers ignore the rest.
pub const MAX_CANDIDATES: usize = 8;

/// A possible parent: a tree member, its level when the sender last heard of it, and the room
/// it had then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate<P> {
    /// The member.
    pub peer: P,
    /// Its level (the root is 0, its children 1, …).
    pub level: u32,
    /// Free child slots of its own.
    pub spare: u32,
    /// Free child slots in its whole subtree, its own included: asking it leads there.
    pub room: u32,
}

/// A message between two members of one broadcast tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<P> {
    /// Asks the receiver to become the sender's parent.
    Join {
        /// The sender has children of its own at level > this: the receiver may only accept if
        /// its level is below it. This is what keeps the tree free of cycles (docs/tree.md).
        below_level: Option<u32>,
        /// Children the sender can feed (0 for a viewer). Relayers may push a viewer down.
        capacity: u32,
    },
    /// The receiver of a [`Message::Join`] took the sender as a child.
    Accepted {
        /// The new parent's level.
        level: u32,
        /// Backup parents for the new child.
        candidates: Vec<Candidate<P>>,
    },
    /// No room here: try these instead (best first).
    Redirected {
        /// Where to ask next.
        candidates: Vec<Candidate<P>>,
    },
    /// No room here and nothing better known.
    Refused,
    /// Parent to children, when it changes: the parent's level and fresh backup parents.
    State {
        /// The parent's level.
        level: u32,
        /// Backup parents.
        candidates: Vec<Candidate<P>>,
    },
    /// Child to parent, when it changes: what the child's subtree offers to joiners.
    Report {
        /// The shallowest member of the subtree with a free slot of its own.
        spare: Option<Candidate<P>>,
        /// Free slots in the whole subtree.
        room: u32,
        /// The shallowest relayer of the subtree feeding a viewer it could push down.
        pushdown: Option<Candidate<P>>,
        /// The deepest member of the subtree: the one to move up when a slot frees near the
        /// root.
        deepest: Option<Candidate<P>>,
    },
    /// Parent to a deep member of its subtree: a slot is free here, at `level`; move up.
    Invite {
        /// The inviter's level.
        level: u32,
    },
    /// Parent to children: it is leaving; move to one of these (then send [`Message::Left`]).
    Handover {
        /// Where to go.
        candidates: Vec<Candidate<P>>,
    },
    /// Parent to a viewer child: its slot went to a relayer; join `to` instead.
    Evicted {
        /// The relayer that took the slot, which will take the viewer.
        to: Candidate<P>,
    },
    /// Child to parent: stop feeding me.
    Left,
    /// Child to parent: your media stopped reaching me (or never came). A parent whose own
    /// feed stopped answers [`Message::Repairing`], any other [`Message::Feeding`]; silence
    /// tells the child, at its deadline, that the parent is gone.
    Probe,
    /// Parent to child, answering a [`Message::Probe`]: this member's feed flows and it sends
    /// to the child. A new link is waited for; a silent one is broken all the same.
    Feeding,
    /// Parent to children (and on down): this member's feed stopped and it is finding a new
    /// parent; wait for it rather than scatter.
    Repairing,
}

impl<P> Message<P> {
    /// The same message with every member renamed by `rename` (between the core's peer type and
    /// the wire's); `None` if any name does not convert.
    pub fn try_map_peers<Q>(self, mut rename: impl FnMut(P) -> Option<Q>) -> Option<Message<Q>> {
        let mut candidate = |c: Candidate<P>| {
            Some(Candidate {
                peer: rename(c.peer)?,
                level: c.level,
                spare: c.spare,
                room: c.room,
            })
        };
        let mut list = |list: Vec<Candidate<P>>| -> Option<Vec<Candidate<Q>>> {
            list.into_iter().map(&mut candidate).collect()
        };
        Some(match self {
            Self::Join {
                below_level,
                capacity,
            } => Message::Join {
                below_level,
                capacity,
            },
            Self::Accepted { level, candidates } => Message::Accepted {
                level,
                candidates: list(candidates)?,
            },
            Self::Redirected { candidates } => Message::Redirected {
                candidates: list(candidates)?,
            },
            Self::Refused => Message::Refused,
            Self::State { level, candidates } => Message::State {
                level,
                candidates: list(candidates)?,
            },
            Self::Report {
                spare,
                room,
                pushdown,
                deepest,
            } => {
                let mut one = |c: Option<Candidate<P>>| -> Option<Option<Candidate<Q>>> {
                    c.map(&mut candidate).map_or(Some(None), |c| c.map(Some))
                };
                Message::Report {
                    spare: one(spare)?,
                    room,
                    pushdown: one(pushdown)?,
                    deepest: one(deepest)?,
                }
            }
            Self::Invite { level } => Message::Invite { level },
            Self::Handover { candidates } => Message::Handover {
                candidates: list(candidates)?,
            },
            Self::Evicted { to } => Message::Evicted { to: candidate(to)? },
            Self::Left => Message::Left,
            Self::Probe => Message::Probe,
            Self::Feeding => Message::Feeding,
            Self::Repairing => Message::Repairing,
        })
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<P> {
    /// The recipient.
    pub to: P,
    /// The message.
    pub message: Message<P>,
}
