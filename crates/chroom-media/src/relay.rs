//! Relayed paths: a TURN-style allocation on a relayer, for links no direct path can carry
//! (a symmetric NAT on one side and a filtering NAT on the other).
//!
//! The relayer gives a client an **allocation**: a UDP port of its own (the *relayed address*)
//! and a secret token, handed over libp2p signaling after the relayer checked the client
//! against the registry. The client offers the relayed address as an ICE relay candidate.
//! Between client and relayer, datagrams travel in **relay frames** on the client's media
//! socket and the relayer's media socket:
//!
//! ```text
//! kind (1) | token (16) | peer family (1: 4 or 6) | peer port (2) | peer ip (4 or 16) | payload
//! ```
//!
//! `kind` is [`TO_PEER`] (client → relayer: send the payload from the relayed address to the
//! peer), [`FROM_PEER`] (relayer → client: the payload came to the relayed address from the
//! peer) or [`KEEPALIVE`] (client → relayer, no peer and no payload: keeps the allocation and
//! the client's NAT mapping alive). The kinds sit in 64..=79, the range RFC 7983 leaves to TURN
//! channels, so a frame is never taken for STUN (0–3), DTLS (20–63) or RTP (128–191).
//!
//! As in TURN, the relayer passes datagrams from a peer to the client only once the client
//! has sent to that peer's address (a *permission*), and never faster than the allocation's
//! rate. This module holds the frame codec and those sans-IO rules; the actor does the IO.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Bytes of an allocation's secret token.
pub const TOKEN_LEN: usize = 16;
/// An allocation's secret: whoever presents it uses the allocation.
pub type RelayToken = [u8; TOKEN_LEN];

/// Client → relayer: send the payload to the peer.
pub const TO_PEER: u8 = 0x40;
/// Relayer → client: the payload came from the peer.
pub const FROM_PEER: u8 = 0x41;
/// Client → relayer: the allocation is in use.
pub const KEEPALIVE: u8 = 0x42;

/// An allocation unused for this long ends (a client keeps it with [`KEEPALIVE`] frames
/// every [`KEEPALIVE_INTERVAL`]).
pub const ALLOCATION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a client says it still uses its allocation: well inside the idle timeout and
/// inside the 30 s a NAT may keep an idle UDP mapping.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// What a client needs to use an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayGrant {
    /// The relayer's media socket, where relay frames go.
    pub server: SocketAddr,
    /// The allocation's own address, offered to peers as a relay candidate.
    pub relayed: SocketAddr,
    /// The allocation's secret.
    pub token: RelayToken,
}

/// A decoded relay frame, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFrame<'a> {
    /// [`TO_PEER`].
    ToPeer {
        /// The allocation.
        token: RelayToken,
        /// Where the payload goes.
        peer: SocketAddr,
        /// The datagram to send.
        payload: &'a [u8],
    },
    /// [`FROM_PEER`].
    FromPeer {
        /// The allocation.
        token: RelayToken,
        /// Where the payload came from.
        peer: SocketAddr,
        /// The datagram received.
        payload: &'a [u8],
    },
    /// [`KEEPALIVE`].
    Keepalive {
        /// The allocation.
        token: RelayToken,
    },
}

/// Whether a datagram is a relay frame (by its first byte alone).
pub fn is_relay_frame(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&(TO_PEER | FROM_PEER | KEEPALIVE)))
}

/// A [`TO_PEER`] frame.
pub fn to_peer(token: &RelayToken, peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    frame(TO_PEER, token, Some(peer), payload)
}

/// A [`FROM_PEER`] frame.
pub fn from_peer(token: &RelayToken, peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    frame(FROM_PEER, token, Some(peer), payload)
}

/// A [`KEEPALIVE`] frame.
pub fn keepalive(token: &RelayToken) -> Vec<u8> {
    frame(KEEPALIVE, token, None, &[])
}

fn frame(kind: u8, token: &RelayToken, peer: Option<SocketAddr>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + TOKEN_LEN + 19 + payload.len());
    out.push(kind);
    out.extend_from_slice(token);
    if let Some(peer) = peer {
        match peer.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&peer.port().to_be_bytes());
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&peer.port().to_be_bytes());
                out.extend_from_slice(&ip.octets());
            }
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Decodes a relay frame; `None` for anything malformed (a datagram from anyone: never a
/// panic).
pub fn decode(bytes: &[u8]) -> Option<RelayFrame<'_>> {
    let (&kind, rest) = bytes.split_first()?;
    let token: RelayToken = rest.get(..TOKEN_LEN)?.try_into().ok()?;
    let rest = &rest[TOKEN_LEN..];
    if kind == KEEPALIVE {
        return rest.is_empty().then_some(RelayFrame::Keepalive { token });
    }
    let (&family, rest) = rest.split_first()?;
    let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    let rest = &rest[2..];
    let (ip, payload) = match family {
        4 => {
            let octets: [u8; 4] = rest.get(..4)?.try_into().ok()?;
            (IpAddr::V4(Ipv4Addr::from(octets)), &rest[4..])
        }
        6 => {
            let octets: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(octets)), &rest[16..])
        }
        _ => return None,
    };
    let peer = SocketAddr::new(ip, port);
    match kind {
        TO_PEER => Some(RelayFrame::ToPeer {
            token,
            peer,
            payload,
        }),
        FROM_PEER => Some(RelayFrame::FromPeer {
            token,
            peer,
            payload,
        }),
        _ => None,
    }
}

/// The rules of one allocation on the relayer: who its client is, which peers may send to
/// it, how fast it may go, and when it ends.
#[derive(Debug)]
pub struct AllocationRules {
    client: Option<SocketAddr>,
    permissions: HashSet<IpAddr>,
    /// Bytes per second the relayer sends for this allocation, both ways together.
    rate: u64,
    /// Bytes that may go now (a token bucket holding at most one second's worth).
    allowance: u64,
    refilled_at: Instant,
    last_used: Instant,
}

/// What the relayer does with a datagram of an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Send it on.
    Send,
    /// Drop it: the peer has no permission.
    NoPermission,
    /// Drop it: the allocation is over its rate.
    OverRate,
    /// Drop it: no client has used the allocation yet, so there is nowhere to send it.
    NoClient,
}

impl AllocationRules {
    /// A new allocation allowed `kbps` (kbit/s, both ways together).
    pub fn new(now: Instant, kbps: u32) -> Self {
        let rate = u64::from(kbps) * 1000 / 8;
        Self {
            client: None,
            permissions: HashSet::new(),
            rate,
            allowance: rate,
            refilled_at: now,
            last_used: now,
        }
    }

    /// The client's address, once it has used the allocation.
    pub fn client(&self) -> Option<SocketAddr> {
        self.client
    }

    /// A frame with the token came from `client`: it is the client now (its NAT may have
    /// given it another address; the token is the proof), and the allocation is in use.
    pub fn used_by(&mut self, now: Instant, client: SocketAddr) {
        self.client = Some(client);
        self.last_used = now;
    }

    /// The client sends `len` bytes to `peer`: the peer may answer from now on.
    pub fn to_peer(&mut self, now: Instant, peer: SocketAddr, len: usize) -> Pass {
        self.permissions.insert(peer.ip());
        self.spend(now, len)
    }

    /// `len` bytes came from `peer` for the client.
    pub fn from_peer(&mut self, now: Instant, peer: SocketAddr, len: usize) -> Pass {
        if !self.permissions.contains(&peer.ip()) {
            return Pass::NoPermission;
        }
        if self.client.is_none() {
            return Pass::NoClient;
        }
        self.spend(now, len)
    }

    /// Whether the allocation has been idle past [`ALLOCATION_IDLE_TIMEOUT`].
    pub fn is_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_used) >= ALLOCATION_IDLE_TIMEOUT
    }

    fn spend(&mut self, now: Instant, len: usize) -> Pass {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let earned = (u128::from(self.rate) * elapsed.as_micros() / 1_000_000) as u64;
        if earned > 0 {
            self.allowance = (self.allowance + earned).min(self.rate);
            self.refilled_at = now;
        }
        let len = len as u64;
        if len > self.allowance {
            return Pass::OverRate;
        }
        self.allowance -= len;
        Pass::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{addr, epoch};

    const TOKEN: RelayToken = [7; TOKEN_LEN];

    #[test]
    fn frames_round_trip_for_both_families() {
        for peer in [addr("10.77.0.9:4002"), addr("[2001:db8::1]:65535")] {
            let bytes = to_peer(&TOKEN, peer, b"dtls");
            assert!(is_relay_frame(&bytes));
            assert_eq!(
                decode(&bytes),
                Some(RelayFrame::ToPeer {
                    token: TOKEN,
                    peer,
                    payload: b"dtls"
                })
            );
            let bytes = from_peer(&TOKEN, peer, b"");
            assert_eq!(
                decode(&bytes),
                Some(RelayFrame::FromPeer {
                    token: TOKEN,
                    peer,
                    payload: b""
                })
            );
        }
        assert_eq!(
            decode(&keepalive(&TOKEN)),
            Some(RelayFrame::Keepalive { token: TOKEN })
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        let good = to_peer(&TOKEN, addr("10.77.0.9:4002"), b"x");
        for cut in 0..24 {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        let mut family = good.clone();
        family[17] = 5;
        assert_eq!(decode(&family), None);
        let mut kind = good;
        kind[0] = 0x43;
        assert_eq!(decode(&kind), None);
        let mut long_keepalive = keepalive(&TOKEN);
        long_keepalive.push(0);
        assert_eq!(decode(&long_keepalive), None);
        // STUN, DTLS and RTP never look like frames.
        for first in [0x00, 0x01, 20, 63, 128, 191] {
            assert!(!is_relay_frame(&[first, 0, 0]));
        }
    }

    #[test]
    fn a_peer_may_send_only_after_the_client_sent_to_it() {
        let now = epoch();
        let mut rules = AllocationRules::new(now, 1000);
        let peer = addr("10.77.0.9:4002");
        assert_eq!(rules.from_peer(now, peer, 100), Pass::NoPermission);
        rules.used_by(now, addr("10.77.0.20:5000"));
        assert_eq!(rules.to_peer(now, peer, 100), Pass::Send);
        // Another port of the same host counts too (a symmetric NAT's next mapping).
        assert_eq!(
            rules.from_peer(now, addr("10.77.0.9:6000"), 100),
            Pass::Send
        );
        assert_eq!(
            rules.from_peer(now, addr("10.77.0.10:4002"), 100),
            Pass::NoPermission
        );
    }

    #[test]
    fn nothing_is_passed_to_a_client_that_never_spoke() {
        let now = epoch();
        let mut rules = AllocationRules::new(now, 1000);
        let peer = addr("10.77.0.9:4002");
        rules.to_peer(now, peer, 10);
        assert_eq!(rules.from_peer(now, peer, 10), Pass::NoClient);
    }

    #[test]
    fn the_rate_holds_over_time() {
        let now = epoch();
        // 800 kbit/s: 100 000 bytes a second.
        let mut rules = AllocationRules::new(now, 800);
        let peer = addr("10.77.0.9:4002");
        rules.used_by(now, addr("10.77.0.20:5000"));
        let mut sent = 0;
        for ms in 0..3000u64 {
            let at = now + Duration::from_millis(ms);
            for _ in 0..10 {
                if rules.to_peer(at, peer, 1000) == Pass::Send {
                    sent += 1000;
                }
            }
        }
        // A second's burst, then 100 000 bytes a second: about 400 000 in 3 s.
        assert!((380_000..=400_000).contains(&sent), "{sent}");
    }

    #[test]
    fn an_allocation_expires_when_idle() {
        let now = epoch();
        let mut rules = AllocationRules::new(now, 1000);
        assert!(!rules.is_expired(now + ALLOCATION_IDLE_TIMEOUT / 2));
        rules.used_by(now + ALLOCATION_IDLE_TIMEOUT / 2, addr("10.77.0.20:5000"));
        assert!(!rules.is_expired(now + ALLOCATION_IDLE_TIMEOUT));
        assert!(rules.is_expired(now + ALLOCATION_IDLE_TIMEOUT * 3 / 2));
    }
}
