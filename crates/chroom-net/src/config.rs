//! Network configuration.

use std::time::Duration;

use libp2p::Multiaddr;

/// Kademlia mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KadMode {
    /// Let libp2p decide from confirmed external addresses (public deployments).
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
        }
    }
}
