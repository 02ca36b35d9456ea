//! The composed libp2p behaviour: one field per protocol Chroom speaks.

use std::time::Duration;

use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{
    StreamProtocol, autonat, dcutr, gossipsub, identify, identity::Keypair, kad, ping, relay,
    request_response,
};

use crate::config::{KadMode, NetConfig};
use crate::nat;
use crate::signal::{PROTOCOL as SIGNAL_PROTOCOL, SignalCodec};
use crate::{IDENTIFY_PROTOCOL, KAD_PROTOCOL};

/// How long a provider record of a room lives without being republished.
const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(10 * 60);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) signal: request_response::Behaviour<SignalCodec>,
    /// Reachability: probes this node's addresses and dials back other nodes' (see [`nat`]).
    pub(crate) autonat: autonat::Behaviour,
    /// Reservations on relays and circuits through them, for nodes behind NAT.
    pub(crate) relay_client: relay::client::Behaviour,
    /// Hole punching: replaces a relayed connection with a direct one where the NATs allow.
    pub(crate) dcutr: dcutr::Behaviour,
    /// Circuit relay v2 service, on nodes configured to offer it.
    pub(crate) relay: Toggle<relay::Behaviour>,
}

impl Behaviour {
    pub(crate) fn new(
        key: &Keypair,
        config: &NetConfig,
        relay_client: relay::client::Behaviour,
    ) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();

        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_config.set_query_timeout(Duration::from_secs(30));
        // Room membership changes by the minute, not by the day: records of a node that left
        // without a word expire within minutes (libp2p's defaults are 24 h and 12 h).
        kad_config.set_provider_record_ttl(Some(PROVIDER_RECORD_TTL));
        kad_config.set_provider_publication_interval(Some(PROVIDER_RECORD_TTL / 2));
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        kad.set_mode(match config.kad_mode {
            // Not libp2p's own auto mode: a relay reservation confirms the circuit address as
            // external, which would make a node behind NAT a DHT server. The actor follows
            // AutoNAT instead, starting as a client until a probe says otherwise.
            KadMode::Auto => Some(kad::Mode::Client),
            KadMode::Client => Some(kad::Mode::Client),
            KadMode::Server => Some(kad::Mode::Server),
        });

        let gossipsub_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            // Nothing is forwarded before the node has checked its author against the registry.
            .validate_messages()
            .max_transmit_size(64 * 1024)
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub_config,
        )
        .map_err(|e| format!("gossipsub: {e}"))?;

        let identify = identify::Behaviour::new(identify::Config::new(
            IDENTIFY_PROTOCOL.into(),
            key.public(),
        ));

        let signal = request_response::Behaviour::new(
            [(SIGNAL_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(config.signal_timeout),
        );

        let relay = config
            .relay_service
            .then(|| relay::Behaviour::new(peer_id, nat::relay_server_config()));

        Ok(Self {
            kad,
            gossipsub,
            identify,
            ping: ping::Behaviour::default(),
            signal,
            autonat: autonat::Behaviour::new(peer_id, nat::autonat_config(config)),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            relay: relay.into(),
        })
    }
}
