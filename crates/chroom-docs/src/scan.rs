//! A structural walk over a v1 update before yrs decodes it.
//!
//! yrs 0.28 decodes nested `Any` values (the content of `Y.Map`/`Y.Array` entries) by
//! recursion with no depth limit: an update of 120 KB nesting arrays 60 000 deep overflows the
//! stack, which aborts the process (no `catch_unwind` can stop it). So every update is walked
//! here first, mirroring yrs's own v1 decoder (`Update::decode`, `ItemContent::decode`,
//! `Any::decode`, `IdSet::decode` in yrs 0.28), and refused when values nest deeper than
//! [`MAX_ANY_DEPTH`]. The walk also refuses what a document of this crate never holds
//! (subdocuments, and the legacy JSON content kind, which yrs 0.28 reads one string past what
//! it writes) and what yrs trusts and then mishandles: clocks past 31 bits, a client written
//! twice, origins that cannot be real. Whatever passes is then decoded by yrs, which checks
//! the rest (UTF-8, value ranges).

use std::collections::BTreeSet;

use crate::MalformedUpdate;

/// Deepest nesting of values inside an `Any` content (an array in a map in an array...).
/// JSON-like values in editors nest a few levels; yjs itself has no limit.
pub(crate) const MAX_ANY_DEPTH: usize = 32;

/// Highest clock accepted: yrs keeps clocks in `u32` but subtracts them as `i32`. A client
/// reaching it would have typed two billion characters.
const MAX_CLOCK: u64 = i32::MAX as u64;

/// An item's id: its author's client id and the author's clock at it.
type Id = (u64, u64);

/// What the walk learnt about an update that decides how carefully it is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Some item names its parent by id. Only such items can make yrs stop half way through
    /// an update (`UpdateError::InvalidParent`: the id is an item that is no container), so
    /// these updates are applied on a copy that can be restored.
    pub(crate) parent_by_id: bool,
}

// Struct kinds and content kinds of the v1 encoding (yjs `contentRefs`, yrs `block.rs`).
const GC: u8 = 0;
const SKIP: u8 = 10;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;
const HAS_ORIGIN: u8 = 0x80;
const HAS_RIGHT_ORIGIN: u8 = 0x40;
const HAS_PARENT_SUB: u8 = 0x20;
// Type refs that carry more than their number (yrs `types/mod.rs`).
const TYPE_XML_ELEMENT: u8 = 3;
const TYPE_SUBDOC: u8 = 9;
// Type refs yrs 0.28 knows without its `weak` feature: array, map, text, XML element,
// fragment, hook and text, subdocument, undefined.
const KNOWN_TYPES: [u8; 9] = [0, 1, 2, 3, 4, 5, 6, 9, 15];

/// Walks a whole v1 update; `Ok` means yrs's decoder can read it without deep recursion.
pub(crate) fn check_update_v1(bytes: &[u8]) -> Result<Shape, MalformedUpdate> {
    let mut reader = Reader { bytes, at: 0 };
    let mut shape = Shape::default();
    let clients = reader.count()?;
    let mut seen = BTreeSet::new();
    for _ in 0..clients {
        let structs = reader.count()?;
        let client = reader.client()?;
        // yjs writes each client's structs once. yrs appends a repeated client's structs to
        // the first run, clocks restarting, and integrating ids twice frees a block still in
        // use (a heap use-after-free the fuzzer found in yrs 0.28.1).
        if !seen.insert(client) {
            return Err(MalformedUpdate::RepeatedClient);
        }
        // yrs adds each struct's length to a 32-bit clock unchecked and takes differences of
        // clocks as `i32`: past 2^31 a block lands where yrs finds no room for it and it
        // panics (found by the fuzzer). The client's structs must end below 2^31.
        let mut clock = reader.clock()?;
        for _ in 0..structs {
            clock = clock.saturating_add(check_struct(&mut reader, &mut shape, (client, clock))?);
            if clock > MAX_CLOCK {
                return Err(MalformedUpdate::ClockOverflow);
            }
        }
    }
    check_delete_set(&mut reader)?;
    Ok(shape)
}

/// Walks an encoded state vector (pairs of client and clock).
pub(crate) fn check_state_vector_v1(bytes: &[u8]) -> Result<(), MalformedUpdate> {
    let mut reader = Reader { bytes, at: 0 };
    let entries = reader.count()?;
    for _ in 0..entries {
        reader.client()?;
        reader.clock()?;
    }
    Ok(())
}

/// One struct with id `own`; returns the number of clock ticks it takes.
fn check_struct(
    reader: &mut Reader<'_>,
    shape: &mut Shape,
    own: Id,
) -> Result<u64, MalformedUpdate> {
    let info = reader.byte()?;
    // yrs takes GC and Skip only from a bare info byte; with flags they would be items of an
    // unknown content kind, which it refuses. Refuse them here the same way.
    if info == GC || info == SKIP {
        return reader.var(); // length
    }
    let kind = info & 0x1f;
    // Bit 4 is never set by yjs (content kinds are < 16); yrs would ignore it, yjs refuses.
    if info & 0x10 != 0 || kind == GC || kind == SKIP {
        return Err(MalformedUpdate::UnknownContent(kind));
    }
    let origin = (info & HAS_ORIGIN != 0).then(|| reader.id()).transpose()?;
    let right_origin = (info & HAS_RIGHT_ORIGIN != 0)
        .then(|| reader.id())
        .transpose()?;
    // Yjs places an item between its origins and trusts that the left one lies left of the
    // right one: a forged pair places it differently depending on how the blocks around are
    // split, so replicas (or one replica before and after reloading) would read different
    // texts. Two checks need no document: both origins are never one character, and an item
    // refers only to what existed when it was made, so never to its own client's later
    // clocks.
    if origin.is_some() && origin == right_origin {
        return Err(MalformedUpdate::ForgedOrigin);
    }
    let made_later = |id: Id| id.0 == own.0 && id.1 >= own.1;
    if origin.into_iter().chain(right_origin).any(made_later) {
        return Err(MalformedUpdate::ForgedOrigin);
    }
    if origin.is_none() && right_origin.is_none() {
        // Without origins the item says where it lives: a root type by name, or an item by id.
        if reader.var()? == 1 {
            reader.string()?;
        } else {
            if made_later(reader.id()?) {
                return Err(MalformedUpdate::ForgedOrigin);
            }
            shape.parent_by_id = true;
        }
        if info & HAS_PARENT_SUB != 0 {
            reader.string()?;
        }
    }
    check_content(reader, kind)
}

/// An item's content; returns its length in clock ticks (a string's is its UTF-16 length).
fn check_content(reader: &mut Reader<'_>, kind: u8) -> Result<u64, MalformedUpdate> {
    match kind {
        CONTENT_DELETED => return reader.var(),
        CONTENT_JSON => return Err(MalformedUpdate::LegacyJson),
        CONTENT_STRING => return reader.utf16_len(),
        CONTENT_BINARY | CONTENT_EMBED => {
            reader.string()?;
        }
        CONTENT_FORMAT => {
            reader.string()?; // key
            reader.string()?; // JSON value
        }
        CONTENT_TYPE => {
            let type_ref = reader.byte()?;
            if type_ref == TYPE_SUBDOC {
                return Err(MalformedUpdate::Subdocument);
            }
            if !KNOWN_TYPES.contains(&type_ref) {
                return Err(MalformedUpdate::UnknownType(type_ref));
            }
            if type_ref == TYPE_XML_ELEMENT {
                reader.string()?; // tag name
            }
        }
        CONTENT_ANY => {
            let values = reader.count()?;
            for _ in 0..values {
                check_any(reader, 1)?;
            }
            return Ok(values);
        }
        CONTENT_DOC => return Err(MalformedUpdate::Subdocument),
        other => return Err(MalformedUpdate::UnknownContent(other)),
    }
    Ok(1)
}

/// One lib0 `Any` value at nesting `depth` (1 for a top-level value).
fn check_any(reader: &mut Reader<'_>, depth: usize) -> Result<(), MalformedUpdate> {
    if depth > MAX_ANY_DEPTH {
        return Err(MalformedUpdate::NestedTooDeep { max: MAX_ANY_DEPTH });
    }
    match reader.byte()? {
        // undefined, null, false, true
        127 | 126 | 121 | 120 => {}
        // integer (signed varint: the same continuation bits as unsigned)
        125 => {
            reader.var()?;
        }
        124 => reader.skip(4)?,
        123 | 122 => reader.skip(8)?,
        // string, byte array
        119 | 116 => {
            reader.string()?;
        }
        // map: key and value pairs
        118 => {
            let entries = reader.count()?;
            for _ in 0..entries {
                reader.string()?;
                check_any(reader, depth + 1)?;
            }
        }
        117 => {
            let values = reader.count()?;
            for _ in 0..values {
                check_any(reader, depth + 1)?;
            }
        }
        other => return Err(MalformedUpdate::UnknownValue(other)),
    }
    Ok(())
}

fn check_delete_set(reader: &mut Reader<'_>) -> Result<(), MalformedUpdate> {
    let clients = reader.count()?;
    for _ in 0..clients {
        reader.client()?;
        let ranges = reader.count()?;
        for _ in 0..ranges {
            // yrs adds the two as 32-bit numbers.
            let end = reader.clock()? + reader.clock()?;
            if end > MAX_CLOCK {
                return Err(MalformedUpdate::ClockOverflow);
            }
        }
    }
    Ok(())
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, MalformedUpdate> {
        let byte = *self.bytes.get(self.at).ok_or(MalformedUpdate::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    /// A lib0 unsigned varint (7 bits a byte, least significant first), at most 64 bits.
    fn var(&mut self) -> Result<u64, MalformedUpdate> {
        let (value, len) = crate::sync::read_var_uint(&self.bytes[self.at..])
            .map_err(|_| MalformedUpdate::Truncated)?;
        self.at += len;
        Ok(value)
    }

    /// A count of things that follow, each taking at least one byte: a count past the bytes
    /// left is refused at once rather than walked.
    fn count(&mut self) -> Result<u64, MalformedUpdate> {
        let count = self.var()?;
        if count > (self.bytes.len() - self.at) as u64 {
            return Err(MalformedUpdate::Truncated);
        }
        Ok(count)
    }

    /// A length-prefixed byte string (the UTF-8 check is yrs's).
    fn string(&mut self) -> Result<&[u8], MalformedUpdate> {
        let len = self.var()?;
        let start = self.at;
        self.skip(usize::try_from(len).map_err(|_| MalformedUpdate::Truncated)?)?;
        Ok(&self.bytes[start..self.at])
    }

    /// A length-prefixed UTF-8 string; returns its length in UTF-16 code units, which is
    /// how Yjs counts clock ticks.
    fn utf16_len(&mut self) -> Result<u64, MalformedUpdate> {
        let text = std::str::from_utf8(self.string()?).map_err(|_| MalformedUpdate::Utf8)?;
        Ok(text.encode_utf16().count() as u64)
    }

    /// A clock value, at most [`MAX_CLOCK`].
    fn clock(&mut self) -> Result<u64, MalformedUpdate> {
        let clock = self.var()?;
        if clock > MAX_CLOCK {
            return Err(MalformedUpdate::ClockOverflow);
        }
        Ok(clock)
    }

    /// A client id: yjs makes them 32-bit, and yrs takes at most 53 bits (it asserts so in
    /// debug builds, which would be a panic on untrusted input).
    fn client(&mut self) -> Result<u64, MalformedUpdate> {
        let client = self.var()?;
        if client >= 1 << 53 {
            return Err(MalformedUpdate::ClientTooLarge);
        }
        Ok(client)
    }

    fn id(&mut self) -> Result<Id, MalformedUpdate> {
        Ok((self.client()?, self.clock()?))
    }

    fn skip(&mut self, len: usize) -> Result<(), MalformedUpdate> {
        if len > self.bytes.len() - self.at {
            return Err(MalformedUpdate::Truncated);
        }
        self.at += len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nesting_bomb_is_refused_before_yrs_sees_it() {
        // One client, one item under root "t" with one Any value: arrays 60 000 deep.
        let mut bytes = vec![1, 1, 5, 0, CONTENT_ANY, 1, 1, b't', 1];
        for _ in 0..60_000 {
            bytes.extend_from_slice(&[117, 1]);
        }
        bytes.extend_from_slice(&[126, 0]);
        assert_eq!(
            check_update_v1(&bytes),
            Err(MalformedUpdate::NestedTooDeep { max: MAX_ANY_DEPTH })
        );
    }

    #[test]
    fn values_nested_to_the_limit_pass() {
        let mut bytes = vec![1, 1, 5, 0, CONTENT_ANY, 1, 1, b't', 1];
        for _ in 1..MAX_ANY_DEPTH {
            bytes.extend_from_slice(&[117, 1]);
        }
        bytes.extend_from_slice(&[126, 0]);
        assert_eq!(check_update_v1(&bytes), Ok(Shape::default()));
    }

    #[test]
    fn subdocuments_and_legacy_json_are_refused() {
        let subdoc_type = [1, 1, 5, 0, CONTENT_TYPE, 1, 1, b't', TYPE_SUBDOC, 0];
        assert_eq!(
            check_update_v1(&subdoc_type),
            Err(MalformedUpdate::Subdocument)
        );
        let subdoc = [1, 1, 5, 0, CONTENT_DOC, 1, 1, b't', 126, 0];
        assert_eq!(check_update_v1(&subdoc), Err(MalformedUpdate::Subdocument));
        let json = [1, 1, 5, 0, CONTENT_JSON, 1, 1, b't', 0, 0];
        assert_eq!(check_update_v1(&json), Err(MalformedUpdate::LegacyJson));
    }

    #[test]
    fn clocks_past_31_bits_are_refused() {
        // A delete range ending past 2^32 (the fuzzer's first find: yrs adds with overflow).
        let range = [0, 1, 2, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 2];
        assert_eq!(check_update_v1(&range), Err(MalformedUpdate::ClockOverflow));
        // A GC run at clock 2^31 (the fuzzer's second: yrs panics placing it).
        let gc = [1, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x08, 0, 23, 0];
        assert_eq!(check_update_v1(&gc), Err(MalformedUpdate::ClockOverflow));
        // A string starting at clock 2^31 - 1 and two ticks long.
        let string = [
            1, 1, 5, 0xff, 0xff, 0xff, 0xff, 0x07, 4, 1, 1, b't', 2, b'a', b'b', 0,
        ];
        assert_eq!(
            check_update_v1(&string),
            Err(MalformedUpdate::ClockOverflow)
        );
        let fits = [
            1, 1, 5, 0xfd, 0xff, 0xff, 0xff, 0x07, 4, 1, 1, b't', 2, b'a', b'b', 0,
        ];
        assert_eq!(check_update_v1(&fits), Ok(Shape::default()));
    }

    #[test]
    fn forged_origins_are_refused() {
        // Client 2 types "c", "m", then "r" whose origins were both set to "m" (a bit flip the
        // fuzzer found: the text read "cmr" before reloading and "crm" after).
        let same = [
            1, 3, 2, 0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'c', 0x84, 2, 0, 1, b'm', 0xc4, 2, 1,
            2, 1, 1, b'r', 0,
        ];
        assert_eq!(check_update_v1(&same), Err(MalformedUpdate::ForgedOrigin));
        // "r" with its author's own later change (2, 5) as its left origin.
        let later = [
            1, 3, 2, 0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'c', 0x84, 2, 0, 1, b'm', 0x84, 2, 5,
            1, b'r', 0,
        ];
        assert_eq!(check_update_v1(&later), Err(MalformedUpdate::ForgedOrigin));
        // As typed: "r" after "m".
        let fine = [
            1, 3, 2, 0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'c', 0x84, 2, 0, 1, b'm', 0x84, 2, 1,
            1, b'r', 0,
        ];
        assert_eq!(check_update_v1(&fine), Ok(Shape::default()));
    }

    #[test]
    fn a_client_written_twice_is_refused() {
        // Client 1's deleted struct at clock 96, then client 1 again at clock 1.
        let twice = [2, 1, 1, 96, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0];
        assert_eq!(
            check_update_v1(&twice),
            Err(MalformedUpdate::RepeatedClient)
        );
        let once = [2, 1, 1, 96, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 0];
        assert_eq!(check_update_v1(&once), Ok(Shape::default()));
    }

    #[test]
    fn counts_past_the_input_are_refused_at_once() {
        // 2^35 clients declared in six bytes.
        let bytes = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(check_update_v1(&bytes), Err(MalformedUpdate::Truncated));
    }

    #[test]
    fn an_item_naming_its_parent_by_id_is_noted() {
        // parent info 0, parent id (7, 0), string content "a", empty delete set.
        let bytes = [1, 1, 5, 0, CONTENT_STRING, 0, 7, 0, 1, b'a', 0];
        assert_eq!(check_update_v1(&bytes), Ok(Shape { parent_by_id: true }));
    }
}
