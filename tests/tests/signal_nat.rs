//! libp2p signaling across NATs (issue 13, item 2), in the network lab: a bootstrap node on the
//! public segment offering the relay service, and pairs of nodes in two different homes. Each
//! home node must find itself private (AutoNAT), take a relay circuit (never announcing its
//! private address as external), find its partner through the bootstrap's DHT, and get a
//! signaling answer from it. Between port-preserving NATs DCUtR must then make the connection
//! direct; between symmetric NATs signaling must work over the circuit.
//!
//! The nodes are in-process `NetActor`s, each on a thread inside its host's namespace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chroom_net::{
    KadMode, Keypair, Multiaddr, NetActor, NetConfig, NetEvent, NetHandle, PeerId, Presence,
    Reachability,
};
use chroom_proto::{SignalRequest, SignalResponse};
use chroom_tests::lab::{Host, Lab, Nat};
use chroom_tests::{eventually, init_tracing};
use chroom_types::RoomName;
use tokio_util::sync::CancellationToken;

const P2P_PORT: u16 = 4001;

/// What a node reported, for the test to poll.
#[derive(Debug, Default)]
struct Seen {
    reachability: Option<Reachability>,
    external: Vec<Multiaddr>,
    /// Outcome of hole punching per peer: `Ok` direct, `Err` why not.
    hole_punch: HashMap<PeerId, Result<(), String>>,
}

/// A `NetActor` running in a lab host, answering every `Hello` with its own.
struct LabNode {
    handle: NetHandle,
    seen: Arc<Mutex<Seen>>,
    thread: JoinHandle<()>,
}

impl LabNode {
    fn start(lab: &Lab, host: &Host, config: NetConfig, shutdown: CancellationToken) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let node_seen = seen.clone();
        let thread = lab.spawn_in(&host.ns, move || async move {
            let (events_tx, mut events) = tokio::sync::mpsc::channel(64);
            let (actor, handle) =
                NetActor::new(Keypair::generate_ed25519(), config, events_tx).expect("net starts");
            handle_tx.send(handle.clone()).expect("test waits");
            let run = tokio::spawn(actor.run(shutdown.clone()));
            while let Some(event) = tokio::select! {
                () = shutdown.cancelled() => None,
                event = events.recv() => event,
            } {
                record(&handle, &node_seen, event).await;
            }
            let _ = run.await;
        });
        let handle = handle_rx.recv().expect("the node started");
        Self {
            handle,
            seen,
            thread,
        }
    }

    fn peer_id(&self) -> PeerId {
        self.handle.peer_id()
    }

    fn seen<T>(&self, look: impl FnOnce(&Seen) -> T) -> T {
        look(&self.seen.lock().unwrap())
    }
}

async fn record(handle: &NetHandle, seen: &Mutex<Seen>, event: NetEvent) {
    match event {
        NetEvent::SignalRequest { reply, request, .. } => {
            let response = match request {
                SignalRequest::Hello { .. } => SignalResponse::Hello { binding: None },
                _ => SignalResponse::Ack,
            };
            let _ = handle.respond(reply, response).await;
        }
        NetEvent::ReachabilityChanged {
            reachability,
            external,
        } => {
            let mut seen = seen.lock().unwrap();
            seen.reachability = Some(reachability);
            seen.external = external;
        }
        NetEvent::HolePunched { peer } => {
            seen.lock().unwrap().hole_punch.insert(peer, Ok(()));
        }
        NetEvent::HolePunchFailed { peer, reason } => {
            seen.lock().unwrap().hole_punch.insert(peer, Err(reason));
        }
        _ => {}
    }
}

/// A node config as a lab host would have it: TCP and QUIC on every address, AutoNAT counting
/// the lab's private addresses and probing soon, the DHT following reachability.
fn config(bootstrap: &[Multiaddr], relay_service: bool) -> NetConfig {
    NetConfig {
        listen: vec![
            format!("/ip4/0.0.0.0/tcp/{P2P_PORT}").parse().unwrap(),
            format!("/ip4/0.0.0.0/udp/{P2P_PORT}/quic-v1")
                .parse()
                .unwrap(),
        ],
        bootstrap: bootstrap.to_vec(),
        kad_mode: KadMode::Auto,
        relay_service,
        reachability_probe_delay: Duration::from_secs(1),
        reachability_probe_interval: Duration::from_secs(3),
        provide_retry_interval: Duration::from_millis(500),
        ..NetConfig::default()
    }
}

fn is_circuit(addr: &Multiaddr) -> bool {
    addr.to_string().contains("/p2p-circuit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_crosses_nats_direct_where_possible_relayed_otherwise() {
    init_tracing();
    let started = Instant::now();
    let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    let shutdown = CancellationToken::new();
    let boot_host = lab.public_host("boot").unwrap();
    let boot = LabNode::start(&lab, &boot_host, config(&[], true), shutdown.clone());
    // Both transports, so identify observes both mappings and DCUtR can punch with QUIC: the
    // lab's routers answer a stray TCP SYN with a reset, so a TCP simultaneous open only wins
    // when both SYNs cross in flight, while a QUIC Initial is simply sent again.
    let bootstrap: Vec<Multiaddr> = [
        format!("/ip4/{}/tcp/{P2P_PORT}", boot_host.addr),
        format!("/ip4/{}/udp/{P2P_PORT}/quic-v1", boot_host.addr),
    ]
    .iter()
    .map(|addr| format!("{addr}/p2p/{}", boot.peer_id()).parse().unwrap())
    .collect();

    let mut pairs = Vec::new();
    for (name, nat) in [("kept", Nat::PortPreserving), ("random", Nat::Symmetric)] {
        let mut nodes = Vec::new();
        for side in ["a", "b"] {
            let mut home = lab.home(&format!("{name}-{side}"), nat).unwrap();
            let host = lab
                .home_host(&mut home, &format!("{name}-{side}-n"))
                .unwrap();
            let node = LabNode::start(&lab, &host, config(&bootstrap, false), shutdown.clone());
            nodes.push(node);
        }
        pairs.push((name, nat, nodes));
    }

    eventually(
        Duration::from_secs(20),
        "the bootstrap node public",
        || async { (boot.seen(|s| s.reachability) == Some(Reachability::Public)).then_some(()) },
    )
    .await;
    for (name, _, nodes) in &pairs {
        for node in nodes {
            let external = eventually(
                Duration::from_secs(20),
                &format!("a {name} home node private, with a relay circuit"),
                || async {
                    node.seen(|s| {
                        (s.reachability == Some(Reachability::Private)
                            && s.external.iter().any(is_circuit))
                        .then(|| s.external.clone())
                    })
                },
            )
            .await;
            // Only circuits: the private listen address (10.78.x) and the NAT's mapping were
            // never confirmed as reachable.
            assert!(
                external.iter().all(is_circuit),
                "a node behind NAT confirmed {external:?}"
            );
        }
    }
    println!("reachability settled after {:?}", started.elapsed());

    let mut report = Vec::new();
    for (name, nat, nodes) in &pairs {
        let (a, b) = (&nodes[0], &nodes[1]);
        let room = format!("nat-{name}").parse::<RoomName>().unwrap().id();
        a.handle.join_room(room, Presence::Member).await.unwrap();
        b.handle.join_room(room, Presence::Member).await.unwrap();
        eventually(
            Duration::from_secs(15),
            &format!("the {name} pair finding each other through the bootstrap"),
            || async {
                let found = a.handle.find_providers(room, Presence::Member).await.ok()?;
                found.contains(&b.peer_id()).then_some(())
            },
        )
        .await;
        let hello = SignalRequest::Hello { binding: None };
        let response = eventually(
            Duration::from_secs(15),
            &format!("a signaling answer across the {name} NATs"),
            || async { a.handle.request(b.peer_id(), hello.clone()).await.ok() },
        )
        .await;
        assert!(
            matches!(response, SignalResponse::Hello { .. }),
            "unexpected answer {response:?}"
        );
        let first_path = a.handle.connection_addrs(b.peer_id()).await.unwrap();
        println!("{name}: first answer over {first_path:?}");

        match nat {
            Nat::PortPreserving => {
                eventually(
                    Duration::from_secs(20),
                    "a direct connection punched between port-preserving NATs",
                    || async {
                        let addrs = a.handle.connection_addrs(b.peer_id()).await.ok()?;
                        addrs.iter().any(|addr| !is_circuit(addr)).then_some(())
                    },
                )
                .await;
                // Both sides run DCUtR; one side's attempt may lose the race to the other's
                // (and report a failure) while the other's succeeds.
                let outcomes = [
                    a.seen(|s| s.hole_punch.get(&b.peer_id()).cloned()),
                    b.seen(|s| s.hole_punch.get(&a.peer_id()).cloned()),
                ];
                assert!(
                    outcomes.contains(&Some(Ok(()))),
                    "DCUtR reported no punched connection: {outcomes:?}"
                );
                let again = a.handle.request(b.peer_id(), hello.clone()).await.unwrap();
                assert!(matches!(again, SignalResponse::Hello { .. }));
                report.push(format!("{name}: direct (DCUtR)"));
            }
            _ => {
                // The answer above came over the circuit: symmetric NATs leave no direct path.
                assert!(
                    first_path.iter().all(is_circuit),
                    "symmetric NATs connected directly: {first_path:?}"
                );
                report.push(format!("{name}: relayed through the bootstrap's circuit"));
            }
        }
    }
    for line in &report {
        println!("{line}");
    }
    println!("took {:?}", started.elapsed());

    shutdown.cancel();
    let nodes = pairs.into_iter().flat_map(|(_, _, nodes)| nodes);
    for node in std::iter::once(boot).chain(nodes) {
        node.thread.join().expect("a node thread ended cleanly");
    }
    drop(lab);
}
