//! Network configuration.

use std::time::Duration;

use libp2p::Multiaddr;

/// Kademlia mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KadMode {
    /// Follow reachability: serve the DHT while AutoNAT says this node is publicly reachable,
    /// only query while it is private or unknown (public deployments).
    Auto,
    /// Only query; never store records for others (nodes behind NAT).
    Client,
    /// Answer queries and store records. The default: on a LAN or loopback no external address
    /// is ever confirmed, so `Auto` would leave every node a client and the DHT empty.
    #[default]
    Server,
}

/// Configuration of the libp2p driver.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on. Default: TCP and QUIC on 127.0.0.1, any port.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, ideally with a trailing `/p2p/<PeerId>`. Default none.
    pub bootstrap: Vec<Multiaddr>,
    /// Kademlia mode. Default [`KadMode::Server`].
    pub kad_mode: KadMode,
    /// How long a signaling request may take end to end. Default 10 s.
    pub signal_timeout: Duration,
    /// Idle connections are closed after this. Default 60 s.
    pub idle_connection_timeout: Duration,
    /// How often providing a room is retried while the DHT had no peers. Default 2 s.
    pub provide_retry_interval: Duration,
    /// Serve circuit relay v2 reservations so nodes behind NATs can be reached through this
    /// node (signaling only: circuits are capped, see the `nat` module). For nodes on a public
    /// address: bootstrap nodes and relayers. Default false. The relay is advertised once
    /// AutoNAT has confirmed this node's address (a reservation must name it), and from then on.
    pub relay_service: bool,
    /// Count private addresses (RFC 1918, loopback) as reachable in AutoNAT probes, both as
    /// client and as server. Default false: a peer on the same LAN can reach a private address,
    /// so it would wrongly confirm a node behind NAT as public (two nodes behind one home router
    /// would confirm each other). LAN-only setups turn it on.
    pub allow_private_addresses: bool,
    /// When the first AutoNAT probe is sent. Default 3 s: a node behind NAT is unreachable
    /// (no relay circuit) until it knows, and a user starting a call will not wait libp2p's
    /// 15 s; identify has reported the observed addresses from the bootstrap by then.
    pub reachability_probe_delay: Duration,
    /// How often AutoNAT probes again while unsure (a confirmed verdict is re-checked every
    /// 15 min). Default 90 s.
    pub reachability_probe_interval: Duration,
    /// A node that is still not known to be reachable this long after start reserves a relay
    /// circuit anyway (AutoNAT may have no server to ask, and its first verdict took over 10 s
    /// in the lab). Default 2 s: until it holds a circuit, a node behind NAT cannot be reached
    /// at all, while a public node's needless reservation costs little and is dropped once
    /// AutoNAT confirms it.
    pub relay_fallback_after: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().expect("static multiaddr"),
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("static multiaddr"),
            ],
            bootstrap: Vec::new(),
            kad_mode: KadMode::Server,
            signal_timeout: Duration::from_secs(10),
            idle_connection_timeout: Duration::from_secs(60),
            provide_retry_interval: Duration::from_secs(2),
            relay_service: false,
            allow_private_addresses: false,
            reachability_probe_delay: Duration::from_secs(3),
            reachability_probe_interval: Duration::from_secs(90),
            relay_fallback_after: Duration::from_secs(2),
        }
    }
}
