//! Room content sealed per author (sender keys): each member seals the content it publishes in
//! a room (chat, questions, file offers, documents' edits and carets) with a key of its own,
//! and hands that key over signaling to members the registry lets in. Gossipsub forwards a
//! topic to whoever subscribes to it; sealing is what keeps a subscriber without a right from
//! reading it. A member makes a new key whenever another leaves, so a member removed or
//! banned reads nothing said after it left.
//!
//! No coordination: every author owns its key, as in Signal's sender keys and Jitsi's
//! per-participant keys, so no member has to be trusted to make one for the room.

use std::collections::HashMap;
use std::hash::Hash;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chroom_proto::{
    RoomKey, RoomMessageBody, Sealed, decode_sealed_content, encode_sealed_content,
};
use chroom_types::RoomId;

/// What opening a sealed message gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The content.
    Content(RoomMessageBody),
    /// This node holds no key of that id from its author: ask the author for it.
    NoKey,
    /// It does not open with the author's key, or opens to something that is not content.
    Bad(String),
}

/// The key this node seals with in a room, and the next nonce.
#[derive(Debug)]
struct OwnKey {
    key: RoomKey,
    next_counter: u64,
}

/// This node's keys and the keys members handed it. Sans-IO: keys come from the OS's random
/// source, nothing else.
#[derive(Debug)]
pub struct Sealing<P> {
    own: HashMap<RoomId, OwnKey>,
    /// Each author's newest key and the one before: what it sealed just before making a new
    /// key still opens.
    members: HashMap<(RoomId, P), [Option<RoomKey>; 2]>,
}

impl<P> Default for Sealing<P> {
    fn default() -> Self {
        Self {
            own: HashMap::new(),
            members: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash> Sealing<P> {
    /// Seals `body` for `room` if it is content ([`RoomMessageBody::is_content`]).
    pub fn seal(&mut self, room: RoomId, body: &RoomMessageBody) -> Option<Sealed> {
        let plain = encode_sealed_content(body)?;
        let own = self.own.entry(room).or_insert_with(|| OwnKey {
            key: fresh_key(random_u32()),
            next_counter: 0,
        });
        let counter = own.next_counter;
        own.next_counter += 1;
        seal_plain(&own.key, counter, room, &plain)
    }

    /// Opens what `author` sealed in `room`.
    pub fn open(&self, room: RoomId, author: P, sealed: &Sealed) -> Opened {
        let Some(key) = self
            .members
            .get(&(room, author))
            .into_iter()
            .flatten()
            .flatten()
            .find(|key| key.key_id == sealed.key_id)
        else {
            return Opened::NoKey;
        };
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: room.as_bytes(),
        };
        let Ok(plain) = cipher(key).decrypt(&nonce(sealed.counter), payload) else {
            return Opened::Bad("it does not open with its author's key".to_owned());
        };
        match decode_sealed_content(&plain) {
            Ok(body) => Opened::Content(body),
            Err(e) => Opened::Bad(e.to_string()),
        }
    }

    /// The key this node seals with in `room`, for a member who asks.
    pub fn own_key(&mut self, room: RoomId) -> RoomKey {
        self.own
            .entry(room)
            .or_insert_with(|| OwnKey {
                key: fresh_key(random_u32()),
                next_counter: 0,
            })
            .key
            .clone()
    }

    /// Makes a new key for `room` (a member left): members ask for it when they first meet
    /// it, and one who left is refused it.
    pub fn renew(&mut self, room: RoomId) {
        if let Some(own) = self.own.get_mut(&room) {
            *own = OwnKey {
                key: fresh_key(own.key.key_id.wrapping_add(1)),
                next_counter: 0,
            };
        }
    }

    /// Keeps the key `author` handed over for `room`, beside the one it had before.
    pub fn learn(&mut self, room: RoomId, author: P, key: RoomKey) {
        let keys = self.members.entry((room, author)).or_default();
        if keys[0].as_ref().is_some_and(|k| k.key_id == key.key_id) {
            keys[0] = Some(key);
        } else {
            keys[1] = keys[0].replace(key);
        }
    }

    /// Whether this node holds `author`'s key `key_id` for `room`.
    pub fn knows(&self, room: RoomId, author: P, key_id: u32) -> bool {
        self.members
            .get(&(room, author))
            .into_iter()
            .flatten()
            .flatten()
            .any(|key| key.key_id == key_id)
    }

    /// Forgets `author`'s keys for `room` (it left).
    pub fn forget_member(&mut self, room: RoomId, author: P) {
        self.members.remove(&(room, author));
    }

    /// Forgets every key of `room` (this node left it).
    pub fn forget_room(&mut self, room: RoomId) {
        self.own.remove(&room);
        self.members.retain(|(r, _), _| *r != room);
    }
}

/// Seals `body` for `room` with `key` and the nonce `counter`, which must never have sealed
/// anything under that key before. For tools standing in for a member's node (a test's
/// hostile member); a node seals with [`Sealing::seal`], which keeps the count.
pub fn seal_with(
    key: &RoomKey,
    counter: u64,
    room: RoomId,
    body: &RoomMessageBody,
) -> Option<Sealed> {
    seal_plain(key, counter, room, &encode_sealed_content(body)?)
}

fn seal_plain(key: &RoomKey, counter: u64, room: RoomId, plain: &[u8]) -> Option<Sealed> {
    let payload = Payload {
        msg: plain,
        aad: room.as_bytes(),
    };
    // Encryption fails only past ChaCha20's 256 GiB per message.
    let ciphertext = cipher(key).encrypt(&nonce(counter), payload).ok()?;
    Some(Sealed {
        key_id: key.key_id,
        counter,
        ciphertext: ciphertext.into(),
    })
}

fn cipher(key: &RoomKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&key.key.into())
}

fn nonce(counter: u64) -> Nonce {
    let mut nonce = [0; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce.into()
}

fn fresh_key(key_id: u32) -> RoomKey {
    let mut key = [0; 32];
    fill_random(&mut key);
    RoomKey { key_id, key }
}

fn random_u32() -> u32 {
    let mut bytes = [0; 4];
    fill_random(&mut bytes);
    u32::from_le_bytes(bytes)
}

fn fill_random(bytes: &mut [u8]) {
    // A machine without an OS random source cannot keep anything secret: nothing to go on with.
    #[allow(clippy::expect_used)]
    getrandom::fill(bytes).expect("the OS random source works");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const ROOM: RoomId = RoomId::from_bytes([4; 32]);
    const OTHER_ROOM: RoomId = RoomId::from_bytes([5; 32]);

    fn chat(text: &str) -> RoomMessageBody {
        RoomMessageBody::Chat { text: text.into() }
    }

    #[test]
    fn a_member_holding_the_authors_key_opens_and_nobody_else_does() {
        let mut author = Sealing::<u8>::default();
        let mut member = Sealing::<u8>::default();
        let stranger = Sealing::<u8>::default();
        let sealed = author.seal(ROOM, &chat("for members")).unwrap();
        assert!(!sealed.ciphertext.windows(3).any(|w| w == b"for"));
        assert_eq!(stranger.open(ROOM, 1, &sealed), Opened::NoKey);
        assert_eq!(member.open(ROOM, 1, &sealed), Opened::NoKey);

        member.learn(ROOM, 1, author.own_key(ROOM));
        assert!(member.knows(ROOM, 1, sealed.key_id));
        assert_eq!(
            member.open(ROOM, 1, &sealed),
            Opened::Content(chat("for members"))
        );
        // Nonces never repeat under one key.
        let next = author.seal(ROOM, &chat("again")).unwrap();
        assert_ne!(next.counter, sealed.counter);
        // The key opens nothing in another room, nor the same bytes said by another member.
        let mut elsewhere = Sealing::<u8>::default();
        elsewhere.learn(OTHER_ROOM, 1, author.own_key(ROOM));
        assert!(matches!(
            elsewhere.open(OTHER_ROOM, 1, &sealed),
            Opened::Bad(_) | Opened::NoKey
        ));
        member.learn(
            ROOM,
            2,
            RoomKey {
                key_id: sealed.key_id,
                key: [0; 32],
            },
        );
        assert!(matches!(member.open(ROOM, 2, &sealed), Opened::Bad(_)));
    }

    #[test]
    fn tampered_or_control_content_does_not_open() {
        let mut author = Sealing::<u8>::default();
        let mut member = Sealing::<u8>::default();
        member.learn(ROOM, 1, author.own_key(ROOM));
        let mut sealed = author.seal(ROOM, &chat("hello")).unwrap();
        let mut bytes = sealed.ciphertext.to_vec();
        bytes[0] ^= 1;
        sealed.ciphertext = Bytes::from(bytes);
        assert!(matches!(member.open(ROOM, 1, &sealed), Opened::Bad(_)));
        let presence = RoomMessageBody::Presence(chroom_proto::Presence::default());
        assert_eq!(
            author.seal(ROOM, &presence),
            None,
            "control travels in the clear"
        );
    }

    #[test]
    fn a_new_key_is_asked_for_and_the_one_before_still_opens() {
        let mut author = Sealing::<u8>::default();
        let mut member = Sealing::<u8>::default();
        member.learn(ROOM, 1, author.own_key(ROOM));
        let before = author.seal(ROOM, &chat("before")).unwrap();
        author.renew(ROOM);
        let after = author.seal(ROOM, &chat("after")).unwrap();
        assert_ne!(after.key_id, before.key_id);
        assert_eq!(member.open(ROOM, 1, &after), Opened::NoKey);
        member.learn(ROOM, 1, author.own_key(ROOM));
        assert_eq!(member.open(ROOM, 1, &after), Opened::Content(chat("after")));
        assert_eq!(
            member.open(ROOM, 1, &before),
            Opened::Content(chat("before"))
        );
        // A third key pushes the first out.
        author.renew(ROOM);
        member.learn(ROOM, 1, author.own_key(ROOM));
        assert_eq!(member.open(ROOM, 1, &before), Opened::NoKey);

        member.forget_member(ROOM, 1);
        assert_eq!(member.open(ROOM, 1, &after), Opened::NoKey);
        // Back in the room after leaving it, a node seals with a key nobody held.
        let old = author.own_key(ROOM);
        author.forget_room(ROOM);
        assert_ne!(author.own_key(ROOM).key, old.key);
    }
}
