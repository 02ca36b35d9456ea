//! What the real node spends on each step of joining and repairing a broadcast tree, taken from
//! the network lab and from the node's own code, so the simulation's times are the times a
//! viewer would see rather than the tree algorithm's alone.
//!
//! Every default below says where it comes from. Measured figures are from the NAT lab
//! (`tests/tests/nat.rs`, `docs/NETWORK.md`); timeouts are the node's defaults, read from the
//! code named next to each. What the model leaves out is listed at [`CostModel`].

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What sits in front of a member's UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nat {
    /// A public address (or a NAT the node can open, as UPnP): reachable by anyone.
    Public,
    /// Endpoint-independent mapping, address-dependent filtering (nftables `masquerade`):
    /// the server-reflexive candidate works once both sides' checks opened the mapping.
    PortPreserving,
    /// A new mapping per destination (`masquerade random,fully-random`): its reflexive address
    /// is of no use to anyone else.
    Symmetric,
}

/// Shares of a population behind each kind of NAT; the rest is [`Nat::Symmetric`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NatMix {
    /// Share with a public address.
    pub public: f64,
    /// Share behind a port-preserving NAT.
    pub port_preserving: f64,
}

impl NatMix {
    /// Draws one member's NAT.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> Nat {
        let x: f64 = rng.random_range(0.0..1.0);
        if x < self.public {
            Nat::Public
        } else if x < self.public + self.port_preserving {
            Nat::PortPreserving
        } else {
            Nat::Symmetric
        }
    }
}

/// How a media link between two members is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Straight between the two sockets (ICE found a pair).
    Direct,
    /// Through a volunteer relayer's TURN-style allocation.
    Relayed,
}

/// The node's costs and timeouts, as the simulator charges them.
///
/// Not modelled: finding the root (Kademlia provider lookup) and the libp2p connection to each
/// peer (assumed open: signaling rides existing connections or circuits), the registry's lookup
/// rate limits (`LookupLimits`: the report counts how many lookups the root would have had to
/// make per second), CPU and bandwidth of relayers, packet loss.
#[derive(Debug, Clone)]
pub struct CostModel {
    /// NATs of viewers (home users). Default 20 % public, 60 % port-preserving, 20 %
    /// symmetric: an assumption (no field data yet) that leans pessimistic on symmetric NATs,
    /// which carrier-grade NATs on mobile networks usually are.
    pub viewer_nat: NatMix,
    /// NATs of relayers. Default 80 % public, 20 % port-preserving, no symmetric: a relayer
    /// volunteers upload and answers STUN for others, which a symmetric NAT would defeat.
    pub relayer_nat: NatMix,
    /// Offer made to link connected, at LAN speed, when nothing drops the first checks: the
    /// offerer (the child) is public. Uniform in this range; default 30–100 ms. Measured in the
    /// NAT lab (`nat-bench`, its `NAT_BENCH_LOGS` node logs, 2 runs per cell): public → public
    /// 31 ms from offer to connected; answer to connected 52–53 ms with a home publisher and a
    /// public recorder.
    pub link_setup: (Duration, Duration),
    /// Round trips added to a link's setup on top of the lab's figure, which was taken at
    /// LAN round trip times: the offer and answer over signaling (1), ICE's connectivity
    /// check (1) and the DTLS handshake (2). Default 4.
    pub link_setup_round_trips: u32,
    /// Added when the offerer is behind a NAT: the answerer's first check is dropped until
    /// the offerer's own check opened the mapping, and the retransmit follows after ICE's
    /// initial RTO (str0m's `is` 0.12 `StunTiming`: 250 ms; its nominated check does not jump
    /// that timer). Measured (`nat-bench` node logs): answer to connected 301–303 ms in every
    /// lab cell whose recorder sits behind a NAT, against 52 ms the other way round.
    pub hole_punch_wait: Duration,
    /// Extra round trips of a relayed link's setup: the relayer's hop. Default 2 (the
    /// allocation itself is made when the node starts).
    pub relay_round_trips: u32,
    /// One registry RPC round trip, uniform in this range. Default 20–80 ms (a hosted EVM RPC
    /// endpoint).
    pub rpc_round_trip: (Duration, Duration),
    /// RPC calls per lookup of an account not known yet. Default 3: the registry driver reads
    /// the binding, the room and the member's role (`LookupLimits`' doc in `chroom-room`:
    /// "a lookup costs three RPC calls").
    pub rpcs_per_lookup: u32,
    /// A tree link carrying no media for this long counts as silent, and the overlay probes
    /// the parent (`OverlayConfig::probe_timeout` and the repair hold are the overlay's own,
    /// run by the simulator as the node runs them). Default 300 ms:
    /// `MediaConfig::silence_timeout` (`crates/chroom-media/src/api.rs`).
    pub silence_timeout: Duration,
    /// Longest gap between two packets of a live broadcast, by which the last packet before a
    /// crash precedes it. Default 20 ms (Opus frames).
    pub packet_gap: Duration,
    /// How long a parent keeps feeding (and counting) a child that vanished without a word: no
    /// media flows upstream, so only ICE consent notices. Default 18.75 s: str0m's `is` 0.12
    /// `StunTiming` gives up after 9 retransmits with an RTO of 250 ms doubling to 3 s
    /// (0.25 + 0.5 + 1 + 2 + 5 × 3 s); libp2p ping (15 s interval, 20 s timeout) is slower.
    pub consent_timeout: Duration,
    /// A tree message (other than a join or an acceptance) unacknowledged this long means its
    /// receiver is gone. Default 3 s: `TREE_ACK_TIMEOUT` (`crates/chroom-room/src/node/mod.rs`).
    pub tree_ack_timeout: Duration,
    /// A link whose peer died before it connected fails after this long. Default 15 s:
    /// `MediaConfig::connect_timeout`.
    pub connect_timeout: Duration,
}

impl Default for CostModel {
    fn default() -> Self {
        let ms = Duration::from_millis;
        Self {
            viewer_nat: NatMix {
                public: 0.2,
                port_preserving: 0.6,
            },
            relayer_nat: NatMix {
                public: 0.8,
                port_preserving: 0.2,
            },
            link_setup: (ms(30), ms(100)),
            link_setup_round_trips: 4,
            hole_punch_wait: ms(250),
            relay_round_trips: 2,
            rpc_round_trip: (ms(20), ms(80)),
            rpcs_per_lookup: 3,
            silence_timeout: ms(300),
            packet_gap: ms(20),
            consent_timeout: ms(18_750),
            tree_ack_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

impl CostModel {
    /// How a link between members behind `a` and `b` is carried: relayed where one side is
    /// behind a symmetric NAT and the other behind any NAT (`docs/NETWORK.md`: a symmetric
    /// NAT's node reaches public nodes directly, since they learn its address from its
    /// checks, and needs a relayed path for the rest).
    pub fn path(a: Nat, b: Nat) -> Path {
        match (a, b) {
            (Nat::Public, _) | (_, Nat::Public) => Path::Direct,
            (Nat::PortPreserving, Nat::PortPreserving) => Path::Direct,
            _ => Path::Relayed,
        }
    }

    /// Offer to connected of a link offered by a member behind `offerer` (the child) to one
    /// behind `answerer`, `rtt` apart.
    pub fn link_setup(
        &self,
        rng: &mut ChaCha8Rng,
        offerer: Nat,
        answerer: Nat,
        rtt: Duration,
    ) -> Duration {
        let mut setup = uniform(rng, self.link_setup) + rtt * self.link_setup_round_trips;
        if offerer != Nat::Public {
            setup += self.hole_punch_wait;
        }
        if Self::path(offerer, answerer) == Path::Relayed {
            setup += rtt * self.relay_round_trips;
        }
        setup
    }

    /// One registry lookup of an account not known yet: its RPC calls one after another.
    pub fn lookup(&self, rng: &mut ChaCha8Rng) -> Duration {
        (0..self.rpcs_per_lookup)
            .map(|_| uniform(rng, self.rpc_round_trip))
            .sum()
    }
}

/// Uniform in `[from, to)`.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, (from, to): (Duration, Duration)) -> Duration {
    if to <= from {
        return from;
    }
    let span = (to - from).as_micros() as u64;
    from + Duration::from_micros(rng.random_range(0..span))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn only_a_symmetric_nat_facing_another_nat_needs_a_relayer() {
        use Nat::*;
        assert_eq!(CostModel::path(Public, Symmetric), Path::Direct);
        assert_eq!(
            CostModel::path(PortPreserving, PortPreserving),
            Path::Direct
        );
        assert_eq!(CostModel::path(PortPreserving, Symmetric), Path::Relayed);
        assert_eq!(CostModel::path(Symmetric, Symmetric), Path::Relayed);
    }

    #[test]
    fn costs_stay_within_their_documented_ranges() {
        let costs = CostModel::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let rtt = Duration::from_millis(50);
        let ms = Duration::from_millis;
        for _ in 0..1000 {
            let public = costs.link_setup(&mut rng, Nat::Public, Nat::Symmetric, rtt);
            assert!(public >= ms(230) && public < ms(300), "{public:?}");
            let home = costs.link_setup(&mut rng, Nat::PortPreserving, Nat::Public, rtt);
            assert!(home >= ms(480) && home < ms(550), "{home:?}");
            let relayed = costs.link_setup(&mut rng, Nat::Symmetric, Nat::PortPreserving, rtt);
            assert!(relayed >= ms(580) && relayed < ms(650), "{relayed:?}");
            let lookup = costs.lookup(&mut rng);
            assert!(lookup >= ms(60) && lookup < ms(240));
        }
    }
}
