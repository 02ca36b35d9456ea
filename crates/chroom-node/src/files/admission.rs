//! Which offered files this node fetches: every decision goes through the [`FileLedger`]
//! (`chroom_room::files` decides; this module keeps the ledger in step with the store).
//!
//! The ledger lock is held across each check and the store writes it leads to, so two offers
//! arriving together cannot both take the last of a quota. A file once set to be fetched is
//! recorded in the store ([`Store::mark_file_fetching`]) and goes on after a restart; one not
//! fetched is decided again when its room is joined (a quota may have been raised since).
//!
//! [`Store::mark_file_fetching`]: chroom_store::Store::mark_file_fetching

use std::sync::Arc;

use chroom_net::PeerId;
use chroom_proto::FileOffer;
use chroom_room::files::{
    FetchDecision, FetchTrigger, FileLedger, KeptFile, TooManyFiles, bytes_in,
};
use chroom_store::StoredFile;
use chroom_types::{Account, FileHash, RoomId};

use super::{FileStatus, Files};

/// What became of an offer.
enum Admission {
    /// Kept already (gossip delivers again; the first delivery was handled).
    Again,
    /// Kept, and decided.
    Decided(FetchDecision),
    /// Not kept: the room tracks as many offers as it may.
    Dropped(TooManyFiles),
}

impl Files {
    /// The files shared in `room`, oldest first, as this node holds them, and whether it
    /// fetches each (and if not, why).
    pub async fn room_files(&self, room: RoomId) -> anyhow::Result<Vec<FileStatus>> {
        let files = self.this()?;
        self.blocking(move || {
            files.with_ledger(|ledger| {
                let mut statuses = Vec::new();
                for file in files.store.room_files(room)? {
                    let held = files.store.file_chunk_indexes(file.hash)?;
                    let status = FileStatus::of(&file, bytes_in(file.size, held));
                    statuses.push(if files.fetches(&file)? {
                        status
                    } else {
                        // What an offer now would decide; resuming the room decides it so.
                        status.decided(&ledger.decide(room, file.size, FetchTrigger::Offered))
                    });
                }
                Ok(statuses)
            })
        })
        .await
    }

    /// A member's offer, delivered in a room this node is in: keep it, and fetch the file if
    /// it fits the limits.
    pub(crate) fn offered(
        self: &Arc<Self>,
        room: RoomId,
        (author, account): (PeerId, Option<Account>),
        offered_at_unix_ms: u64,
        offer: FileOffer,
    ) {
        let file = StoredFile {
            hash: offer.hash,
            room,
            name: offer.name,
            size: offer.size,
            manifest_hash: offer.manifest_hash,
            offered_by: author.to_base58(),
            account,
            offered_at_unix_ms,
            manifest: None,
            complete: false,
        };
        let files = self.clone();
        self.spawn(async move {
            let admitted = {
                let (files, file) = (files.clone(), file.clone());
                files.clone().blocking(move || files.admit(&file)).await
            };
            let decision = match admitted {
                Ok(Admission::Decided(decision)) => decision,
                Ok(Admission::Again) => return,
                // A member flooding offers gets a few log lines, not one per offer.
                Ok(Admission::Dropped(too_many)) if too_many.dropped.is_power_of_two() => {
                    return tracing::warn!(room = %room.fmt_short(), file = ?file.hash, by = %author, max = too_many.max, dropped = too_many.dropped, "file offer dropped: the room tracks as many offered files as it may ([files] max_room_files)");
                }
                Ok(Admission::Dropped(_)) => return,
                Err(e) => return tracing::warn!(error = %e, "cannot keep a file offer"),
            };
            tracing::info!(room = %room.fmt_short(), file = ?file.hash, size = file.size, ?decision, "file offered");
            let status = FileStatus::of(&file, 0).decided(&decision);
            files.tell(status);
            if decision == FetchDecision::Fetch {
                files.start_download(file);
            }
        });
    }

    /// This node's user asks for a file shared in `room` that was not fetched by itself
    /// (over `[files] auto_download_max`). It is fetched if it fits the quotas; if not, its
    /// status says why. Asking for a file fetched already (or held whole) changes nothing.
    /// Errs only for a file the room does not have.
    ///
    /// Cancel-safe: the request runs as a task of its own, so a file recorded as fetched is
    /// fetched even if the caller goes before the answer.
    pub async fn fetch(&self, room: RoomId, hash: FileHash) -> anyhow::Result<()> {
        let files = self.this()?;
        let (done, answer) = tokio::sync::oneshot::channel();
        self.spawn(async move {
            let asked = files.clone();
            let decided = match files.blocking(move || asked.ask(room, hash)).await {
                Ok(Some(decided)) => decided,
                Ok(None) => {
                    let _ = done.send(Err(anyhow::anyhow!("no file {hash} was shared in this room")));
                    return;
                }
                Err(e) => {
                    let _ = done.send(Err(e));
                    return;
                }
            };
            match decided {
                (file, FetchDecision::Fetch) if file.complete => {}
                (file, FetchDecision::Fetch) => files.start_download(file),
                (file, decision) => {
                    tracing::info!(file = ?file.hash, size = file.size, ?decision, "file asked for, not fetched");
                    files.tell(FileStatus::of(&file, 0).decided(&decision));
                }
            }
            let _ = done.send(Ok(()));
        });
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the node is stopping"))?
    }

    /// Goes on with `room`'s unfinished downloads (on joining it), and decides again about the
    /// files not fetched.
    pub(crate) fn resume(self: &Arc<Self>, room: RoomId) {
        let files = self.clone();
        self.spawn(async move {
            let decided = {
                let files = files.clone();
                files
                    .clone()
                    .blocking(move || files.decide_room(room))
                    .await
            };
            let decided = match decided {
                Ok(decided) => decided,
                Err(e) => return tracing::warn!(error = %e, "cannot read the room's files"),
            };
            for (file, decision) in decided {
                if decision == FetchDecision::Fetch {
                    files.start_download(file);
                } else {
                    files.tell(FileStatus::of(&file, 0).decided(&decision));
                }
            }
        });
    }

    /// Keeps a new offer and decides whether to fetch it (store work: run it blocking).
    fn admit(&self, file: &StoredFile) -> anyhow::Result<Admission> {
        self.with_ledger(|ledger| {
            if self.store.file(file.hash)?.is_some() {
                return Ok(Admission::Again);
            }
            if let Err(too_many) = ledger.track(file.room) {
                return Ok(Admission::Dropped(too_many));
            }
            self.store.offer_file(file)?;
            let decision = ledger.fetch(file.room, file.size, FetchTrigger::Offered);
            if decision == FetchDecision::Fetch {
                self.store.mark_file_fetching(file.hash)?;
            }
            Ok(Admission::Decided(decision))
        })
    }

    /// Decides about a file the user asked for, if `room` has it (a file fetched already goes
    /// on, or is whole). Store work: run it blocking.
    fn ask(
        &self,
        room: RoomId,
        hash: FileHash,
    ) -> anyhow::Result<Option<(StoredFile, FetchDecision)>> {
        self.with_ledger(|ledger| {
            let Some(file) = self.store.file(hash)?.filter(|file| file.room == room) else {
                return Ok(None);
            };
            if self.fetches(&file)? {
                return Ok(Some((file, FetchDecision::Fetch)));
            }
            let decision = ledger.fetch(room, file.size, FetchTrigger::Asked);
            if decision == FetchDecision::Fetch {
                self.store.mark_file_fetching(hash)?;
            }
            Ok(Some((file, decision)))
        })
    }

    /// `room`'s unfinished files of others, oldest first, each with what becomes of it: those
    /// fetched before go on (store work: run it blocking).
    fn decide_room(&self, room: RoomId) -> anyhow::Result<Vec<(StoredFile, FetchDecision)>> {
        self.with_ledger(|ledger| {
            let own = self.net.peer_id().to_base58();
            let mut decided = Vec::new();
            for file in self.store.room_files(room)? {
                if file.complete || file.offered_by == own {
                    continue;
                }
                if self.store.file_fetching(file.hash)? {
                    decided.push((file, FetchDecision::Fetch));
                    continue;
                }
                let decision = ledger.fetch(room, file.size, FetchTrigger::Offered);
                if decision == FetchDecision::Fetch {
                    self.store.mark_file_fetching(file.hash)?;
                }
                decided.push((file, decision));
            }
            Ok(decided)
        })
    }

    /// This, shared, for work that outlives a `&self` call.
    pub(super) fn this(&self) -> anyhow::Result<Arc<Self>> {
        self.me
            .upgrade()
            .ok_or_else(|| anyhow::anyhow!("the node is stopping"))
    }

    /// Whether this node fetches `file` (or holds it whole, or shared it).
    fn fetches(&self, file: &StoredFile) -> anyhow::Result<bool> {
        Ok(file.complete
            || file.offered_by == self.net.peer_id().to_base58()
            || self.store.file_fetching(file.hash)?)
    }

    /// Runs `work` on the ledger (read from the store first if needed) under its lock. If
    /// `work` fails part-way, what it counted may not have reached the store: the ledger is
    /// read again next time. Blocks on the lock and the store: run it blocking.
    fn with_ledger<T>(
        &self,
        work: impl FnOnce(&mut FileLedger) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut slot = self
            .ledger
            .lock()
            // A panic mid-update leaves counts that may be off: read them again.
            .unwrap_or_else(|poisoned| {
                let mut slot = poisoned.into_inner();
                *slot = None;
                slot
            });
        let ledger = match slot.as_mut() {
            Some(ledger) => ledger,
            None => slot.insert(self.read_ledger()?),
        };
        let done = work(ledger);
        if done.is_err() {
            *slot = None;
        }
        done
    }

    /// The ledger as the store has it: every other member's file kept, counted if it is held
    /// whole or being fetched.
    fn read_ledger(&self) -> anyhow::Result<FileLedger> {
        let own = self.net.peer_id().to_base58();
        let mut ledger = FileLedger::new(self.limits);
        for space in self.store.file_spaces()? {
            if space.offered_by == own {
                continue;
            }
            let kept = if space.complete || space.fetching {
                KeptFile::Fetched
            } else {
                KeptFile::NotFetched
            };
            ledger.count_kept(space.room, space.size, kept);
        }
        Ok(ledger)
    }

    /// Drops the ledger, to be read from the store again when next needed.
    pub(super) fn forget_ledger(&self) {
        *self
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
