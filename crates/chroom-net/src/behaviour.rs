//! The composed libp2p behaviour: one field per protocol Chroom speaks.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, gossipsub, identify, identity::Keypair, kad, ping, request_response};

use crate::config::{KadMode, NetConfig};
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
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, config: &NetConfig) -> Result<Self, String> {
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
            KadMode::Auto => None,
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

        Ok(Self {
            kad,
            gossipsub,
            identify,
            ping: ping::Behaviour::default(),
            signal,
        })
    }
}
