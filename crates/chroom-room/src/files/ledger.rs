//! Which files other members offer a node fetches at all: the [`FileLimits`] and the
//! [`FileLedger`] that checks them.

use std::collections::BTreeMap;

use chroom_types::RoomId;

/// Bounds on the files other members offer that a node fetches and keeps.
///
/// Files the node's own user shared are not counted against them: the user chose to keep
/// those (one upload of at most [`MAX_FILE_BYTES`](chroom_types::MAX_FILE_BYTES) at a time),
/// while the bounds protect the node's disk from what others send it unasked. Refusing the
/// user's own share, or refusing members' files because the user shared much, would punish
/// the wrong party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Largest file fetched without the user asking; larger ones wait for the user. Default
    /// [`FileLimits::DEFAULT_AUTO_DOWNLOAD_MAX`] (8 MiB).
    pub auto_download_max: u64,
    /// Bytes of other members' files kept for one room. Default
    /// [`FileLimits::DEFAULT_ROOM_QUOTA`] (256 MiB).
    pub room_quota: u64,
    /// Bytes of other members' files kept for all rooms together. Default
    /// [`FileLimits::DEFAULT_TOTAL_QUOTA`] (1 GiB).
    pub total_quota: u64,
    /// Offers from other members tracked per room; further ones are dropped. Default
    /// [`FileLimits::DEFAULT_MAX_ROOM_FILES`] (1000).
    pub max_room_files: usize,
}

impl FileLimits {
    /// Default of [`FileLimits::auto_download_max`]: a few photos or a slide deck arrive by
    /// themselves; a video waits for a click.
    pub const DEFAULT_AUTO_DOWNLOAD_MAX: u64 = 8 * 1024 * 1024;
    /// Default of [`FileLimits::room_quota`]: eight files of the largest size shared.
    pub const DEFAULT_ROOM_QUOTA: u64 = 256 * 1024 * 1024;
    /// Default of [`FileLimits::total_quota`].
    pub const DEFAULT_TOTAL_QUOTA: u64 = 1024 * 1024 * 1024;
    /// Default of [`FileLimits::max_room_files`].
    pub const DEFAULT_MAX_ROOM_FILES: usize = 1000;
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            auto_download_max: Self::DEFAULT_AUTO_DOWNLOAD_MAX,
            room_quota: Self::DEFAULT_ROOM_QUOTA,
            total_quota: Self::DEFAULT_TOTAL_QUOTA,
            max_room_files: Self::DEFAULT_MAX_ROOM_FILES,
        }
    }
}

/// Why a node would fetch a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchTrigger {
    /// The user asked for it: no size threshold, the quotas still hold.
    Asked,
    /// A member offered it: fetched unasked only up to [`FileLimits::auto_download_max`].
    Offered,
}

/// What becomes of a file of another member that this node does not fetch yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchDecision {
    /// Fetch it ([`FileLedger::fetch`] counted its size).
    Fetch,
    /// It would not fit in this node's file space: not fetched, and the user is told why.
    Refuse(QuotaExceeded),
    /// Over [`FileLimits::auto_download_max`]: fetched once the user asks.
    WaitForUser,
}

/// A file that would not fit in this node's file space, as the user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaExceeded {
    /// Over the room's quota.
    #[error("{}", refusal("this room", "room_quota", *.used, *.quota, *.size))]
    Room {
        /// Bytes of others' files the room holds already.
        used: u64,
        /// The room's quota.
        quota: u64,
        /// The file's size.
        size: u64,
    },
    /// Over the quota of all rooms together.
    #[error("{}", refusal("all rooms", "total_quota", *.used, *.quota, *.size))]
    Total {
        /// Bytes of others' files held in all rooms.
        used: u64,
        /// The total quota.
        quota: u64,
        /// The file's size.
        size: u64,
    },
}

/// What the user reads of a [`QuotaExceeded`]: which space, how full, and which setting
/// bounds it (the one thing that makes room: nothing held is deleted by itself).
fn refusal(space: &str, setting: &str, used: u64, quota: u64, size: u64) -> String {
    if size > quota {
        return format!(
            "not downloaded: this file ({}) is larger than this node's whole file space for \
             {space} ({}); the node's [files] {setting} sets it",
            fmt_bytes(size),
            fmt_bytes(quota)
        );
    }
    format!(
        "not downloaded: this node's file space for {space} is full ({} of {} used, this file \
         needs {}); the node's [files] {setting} sets it",
        fmt_bytes(used),
        fmt_bytes(quota),
        fmt_bytes(size)
    )
}

/// An offer not tracked: the room tracks [`FileLimits::max_room_files`] already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the room tracks {max} offered files already ({dropped} offers dropped)")]
pub struct TooManyFiles {
    /// The bound.
    pub max: usize,
    /// Offers dropped in the room so far, this one included (since the node started): a
    /// driver logs a few, not a flood of them.
    pub dropped: u64,
}

/// How a kept file of another member stands, for [`FileLedger::count_kept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptFile {
    /// Held whole, or being fetched: its size counts against the quotas.
    Fetched,
    /// Offered but not fetched (waiting for the user, or refused): it takes no space.
    NotFetched,
}

/// What other members' files take on this node, per room and in all: what [`FileLimits`] are
/// checked against. A file counts with its whole (offered) size from the moment its fetch is
/// decided, so downloads running at once cannot together overshoot a quota.
///
/// Files this node shared are not counted (see [`FileLimits`]).
#[derive(Debug, Clone)]
pub struct FileLedger {
    limits: FileLimits,
    rooms: BTreeMap<RoomId, RoomFiles>,
    total_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct RoomFiles {
    tracked: usize,
    bytes: u64,
    dropped: u64,
}

impl FileLedger {
    /// An empty ledger: feed it what the node kept with [`Self::count_kept`].
    pub fn new(limits: FileLimits) -> Self {
        Self {
            limits,
            rooms: BTreeMap::new(),
            total_bytes: 0,
        }
    }

    /// Counts a file of another member kept from before (on start). Kept files are counted
    /// even past the bounds (they were lowered since): they only keep new ones out.
    pub fn count_kept(&mut self, room: RoomId, size: u64, kept: KeptFile) {
        let counts = self.rooms.entry(room).or_default();
        counts.tracked += 1;
        if kept == KeptFile::Fetched {
            counts.bytes = counts.bytes.saturating_add(size);
            self.total_bytes = self.total_bytes.saturating_add(size);
        }
    }

    /// A member offered a new file in `room`: tracks it, unless the room tracks
    /// [`FileLimits::max_room_files`] already (then the offer is to be dropped).
    pub fn track(&mut self, room: RoomId) -> Result<(), TooManyFiles> {
        let counts = self.rooms.entry(room).or_default();
        if counts.tracked >= self.limits.max_room_files {
            counts.dropped += 1;
            return Err(TooManyFiles {
                max: self.limits.max_room_files,
                dropped: counts.dropped,
            });
        }
        counts.tracked += 1;
        Ok(())
    }

    /// Decides whether to fetch a tracked `size`-byte file of `room` that this node does not
    /// fetch yet, and counts it if so.
    pub fn fetch(&mut self, room: RoomId, size: u64, trigger: FetchTrigger) -> FetchDecision {
        let decision = self.decide(room, size, trigger);
        if decision == FetchDecision::Fetch {
            let counts = self.rooms.entry(room).or_default();
            counts.bytes = counts.bytes.saturating_add(size);
            self.total_bytes = self.total_bytes.saturating_add(size);
        }
        decision
    }

    /// What [`Self::fetch`] would decide, changing nothing: to tell the user how a file stands.
    /// The quotas come first, so a file that could never fit is not offered for a click.
    pub fn decide(&self, room: RoomId, size: u64, trigger: FetchTrigger) -> FetchDecision {
        let used = self.room_bytes(room);
        let quota = self.limits.room_quota;
        if used.saturating_add(size) > quota {
            return FetchDecision::Refuse(QuotaExceeded::Room { used, quota, size });
        }
        let (used, quota) = (self.total_bytes, self.limits.total_quota);
        if used.saturating_add(size) > quota {
            return FetchDecision::Refuse(QuotaExceeded::Total { used, quota, size });
        }
        match trigger {
            FetchTrigger::Offered if size > self.limits.auto_download_max => {
                FetchDecision::WaitForUser
            }
            FetchTrigger::Asked | FetchTrigger::Offered => FetchDecision::Fetch,
        }
    }

    /// The bounds checked.
    pub fn limits(&self) -> FileLimits {
        self.limits
    }

    /// Bytes of others' files fetched (or being fetched) for `room`.
    pub fn room_bytes(&self, room: RoomId) -> u64 {
        self.rooms.get(&room).map_or(0, |counts| counts.bytes)
    }

    /// Bytes of others' files fetched (or being fetched) for all rooms.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Offers of others tracked in `room`.
    pub fn tracked(&self, room: RoomId) -> usize {
        self.rooms.get(&room).map_or(0, |counts| counts.tracked)
    }
}

/// A byte count for people, in binary units: `256 MiB`, `1.5 GiB`, `700 bytes`.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, scale) in UNITS {
        if bytes >= scale {
            return if bytes.is_multiple_of(scale) {
                format!("{} {unit}", bytes / scale)
            } else {
                format!("{:.1} {unit}", bytes as f64 / scale as f64)
            };
        }
    }
    match bytes {
        1 => "1 byte".to_owned(),
        _ => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn limits() -> FileLimits {
        FileLimits {
            auto_download_max: 8 * MIB,
            room_quota: 20 * MIB,
            total_quota: 30 * MIB,
            max_room_files: 3,
        }
    }

    #[test]
    fn files_up_to_the_automatic_limit_are_fetched_unasked_larger_ones_when_asked() {
        let room = RoomId::from_bytes([1; 32]);
        let mut ledger = FileLedger::new(limits());
        assert_eq!(
            ledger.fetch(room, 8 * MIB, FetchTrigger::Offered),
            FetchDecision::Fetch,
            "at the limit"
        );
        assert_eq!(
            ledger.fetch(room, 8 * MIB + 1, FetchTrigger::Offered),
            FetchDecision::WaitForUser
        );
        assert_eq!(
            ledger.room_bytes(room),
            8 * MIB,
            "a file waiting takes no space"
        );
        assert_eq!(
            ledger.decide(room, 8 * MIB + 1, FetchTrigger::Asked),
            FetchDecision::Fetch
        );
        assert_eq!(ledger.room_bytes(room), 8 * MIB, "deciding changes nothing");
        assert_eq!(
            ledger.fetch(room, 8 * MIB + 1, FetchTrigger::Asked),
            FetchDecision::Fetch
        );
        assert_eq!(ledger.room_bytes(room), 16 * MIB + 1);
        assert_eq!(ledger.total_bytes(), 16 * MIB + 1);
    }

    #[test]
    fn a_fetch_that_would_pass_a_quota_is_refused_and_says_which() {
        let (room, other) = (RoomId::from_bytes([1; 32]), RoomId::from_bytes([2; 32]));
        let mut ledger = FileLedger::new(limits());
        // Kept from before: counted whether complete or still fetching; offers not fetched
        // take no space.
        ledger.count_kept(room, 12 * MIB, KeptFile::Fetched);
        ledger.count_kept(room, 30 * MIB, KeptFile::NotFetched);
        assert_eq!(ledger.room_bytes(room), 12 * MIB);
        // 8 more would make 20: exactly the room's quota, allowed; one byte more is not.
        assert_eq!(
            ledger.decide(room, 8 * MIB + 1, FetchTrigger::Asked),
            FetchDecision::Refuse(QuotaExceeded::Room {
                used: 12 * MIB,
                quota: 20 * MIB,
                size: 8 * MIB + 1
            })
        );
        // A file too large to be fetched unasked that could never fit is refused at once,
        // not offered for a click.
        assert!(matches!(
            ledger.decide(room, 9 * MIB, FetchTrigger::Offered),
            FetchDecision::Refuse(QuotaExceeded::Room { .. })
        ));
        assert_eq!(
            ledger.fetch(room, 8 * MIB, FetchTrigger::Offered),
            FetchDecision::Fetch
        );
        let FetchDecision::Refuse(refusal) = ledger.fetch(room, 1, FetchTrigger::Offered) else {
            panic!("the room is full");
        };
        assert_eq!(
            refusal.to_string(),
            "not downloaded: this node's file space for this room is full (20 MiB of 20 MiB \
             used, this file needs 1 byte); the node's [files] room_quota sets it"
        );
        assert_eq!(
            ledger.room_bytes(room),
            20 * MIB,
            "a refusal counts nothing"
        );
        // Another room has space of its own, but all rooms together are bounded too.
        assert_eq!(
            ledger.fetch(other, 8 * MIB, FetchTrigger::Offered),
            FetchDecision::Fetch
        );
        let FetchDecision::Refuse(refusal) = ledger.fetch(other, 3 * MIB, FetchTrigger::Asked)
        else {
            panic!("all rooms are full");
        };
        assert_eq!(
            refusal,
            QuotaExceeded::Total {
                used: 28 * MIB,
                quota: 30 * MIB,
                size: 3 * MIB
            }
        );
        assert!(refusal.to_string().contains("total_quota"), "{refusal}");
        // A file larger than the whole space is told so, not that the space is full.
        let FetchDecision::Refuse(refusal) = ledger.decide(other, 21 * MIB, FetchTrigger::Asked)
        else {
            panic!("larger than the room's space");
        };
        assert_eq!(
            refusal.to_string(),
            "not downloaded: this file (21 MiB) is larger than this node's whole file space for \
             this room (20 MiB); the node's [files] room_quota sets it"
        );
        assert_eq!(ledger.total_bytes(), 28 * MIB);
    }

    #[test]
    fn a_room_tracks_a_bounded_number_of_offers() {
        let (room, other) = (RoomId::from_bytes([1; 32]), RoomId::from_bytes([2; 32]));
        let mut ledger = FileLedger::new(limits());
        ledger.count_kept(room, 1, KeptFile::NotFetched);
        assert_eq!(ledger.track(room), Ok(()));
        assert_eq!(ledger.track(room), Ok(()));
        assert_eq!(ledger.track(room), Err(TooManyFiles { max: 3, dropped: 1 }));
        assert_eq!(ledger.track(room), Err(TooManyFiles { max: 3, dropped: 2 }));
        assert_eq!(ledger.tracked(room), 3);
        assert_eq!(ledger.track(other), Ok(()), "per room");
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(fmt_bytes(1), "1 byte");
        assert_eq!(fmt_bytes(700), "700 bytes");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(256 * MIB), "256 MiB");
        assert_eq!(fmt_bytes(1 << 30), "1 GiB");
        assert_eq!(fmt_bytes(12 * MIB + MIB / 2), "12.5 MiB");
    }
}
