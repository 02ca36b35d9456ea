//! Plain STUN Binding (RFC 8489) on the media socket: every node answers a Binding request
//! with the address it came from, so a node behind a NAT can learn its server-reflexive address
//! by asking public nodes from the same socket its links use.
//!
//! Only requests without a USERNAME are answered here: ICE connectivity checks always carry one
//! and belong to a link (str0m answers them). Sans-IO: bytes in, bytes out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The fixed cookie of RFC 5389 and later.
const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Longest message handled: a Binding request is 20 bytes plus a few small attributes.
const MAX_MESSAGE_LEN: usize = 548;

/// A STUN transaction id.
pub type TransactionId = [u8; 12];

/// A parsed message: its type, transaction id and attributes (type, value).
type Message<'a> = (u16, TransactionId, Vec<(u16, &'a [u8])>);

/// A message's type and transaction id, and its attributes, if `bytes` is one well-formed
/// STUN message (RFC 8489 §5: top two bits zero, length a multiple of 4 covering the rest,
/// the magic cookie, attributes that fill the body exactly).
fn parse(bytes: &[u8]) -> Option<Message<'_>> {
    if bytes.len() < HEADER_LEN || bytes.len() > MAX_MESSAGE_LEN || bytes[0] & 0xC0 != 0 {
        return None;
    }
    let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let cookie = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if kind & 0xC000 != 0 || cookie != MAGIC_COOKIE || length % 4 != 0 {
        return None;
    }
    if HEADER_LEN + length != bytes.len() {
        return None;
    }
    let transaction: TransactionId = bytes[8..HEADER_LEN].try_into().ok()?;
    let mut attributes = Vec::new();
    let mut rest = &bytes[HEADER_LEN..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return None;
        }
        let attribute = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = len.div_ceil(4) * 4;
        let value = rest.get(4..4 + len)?;
        rest = rest.get(4 + padded..)?;
        attributes.push((attribute, value));
    }
    Some((kind, transaction, attributes))
}

/// The transaction id of a plain Binding request (one without USERNAME, so not an ICE check),
/// if `bytes` is one.
pub fn binding_request_id(bytes: &[u8]) -> Option<TransactionId> {
    let (kind, transaction, attributes) = parse(bytes)?;
    if kind != BINDING_REQUEST || attributes.iter().any(|(a, _)| *a == ATTR_USERNAME) {
        return None;
    }
    Some(transaction)
}

/// A Binding request with `transaction`.
pub fn binding_request(transaction: TransactionId) -> Vec<u8> {
    message(BINDING_REQUEST, transaction, &[])
}

/// The Binding success answering `transaction`: the request came from `mapped`.
pub fn binding_success(transaction: TransactionId, mapped: SocketAddr) -> Vec<u8> {
    let value = xor_address(mapped, transaction);
    message(
        BINDING_SUCCESS,
        transaction,
        &[(ATTR_XOR_MAPPED_ADDRESS, &value)],
    )
}

/// The address a Binding success for `transaction` says the request came from, if `bytes` is
/// one.
pub fn binding_success_address(bytes: &[u8], transaction: TransactionId) -> Option<SocketAddr> {
    let (kind, id, attributes) = parse(bytes)?;
    if kind != BINDING_SUCCESS || id != transaction {
        return None;
    }
    let (_, value) = attributes
        .iter()
        .find(|(a, _)| *a == ATTR_XOR_MAPPED_ADDRESS)?;
    unxor_address(value, transaction)
}

fn message(kind: u16, transaction: TransactionId, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let body: usize = attributes
        .iter()
        .map(|(_, v)| 4 + v.len().div_ceil(4) * 4)
        .sum();
    let mut out = Vec::with_capacity(HEADER_LEN + body);
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&transaction);
    for (attribute, value) in attributes {
        out.extend_from_slice(&attribute.to_be_bytes());
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(value);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    out
}

/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the port XORed with the cookie's top half, an IPv4
/// address with the cookie, an IPv6 address with the cookie and the transaction id.
fn xor_address(addr: SocketAddr, transaction: TransactionId) -> Vec<u8> {
    let key = xor_key(transaction);
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut value = vec![0];
    match addr.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            value.extend_from_slice(&port.to_be_bytes());
            value.extend(ip.octets().iter().zip(key).map(|(b, k)| b ^ k));
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            value.extend_from_slice(&port.to_be_bytes());
            value.extend(ip.octets().iter().zip(key).map(|(b, k)| b ^ k));
        }
    }
    value
}

fn unxor_address(value: &[u8], transaction: TransactionId) -> Option<SocketAddr> {
    let key = xor_key(transaction);
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let address = value.get(4..)?;
    let ip = match (family, address.len()) {
        (0x01, 4) => {
            let octets: [u8; 4] = std::array::from_fn(|i| address[i] ^ key[i]);
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (0x02, 16) => {
            let octets: [u8; 16] = std::array::from_fn(|i| address[i] ^ key[i]);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The cookie then the transaction id: what addresses are XORed with.
fn xor_key(transaction: TransactionId) -> [u8; 16] {
    let mut key = [0; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(&transaction);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.2: a sample IPv4 Binding response (its XOR-MAPPED-ADDRESS part).
    #[test]
    fn decodes_the_rfc_5769_sample_address() {
        let transaction: TransactionId = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        let value = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        let mut bytes = message(
            BINDING_SUCCESS,
            transaction,
            &[(ATTR_XOR_MAPPED_ADDRESS, &value)],
        );
        assert_eq!(
            binding_success_address(&bytes, transaction),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        // Another transaction's answer is not this one's.
        assert_eq!(binding_success_address(&bytes, [0; 12]), None);
        bytes[4] ^= 1;
        assert_eq!(
            binding_success_address(&bytes, transaction),
            None,
            "bad cookie"
        );
    }

    #[test]
    fn a_request_is_answered_with_the_address_it_came_from_in_both_families() {
        for mapped in ["203.0.113.9:40000", "[2001:db8::7]:4002"] {
            let mapped: SocketAddr = mapped.parse().unwrap();
            let transaction = [7; 12];
            let request = binding_request(transaction);
            assert_eq!(request.len(), HEADER_LEN);
            assert_eq!(binding_request_id(&request), Some(transaction));
            let answer = binding_success(transaction, mapped);
            assert_eq!(binding_success_address(&answer, transaction), Some(mapped));
            // An answer is not a request.
            assert_eq!(binding_request_id(&answer), None);
        }
    }

    #[test]
    fn ice_checks_and_malformed_messages_are_not_plain_requests() {
        let transaction = [3; 12];
        let check = message(
            BINDING_REQUEST,
            transaction,
            &[(ATTR_USERNAME, b"abcd:efgh")],
        );
        assert_eq!(
            binding_request_id(&check),
            None,
            "an ICE check belongs to a link"
        );
        let request = binding_request(transaction);
        for cut in 0..request.len() {
            assert_eq!(binding_request_id(&request[..cut]), None);
        }
        let mut long = request.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            binding_request_id(&long),
            None,
            "length does not cover the bytes"
        );
        let mut rtp = request;
        rtp[0] = 0x80;
        assert_eq!(binding_request_id(&rtp), None, "an RTP packet is not STUN");
        let truncated_attribute = {
            let mut m = message(BINDING_REQUEST, transaction, &[(0x8022, b"chroom")]);
            m[HEADER_LEN + 3] = 200;
            m
        };
        assert_eq!(binding_request_id(&truncated_attribute), None);
    }
}
