//! `chroom bench flood`: a flood of fresh accounts asking a node to join a members-only room,
//! against the same node's quiet state in one run: the chain RPC rate it causes, the memory it
//! leaves, and how long an honest member's join takes meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy::primitives::keccak256;
use alloy::signers::local::PrivateKeySigner;
use chroom_net::signal::{Frame, PROTOCOL, SignalCodec};
use chroom_net::{Multiaddr, PeerId};
use chroom_proto::{ErrorCode, SignalRequest, SignalResponse, decode_response, encode_request};
use chroom_types::{Role, RoomId};
use futures::StreamExt;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chain::BenchChain;
use super::*;

/// What the flood is set to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FloodPlan {
    /// Fresh accounts, one request each.
    pub(crate) accounts: usize,
    /// Spread over this long.
    pub(crate) over: Duration,
    /// Connections they come over (each its own PeerId).
    pub(crate) clients: usize,
}

/// Runs [`flood_once`] for each `[registry] new_accounts_per_second` in `limits` (a high one
/// stands for the node before the limit existed), each on a fresh chain and node.
pub(crate) async fn flood(
    anvil_path: &Path,
    source: &MediaSource,
    plan: FloodPlan,
    limits: &[u32],
) -> anyhow::Result<()> {
    for limit in limits {
        println!("== new_accounts_per_second = {limit}");
        flood_once(anvil_path, source, plan, *limit).await?;
    }
    Ok(())
}

/// Starts a publisher on a local anvil, reached through a proxy that counts RPC requests, then
/// times an honest member's join, floods it with `plan`, and times another member's join in
/// the middle of the flood.
async fn flood_once(
    anvil_path: &Path,
    source: &MediaSource,
    plan: FloodPlan,
    limit: u32,
) -> anyhow::Result<()> {
    let chain = BenchChain::start(anvil_path, "bench-flood").await?;
    for member in [2, 3] {
        chain.grant(member, Role::Listener).await?;
    }
    let proxy = CountingProxy::start(chain.anvil.port()).await?;
    let mut config = chain.node_config(1, "publisher", Some(proxy.url()))?;
    if let Some(registry) = &mut config.registry {
        registry.new_accounts_per_second = limit;
    }
    let publisher = RunningNode::start(config).await?;
    let room = chain.room;
    publisher
        .join(room, Participation::Publish(source.kinds()))
        .await?;
    let bootstrap = publisher.listen_addrs().await?;

    let measure = async {
        let quiet_rps = proxy.rate_over(Duration::from_secs(3)).await;
        let rss_before = rss_kib()?;
        let quiet_join = member_join(&chain, 2, &bootstrap).await?;
        let stats_before = publisher.stats().await?;

        let target = (publisher.peer_id(), bootstrap[0].clone());
        let started = Instant::now();
        let flood = run_flood(target, room, plan);
        let mid_join = async {
            tokio::time::sleep(plan.over / 2).await;
            member_join(&chain, 3, &bootstrap).await
        };
        let sampling = proxy.sample_per_second(plan.over);
        let (tally, mid_join, per_second) = tokio::join!(flood, mid_join, sampling);
        let (tally, mid_join) = (tally?, mid_join?);
        let flood_took = started.elapsed();
        let rss_after = rss_kib()?;
        let stats = publisher.stats().await?;

        println!(
            "flood: {} fresh accounts over {:.1} s from {} connections",
            tally.sent,
            flood_took.as_secs_f64(),
            plan.clients
        );
        println!(
            "  answers: {} refused as non-members (looked up), {} refused as overloaded \
             (throttled), {} unavailable, {} other, {} lost",
            tally.not_member, tally.overloaded, tally.unavailable, tally.other, tally.lost
        );
        println!(
            "  node: {} lookups throttled, {} requests refused",
            stats.lookups_throttled,
            stats.requests_refused - stats_before.requests_refused
        );
        let max_rps = per_second.iter().copied().max().unwrap_or(0);
        let mean_rps = per_second.iter().sum::<u64>() as f64 / per_second.len().max(1) as f64;
        println!(
            "  chain RPC: quiet {quiet_rps:.1} req/s; during the flood mean {mean_rps:.1} req/s, \
             max {max_rps} req/s in one second"
        );
        println!(
            "  memory: RSS {} MiB before, {} MiB after ({:+} MiB; the flood's clients included); \
             {} peers with a proven account held after",
            rss_before / 1024,
            rss_after / 1024,
            (rss_after as i64 - rss_before as i64) / 1024,
            stats.peers_with_accounts
        );
        println!(
            "  honest member, join -> first frame: quiet {} ms, during the flood {} ms",
            quiet_join.as_millis(),
            mid_join.as_millis()
        );
        anyhow::Ok(())
    };
    let result = while_publishing(&publisher, source, measure).await;
    publisher.shutdown().await;
    result
}

/// Starts a node for member account `i`, times its join to its first frame, and stops it.
async fn member_join(
    chain: &BenchChain,
    i: usize,
    bootstrap: &[Multiaddr],
) -> anyhow::Result<Duration> {
    let mut config = chain.node_config(i, &format!("member-{i}"), None)?;
    config.net.bootstrap = bootstrap.to_vec();
    let started = Instant::now();
    let mut member = RunningNode::start(config).await?;
    let mut frames = member.take_frames().context("frames")?;
    member
        .join(chain.room, Participation::Receive(vec![MediaKind::Video]))
        .await?;
    tokio::time::timeout(Duration::from_secs(60), frames.recv())
        .await
        .context("the member received nothing in 60 s")?;
    let took = started.elapsed();
    member.shutdown().await;
    Ok(took)
}

/// How the flood's requests were answered.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    not_member: u64,
    overloaded: u64,
    unavailable: u64,
    other: u64,
    lost: u64,
}

impl Tally {
    fn add(&mut self, other: &Self) {
        self.sent += other.sent;
        self.not_member += other.not_member;
        self.overloaded += other.overloaded;
        self.unavailable += other.unavailable;
        self.other += other.other;
        self.lost += other.lost;
    }
}

async fn run_flood(
    (target, addr): (PeerId, Multiaddr),
    room: RoomId,
    plan: FloodPlan,
) -> anyhow::Result<Tally> {
    let per_client = plan.accounts.div_ceil(plan.clients);
    let gap = plan.over.mul_f64(1.0 / per_client.max(1) as f64);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..plan.clients {
        let first = client * per_client;
        let accounts = first..(first + per_client).min(plan.accounts);
        clients.spawn(flood_client(target, addr.clone(), room, accounts, gap));
    }
    let mut tally = Tally::default();
    while let Some(done) = clients.join_next().await {
        tally.add(&done??);
    }
    Ok(tally)
}

/// One connection asking to subscribe once per fresh account in `accounts`, every `gap`.
async fn flood_client(
    target: PeerId,
    addr: Multiaddr,
    room: RoomId,
    accounts: std::ops::Range<usize>,
    gap: Duration,
) -> anyhow::Result<Tally> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|_| {
            request_response::Behaviour::<SignalCodec>::new(
                [(PROTOCOL, request_response::ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.dial(addr)?;
    let me = swarm.local_peer_id().to_base58();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let mut tally = Tally::default();
    let mut next = tokio::time::Instant::now();
    let mut in_flight = 0usize;
    let mut accounts = accounts.peekable();
    loop {
        if accounts.peek().is_none() && in_flight == 0 {
            return Ok(tally);
        }
        tokio::select! {
            () = tokio::time::sleep_until(next), if accounts.peek().is_some() => {
                let n = accounts.next().expect("peeked");
                let key = keccak256(format!("chroom bench flood {n}"));
                let signer = PrivateKeySigner::from_bytes(&key)?;
                let binding = chroom_registry::sign(&signer, &me, expires)?;
                let request = SignalRequest::Subscribe {
                    room,
                    offer_sdp: String::new(),
                    binding: Some(binding),
                };
                swarm
                    .behaviour_mut()
                    .send_request(&target, Frame::Payload(encode_request(&request)));
                tally.sent += 1;
                in_flight += 1;
                next += gap;
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    in_flight -= 1;
                    let answer = match response {
                        Frame::Payload(bytes) => decode_response(&bytes).ok(),
                        _ => None,
                    };
                    match answer {
                        Some(SignalResponse::Error(e)) if e.code == ErrorCode::NotAuthorized => {
                            tally.not_member += 1;
                        }
                        Some(SignalResponse::Error(e)) if e.code == ErrorCode::Overloaded => {
                            tally.overloaded += 1;
                        }
                        Some(SignalResponse::Error(e)) if e.code == ErrorCode::Unavailable => {
                            tally.unavailable += 1;
                        }
                        _ => tally.other += 1,
                    }
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                    in_flight -= 1;
                    tally.lost += 1;
                }
                _ => {}
            },
        }
    }
}

/// A TCP proxy in front of the chain RPC that counts the HTTP requests passing through it.
struct CountingProxy {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream_port: u16) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let upstream = ("127.0.0.1", upstream_port);
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = client_read.read(&mut buf).await?;
                            if n == 0 {
                                return std::io::Result::Ok(());
                            }
                            // Each JSON-RPC call is one HTTP POST; bodies never hold this.
                            let posts = buf[..n].windows(5).filter(|w| w == b"POST ").count();
                            counter.fetch_add(posts as u64, Ordering::Relaxed);
                            server_write.write_all(&buf[..n]).await?;
                        }
                    };
                    let down = tokio::io::copy(&mut server_read, &mut client_write);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests per second over `window`.
    async fn rate_over(&self, window: Duration) -> f64 {
        let before = self.requests.load(Ordering::Relaxed);
        tokio::time::sleep(window).await;
        (self.requests.load(Ordering::Relaxed) - before) as f64 / window.as_secs_f64()
    }

    /// Requests in each second of `window`.
    async fn sample_per_second(&self, window: Duration) -> Vec<u64> {
        let mut samples = Vec::new();
        let mut last = self.requests.load(Ordering::Relaxed);
        for _ in 0..window.as_secs().max(1) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.requests.load(Ordering::Relaxed);
            samples.push(now - last);
            last = now;
        }
        samples
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// This process's resident memory, KiB.
fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}
