//! The registry actor: runs the [`Follower`] core against the chain and the store.
//!
//! Each follower output becomes one RPC call (bounded by a timeout, so an unreachable endpoint
//! is an error, not a hang); results go back into the follower. Committed facts are written to
//! the store together with the cursor before the node hears of them, so a crash never leaves
//! the node believing facts its store does not hold. On start the cache is replayed to the
//! node at once: during an outage the node serves from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chroom_room::follower::{Follower, FollowerConfig, FollowerOutput, Freshness};
use chroom_store::{AccessRecord, Store};
use chroom_types::{Account, RoomId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::{AccessRead, RegistryClient};

/// Longest an RPC call may take before it counts as failed.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// What the registry actor reports to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryEvent {
    /// Facts about `account` in `room` (from the cache at start, a lookup, or a change).
    Facts {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
        /// What the registry says.
        read: AccessRead,
        /// The block it was read at.
        block: u64,
    },
    /// The cache stopped or started matching the chain.
    Freshness(Freshness),
    /// The facts of `account` in `room` are no longer followed (too many pairs are): drop
    /// them; the next need looks them up again.
    Forgotten {
        /// The room.
        room: RoomId,
        /// The account.
        account: Account,
    },
}

/// What a registry actor has done so far, for metrics: monotonic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Lookups the node asked for (an account not yet known in a room).
    pub lookups_requested: u64,
    /// Lookups dropped because the actor's inbox was full (the room core's timeout answers).
    pub lookups_dropped: u64,
    /// Facts read from the chain (`access` calls answered), for lookups and changes.
    pub facts_read: u64,
    /// RPC calls that failed or timed out.
    pub rpc_errors: u64,
    /// The latest chain head the actor read (0 before the first).
    pub head_block: u64,
}

/// The actor's counters, shared with its handles: atomics, so reading them never waits for
/// the actor (which may sit in an RPC call for seconds).
#[derive(Debug, Default)]
struct SharedStats {
    lookups_requested: AtomicU64,
    lookups_dropped: AtomicU64,
    facts_read: AtomicU64,
    rpc_errors: AtomicU64,
    head_block: AtomicU64,
}

/// Handle to a running [`RegistryActor`].
#[derive(Debug, Clone)]
pub struct RegistryHandle {
    lookups: mpsc::Sender<(RoomId, Account)>,
    stats: Arc<SharedStats>,
}

impl RegistryHandle {
    /// Asks for the facts of `account` in `room`; they arrive as a [`RegistryEvent::Facts`].
    /// Never blocks: when the inbox is full the request is dropped and the room core's lookup
    /// timeout answers the waiting request.
    pub fn lookup(&self, room: RoomId, account: Account) {
        self.stats.lookups_requested.fetch_add(1, Ordering::Relaxed);
        if self.lookups.try_send((room, account)).is_err() {
            self.stats.lookups_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(room = %room.fmt_short(), %account, "registry lookup queue full");
        }
    }

    /// The actor's counters so far.
    pub fn stats(&self) -> RegistryStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RegistryStats {
            lookups_requested: read(&self.stats.lookups_requested),
            lookups_dropped: read(&self.stats.lookups_dropped),
            facts_read: read(&self.stats.facts_read),
            rpc_errors: read(&self.stats.rpc_errors),
            head_block: read(&self.stats.head_block),
        }
    }
}

/// Follows the registry for one node.
#[derive(Debug)]
pub struct RegistryActor {
    client: RegistryClient,
    store: Arc<Store>,
    follower: Follower<AccessRead>,
    lookups: mpsc::Receiver<(RoomId, Account)>,
    events: mpsc::Sender<RegistryEvent>,
    stats: Arc<SharedStats>,
}

impl RegistryActor {
    /// An actor resuming from the store's cursor and cache.
    pub fn new(
        client: RegistryClient,
        store: Arc<Store>,
        config: FollowerConfig,
        events: mpsc::Sender<RegistryEvent>,
    ) -> Result<(Self, RegistryHandle), chroom_store::StoreError> {
        let cursor = store.registry_cursor()?;
        let cached = store.all_access()?;
        let follower = Follower::new(
            config,
            Instant::now(),
            cursor,
            cached.iter().map(|(room, account, _)| (*room, *account)),
        );
        let (tx, rx) = mpsc::channel(256);
        let stats = Arc::new(SharedStats::default());
        Ok((
            Self {
                client,
                store,
                follower,
                lookups: rx,
                events,
                stats: stats.clone(),
            },
            RegistryHandle { lookups: tx, stats },
        ))
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let span = tracing::info_span!("registry", address = %self.client.address());
        async move {
            // Serve the cache at once: during an outage it is all the node has.
            match self.store.all_access() {
                Ok(cached) => {
                    for (room, account, record) in cached {
                        self.emit_record(room, account, record).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the registry cache"),
            }
            loop {
                self.drive().await;
                let deadline = self
                    .follower
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    Some((room, account)) = self.lookups.recv() => {
                        self.follower.lookup(Instant::now(), room, account);
                    }
                    () = tokio::time::sleep_until(deadline.into()) => {
                        self.follower.handle_timeout(Instant::now());
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Carries out follower outputs until it has none.
    async fn drive(&mut self) {
        while let Some(output) = self.follower.poll_output() {
            match output {
                FollowerOutput::FetchHead => match timed(self.client.head()).await {
                    Ok(head) => {
                        self.stats.head_block.store(head, Ordering::Relaxed);
                        self.follower.handle_head(Instant::now(), head);
                    }
                    Err(e) => self.rpc_failed("head", &e),
                },
                FollowerOutput::FetchChanges { from, to } => {
                    match timed(self.client.changes(from, to)).await {
                        Ok(changes) => self.follower.handle_changes(Instant::now(), &changes),
                        Err(e) => self.rpc_failed("logs", &e),
                    }
                }
                FollowerOutput::ReadFacts {
                    room,
                    account,
                    block,
                } => match timed(self.client.access(room, account, block)).await {
                    Ok(read) => {
                        self.stats.facts_read.fetch_add(1, Ordering::Relaxed);
                        self.follower
                            .handle_facts(Instant::now(), room, account, block, read);
                    }
                    Err(e) => self.rpc_failed("access", &e),
                },
                FollowerOutput::Commit { facts, cursor } => {
                    let records: Vec<_> = facts
                        .iter()
                        .map(|(room, account, read, block)| {
                            (*room, *account, record(*read, *block))
                        })
                        .collect();
                    let store = self.store.clone();
                    let write = {
                        let records = records.clone();
                        tokio::task::spawn_blocking(move || store.apply_registry(&records, cursor))
                    };
                    match write.await {
                        Ok(Ok(())) => {}
                        // The cursor in the store stays behind: a restart re-reads this range.
                        Ok(Err(e)) => tracing::error!(error = %e, "cannot persist registry facts"),
                        Err(e) => tracing::error!(error = %e, "registry store task failed"),
                    }
                    for (room, account, record) in records {
                        self.emit_record(room, account, record).await;
                    }
                }
                FollowerOutput::Facts {
                    room,
                    account,
                    facts,
                    block,
                } => {
                    let record = record(facts, block);
                    let store = self.store.clone();
                    let records = vec![(room, account, record)];
                    let _ = tokio::task::spawn_blocking(move || store.cache_access(&records)).await;
                    self.emit_record(room, account, record).await;
                }
                FollowerOutput::Freshness(freshness) => {
                    match freshness {
                        Freshness::Stale { since } => tracing::warn!(
                            stale_for = ?since.elapsed(),
                            "registry unreachable: serving cached memberships"
                        ),
                        Freshness::Fresh => tracing::info!("registry reachable again"),
                    }
                    let _ = self.events.send(RegistryEvent::Freshness(freshness)).await;
                }
                FollowerOutput::Forget { room, account } => {
                    let store = self.store.clone();
                    let forget = move || store.forget_access(&[(room, account)]);
                    match tokio::task::spawn_blocking(forget).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "cannot drop registry facts"),
                        Err(e) => tracing::error!(error = %e, "registry store task failed"),
                    }
                    let _ = self
                        .events
                        .send(RegistryEvent::Forgotten { room, account })
                        .await;
                }
                _ => {}
            }
        }
    }

    fn rpc_failed(&mut self, what: &str, error: &crate::RegistryError) {
        tracing::debug!(call = what, %error, "registry rpc failed");
        self.stats.rpc_errors.fetch_add(1, Ordering::Relaxed);
        self.follower.handle_rpc_error(Instant::now());
    }

    async fn emit_record(&self, room: RoomId, account: Account, record: AccessRecord) {
        let read = AccessRead {
            room_kind: record.room_kind,
            membership: record.membership,
            relayer: record.relayer,
            room_policy: record.room_policy,
        };
        let event = RegistryEvent::Facts {
            room,
            account,
            read,
            block: record.block,
        };
        // The node stopping its receiver means it is shutting down.
        let _ = self.events.send(event).await;
    }
}

fn record(read: AccessRead, block: u64) -> AccessRecord {
    AccessRecord {
        room_kind: read.room_kind,
        membership: read.membership,
        relayer: read.relayer,
        room_policy: read.room_policy,
        block,
    }
}

async fn timed<T>(
    call: impl Future<Output = Result<T, crate::RegistryError>>,
) -> Result<T, crate::RegistryError> {
    tokio::time::timeout(RPC_TIMEOUT, call)
        .await
        .map_err(|_| crate::RegistryError::Rpc(format!("no answer within {RPC_TIMEOUT:?}")))?
}
