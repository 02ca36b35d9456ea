//! Files shared in rooms, on this node: taking one from the user's page and offering it to the
//! room, fetching the files others offer from their nodes chunk by chunk, serving chunks to the
//! room's members, and telling pages how far each file is.
//!
//! What a chunk, manifest or whole file must hash to is [`chroom_room::files`]'s business; this
//! module moves bytes and keeps them ([`chroom_store`]). Every chunk is stored as soon as it is
//! checked, so a download cut off (the sender gone, this node restarted, the room left) goes on
//! from the chunks it holds when the room is joined again.
//!
//! Not every offered file is fetched: [`admission`] checks each against the node's
//! [`FileLimits`] (fetched at once up to a size, larger ones when the user asks, none past the
//! node's file space for the room or in all), and the page is told how each file stands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chroom_net::{NetHandle, PeerId, SignalReplyId};
use chroom_proto::{ErrorCode, FileOffer, FilePart, SignalError, SignalResponse};
use chroom_room::files::{
    Download, FetchDecision, FileError, FileLedger, FileLimits, Manifest, Want, chunk_count,
    hash_of,
};
use chroom_store::{Store, StoredFile};
use chroom_types::{Account, FILE_CHUNK_BYTES, FileHash, RoomId};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod admission;
mod transfer;

use transfer::{Pacer, fetch};

/// Requests a download keeps out at once: enough to fill a path of a few tens of milliseconds
/// at tens of Mbit/s with 32 KiB chunks.
const REQUESTS_IN_FLIGHT: usize = 8;

/// First wait before asking a sender again after a failed request; doubled on each failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);

/// Longest wait before asking an unreachable sender again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Pages hear of a download's progress at most this often (and at its end).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Files offered again to a member arriving in a room: the most recent this node shared.
const REOFFERED_FILES: usize = 20;

/// Status changes kept for pages that read slowly.
const EVENT_BUFFER: usize = 256;

/// How a shared file stands on this node, as its pages are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The room it was shared in.
    pub room: RoomId,
    /// BLAKE3 of its bytes.
    pub hash: FileHash,
    /// Its name.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// The node that offered it (PeerId text).
    pub offered_by: String,
    /// The account that node proved, if any.
    pub account: Option<Account>,
    /// When it was offered, unix milliseconds.
    pub offered_at_unix_ms: u64,
    /// Bytes held (and checked) so far.
    pub received: u64,
    /// Held whole and checked against its hash: it can be downloaded.
    pub complete: bool,
    /// Whether this node fetches it.
    pub fetch: FetchState,
    /// What keeps it from completing right now, for people.
    pub problem: Option<String>,
}

/// Whether this node fetches a shared file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchState {
    /// It fetches it, holds it whole, or shared it: `received` and `complete` say how far.
    Fetching,
    /// Over `[files] auto_download_max`: fetched once the user asks ([`Files::fetch`]).
    OnRequest,
    /// Not fetched: it would not fit in this node's file space; `problem` says which.
    Refused,
}

impl FileStatus {
    fn of(file: &StoredFile, received: u64) -> Self {
        Self {
            room: file.room,
            hash: file.hash,
            name: file.name.clone(),
            size: file.size,
            offered_by: file.offered_by.clone(),
            account: file.account,
            offered_at_unix_ms: file.offered_at_unix_ms,
            received: if file.complete { file.size } else { received },
            complete: file.complete,
            fetch: FetchState::Fetching,
            problem: None,
        }
    }

    /// How a file this node does not fetch stands after `decision`.
    fn decided(mut self, decision: &FetchDecision) -> Self {
        match decision {
            FetchDecision::Fetch => self.fetch = FetchState::Fetching,
            FetchDecision::Refuse(refusal) => {
                self.fetch = FetchState::Refused;
                self.problem = Some(refusal.to_string());
            }
            FetchDecision::WaitForUser => self.fetch = FetchState::OnRequest,
        }
        self
    }
}

/// This node's share in the rooms' files. Shared by the driver (offers, requests, joins) and
/// the pages (uploads, downloads, status).
#[derive(Debug)]
pub struct Files {
    /// This, for work started from a `&self` method (a page's request) that outlives it.
    me: Weak<Self>,
    store: Arc<Store>,
    net: NetHandle,
    events: broadcast::Sender<FileStatus>,
    /// Running downloads: the room each is for, and how to stop it.
    downloads: Mutex<HashMap<FileHash, (RoomId, CancellationToken)>>,
    shutdown: CancellationToken,
    /// Everything this module runs, so a stopping node can wait for it.
    tasks: TaskTracker,
    pacer: Pacer,
    chunks_fetched: AtomicU64,
    limits: FileLimits,
    /// What other members' files take on this node, read from the store when first needed
    /// (and again after something changed it outside the ledger); see [`admission`].
    ledger: Mutex<Option<FileLedger>>,
}

impl Files {
    pub(crate) fn new(
        store: Arc<Store>,
        net: NetHandle,
        serve_kbps: u32,
        limits: FileLimits,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            store,
            net,
            events: broadcast::channel(EVENT_BUFFER).0,
            downloads: Mutex::new(HashMap::new()),
            shutdown,
            tasks: TaskTracker::new(),
            pacer: Pacer::new(u64::from(serve_kbps) * 1000 / 8),
            chunks_fetched: AtomicU64::new(0),
            limits,
            ledger: Mutex::new(None),
        })
    }

    /// Every change of a file's status from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FileStatus> {
        self.events.subscribe()
    }

    /// Chunks fetched from other nodes since this node started.
    pub fn chunks_fetched(&self) -> u64 {
        self.chunks_fetched.load(Ordering::Relaxed)
    }

    /// A complete file's name and bytes, checked when it completed.
    pub async fn read(&self, hash: FileHash) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        let store = self.store.clone();
        self.blocking(move || {
            let Some(file) = store.file(hash)?.filter(|file| file.complete) else {
                return Ok(None);
            };
            let mut bytes = Vec::with_capacity(usize::try_from(file.size).unwrap_or(0));
            for index in 0..chunk_count(file.size) {
                let chunk = store
                    .file_chunk(hash, index)?
                    .with_context(|| format!("chunk {index} of a complete file is missing"))?;
                bytes.extend_from_slice(&chunk);
            }
            Ok(Some((file.name, bytes)))
        })
        .await
    }

    /// The offers of the last files this node shared in `room` (held whole), to offer again to
    /// a member that just arrived or came back: an offer is a gossip message, gone once sent.
    pub(crate) async fn own_offers(
        &self,
        room: RoomId,
        own: PeerId,
    ) -> anyhow::Result<Vec<FileOffer>> {
        let store = self.store.clone();
        let own = own.to_base58();
        let mine: Vec<StoredFile> = self
            .blocking(move || {
                Ok(store
                    .room_files(room)?
                    .into_iter()
                    .filter(|file| file.complete && file.offered_by == own)
                    .collect())
            })
            .await?;
        let skip = mine.len().saturating_sub(REOFFERED_FILES);
        Ok(mine
            .into_iter()
            .skip(skip)
            .map(|file| FileOffer {
                hash: file.hash,
                name: file.name,
                size: file.size,
                manifest_hash: file.manifest_hash,
            })
            .collect())
    }

    /// Cuts a file this node's user shares into chunks and keeps it whole; returns the offer
    /// to publish in the room.
    pub(crate) async fn prepare_share(
        &self,
        room: RoomId,
        name: String,
        bytes: Bytes,
        (offered_by, account): (PeerId, Option<Account>),
    ) -> anyhow::Result<FileOffer> {
        chroom_proto::check_file_name(&name).map_err(|reason| anyhow::anyhow!(reason))?;
        let (store, files) = (self.store.clone(), self.this()?);
        let (offer, file) = self
            .blocking(move || {
                let (hash, manifest) = Manifest::of(&bytes)?;
                let file = StoredFile {
                    hash,
                    room,
                    name,
                    size: bytes.len() as u64,
                    manifest_hash: manifest.hash(),
                    offered_by: offered_by.to_base58(),
                    account,
                    offered_at_unix_ms: crate::clock::unix_now_ms(),
                    manifest: Some(manifest.encode()),
                    complete: true,
                };
                store.share_file(&file, bytes.chunks(FILE_CHUNK_BYTES))?;
                // A file kept before under this hash (another member's offer) is this node's
                // now: count the space afresh.
                files.forget_ledger();
                let offer = FileOffer {
                    hash,
                    name: file.name.clone(),
                    size: file.size,
                    manifest_hash: file.manifest_hash,
                };
                Ok((offer, file))
            })
            .await?;
        self.tell(FileStatus::of(&file, file.size));
        Ok(offer)
    }

    /// Stops `room`'s downloads (on leaving it); the chunks they hold are kept.
    pub(crate) fn pause(&self, room: RoomId) {
        self.running().retain(|_, (of, stop)| {
            if *of == room {
                stop.cancel();
            }
            *of != room
        });
    }

    /// Answers a member's request for part of a file shared in `room` (the driver checked that
    /// the member is present there).
    pub(crate) fn serve(
        self: &Arc<Self>,
        reply: SignalReplyId,
        room: RoomId,
        file: FileHash,
        part: FilePart,
    ) {
        let files = self.clone();
        self.spawn(async move {
            let store = files.store.clone();
            let found = files
                .blocking(move || {
                    let Some(kept) = store.file(file)?.filter(|kept| kept.room == room) else {
                        return Ok(None);
                    };
                    Ok(match part {
                        FilePart::Manifest => kept.manifest,
                        FilePart::Chunk(index) => store.file_chunk(file, index)?,
                    })
                })
                .await;
            let response = match found {
                Ok(Some(data)) => {
                    files.pacer.wait(data.len()).await;
                    SignalResponse::FileData(data.into())
                }
                Ok(None) => SignalResponse::Error(SignalError::new(
                    ErrorCode::NotFound,
                    "this node does not hold that part of that file in that room",
                )),
                Err(e) => SignalResponse::Error(SignalError::new(
                    ErrorCode::Internal,
                    format!("cannot read the file: {e:#}"),
                )),
            };
            let _ = files.net.respond(reply, response).await;
        });
    }

    fn start_download(self: &Arc<Self>, file: StoredFile) {
        let stop = self.shutdown.child_token();
        {
            let mut running = self.running();
            if running.contains_key(&file.hash) {
                return;
            }
            running.insert(file.hash, (file.room, stop.clone()));
        }
        let files = self.clone();
        self.spawn(async move {
            let hash = file.hash;
            tokio::select! {
                () = stop.cancelled() => {}
                () = files.download(file) => {}
            }
            files.running().remove(&hash);
        });
    }

    /// Fetches what is missing of `file` from the node that offered it, until it is whole and
    /// checked. Gives up only on bytes that cannot be the file (they would never be).
    async fn download(&self, file: StoredFile) {
        let Ok(sender) = file.offered_by.parse::<PeerId>() else {
            return;
        };
        let mut status = FileStatus::of(&file, 0);
        let mut download = match self.held(&file).await {
            Ok(download) => download,
            Err(e) => {
                status.problem = Some(format!("{e:#}"));
                return self.tell(status);
            }
        };
        status.received = download.received_bytes();
        self.tell(status.clone());
        let mut in_flight = FuturesUnordered::new();
        let mut retry_delay = FIRST_RETRY_DELAY;
        // After a failure no new requests go out until those out are answered and a delay
        // has passed: a sender that is gone is not asked in a tight loop.
        let mut retry_at: Option<Instant> = None;
        let mut last_told = Instant::now();
        while !download.is_complete() {
            if retry_at.is_none() {
                for want in download.next_wants(REQUESTS_IN_FLIGHT) {
                    in_flight.push(fetch(self.net.clone(), sender, &file, want));
                }
            }
            let Some((want, answer)) = in_flight.next().await else {
                if let Some(at) = retry_at.take() {
                    tokio::time::sleep_until(at.into()).await;
                }
                continue;
            };
            let kept = match answer {
                Ok(data) => self.keep(&file, &mut download, want, &data).await,
                Err(e) => Err(anyhow::anyhow!(e)),
            };
            if let Err(e) = kept {
                download.failed(want);
                if retry_at.is_none() {
                    retry_at = Some(Instant::now() + retry_delay);
                    retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                }
                if status.problem.is_none() {
                    tracing::info!(file = ?file.hash, error = %format!("{e:#}"), "file transfer interrupted: retrying");
                }
                status.problem = Some(format!("{e:#}: retrying"));
                self.tell(status.clone());
                continue;
            }
            retry_delay = FIRST_RETRY_DELAY;
            status.received = download.received_bytes();
            if status.problem.take().is_some() || last_told.elapsed() >= PROGRESS_INTERVAL {
                last_told = Instant::now();
                self.tell(status.clone());
            }
        }
        match self.finish(&file).await {
            Ok(()) => {
                tracing::info!(file = ?file.hash, size = file.size, "file received whole");
                status.complete = true;
                status.received = file.size;
            }
            Err(e) => status.problem = Some(format!("{e:#}")),
        }
        self.tell(status);
    }

    /// A download of `file` holding what this node kept of it.
    async fn held(&self, file: &StoredFile) -> anyhow::Result<Download> {
        let store = self.store.clone();
        let hash = file.hash;
        let have = self
            .blocking(move || Ok(store.file_chunk_indexes(hash)?))
            .await?;
        let manifest = file
            .manifest
            .as_ref()
            .and_then(|bytes| Manifest::decode(bytes, file.size, file.manifest_hash).ok());
        Ok(Download::new(
            file.size,
            file.manifest_hash,
            manifest,
            &have,
        )?)
    }

    /// Checks what arrived for `want` and keeps it.
    async fn keep(
        &self,
        file: &StoredFile,
        download: &mut Download,
        want: Want,
        data: &Bytes,
    ) -> anyhow::Result<()> {
        let store = self.store.clone();
        let hash = file.hash;
        match want {
            Want::Manifest => {
                let manifest = download.manifest_arrived(data)?.encode();
                self.blocking(move || Ok(store.set_file_manifest(hash, &manifest)?))
                    .await
            }
            Want::Chunk(index) => {
                download.chunk_arrived(index, data)?;
                self.chunks_fetched.fetch_add(1, Ordering::Relaxed);
                let data = data.clone();
                self.blocking(move || Ok(store.put_file_chunks(hash, &[(index, &data)])?))
                    .await
            }
        }
    }

    /// Checks the whole of `file` against its hash and records it complete.
    async fn finish(&self, file: &StoredFile) -> anyhow::Result<()> {
        let store = self.store.clone();
        let (hash, size) = (file.hash, file.size);
        self.blocking(move || {
            let chunks = (0..chunk_count(size))
                .map(|index| {
                    store
                        .file_chunk(hash, index)?
                        .with_context(|| format!("chunk {index} vanished"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if hash_of(&chunks) != hash {
                return Err(FileError::WrongFile.into());
            }
            Ok(store.mark_file_complete(hash)?)
        })
        .await
    }

    /// Runs `work` until it ends or the node stops; [`Self::stopped`] waits for it.
    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// Runs store work (redb fsyncs on commit) off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.tasks
            .spawn_blocking(work)
            .await
            .context("store task failed")?
    }

    /// Waits, once the node is stopping, until nothing of this module runs: then the store is
    /// no longer used and can be opened again.
    pub(crate) async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn tell(&self, status: FileStatus) {
        // Nobody listening is fine: no page is open.
        let _ = self.events.send(status);
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<FileHash, (RoomId, CancellationToken)>> {
        // A panic while holding the lock leaves a stale entry at worst: go on.
        self.downloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
