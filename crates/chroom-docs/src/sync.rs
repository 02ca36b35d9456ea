//! The y-protocols sync messages (`y-protocols/sync.js`, as y-websocket frames them).
//!
//! A message is a lib0 varuint message type (`0`, messageSync), a varuint sync step (`0`
//! SyncStep1 carrying a state vector, `1` SyncStep2 carrying the update that answers one, `2`
//! an Update), then the payload as a varuint length and that many bytes. Nodes are free to
//! carry documents in their own messages; this encoding exists so that a page running
//! y-protocols can speak the same bytes.

use thiserror::Error;

/// y-protocols `messageSync`: the outer message type of every sync message.
const MESSAGE_SYNC: u64 = 0;
const SYNC_STEP_1: u64 = 0;
const SYNC_STEP_2: u64 = 1;
const SYNC_UPDATE: u64 = 2;

/// Longest lib0 varuint read: ten bytes hold 64 bits.
const MAX_VAR_UINT_BYTES: usize = 10;

/// One y-protocols sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// "Here is what I have": an encoded state vector (v1). Answered by [`Self::SyncStep2`].
    SyncStep1 {
        /// The sender's state vector, as [`crate::Document::state_vector`] encodes it.
        state_vector: Vec<u8>,
    },
    /// "Here is what you lack": an update (v1) holding what the receiver's state vector
    /// did not cover.
    SyncStep2 {
        /// The diff, as [`crate::Document::diff`] encodes it.
        update: Vec<u8>,
    },
    /// A live edit (v1), as a yjs `update` event gives it.
    Update {
        /// The update's bytes.
        update: Vec<u8>,
    },
}

/// Why bytes are not a sync message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SyncMessageError {
    /// The bytes end before the message does.
    #[error("sync message ends early")]
    Truncated,
    /// A varuint runs past 64 bits.
    #[error("sync message holds an integer past 64 bits")]
    IntegerTooLong,
    /// The outer type is not messageSync (awareness is `1`, auth `2`: not handled here).
    #[error("message type {0} is not a sync message")]
    NotSync(u64),
    /// The sync step is none of SyncStep1, SyncStep2 and Update.
    #[error("unknown sync step {0}")]
    UnknownStep(u64),
    /// Bytes follow the message (y-websocket sends one message per frame).
    #[error("{0} bytes follow the sync message")]
    TrailingBytes(usize),
}

impl SyncMessage {
    /// Encodes the message as y-protocols does.
    pub fn encode(&self) -> Vec<u8> {
        let (step, payload) = match self {
            Self::SyncStep1 { state_vector } => (SYNC_STEP_1, state_vector),
            Self::SyncStep2 { update } => (SYNC_STEP_2, update),
            Self::Update { update } => (SYNC_UPDATE, update),
        };
        let mut out = Vec::with_capacity(payload.len() + 2 + MAX_VAR_UINT_BYTES);
        write_var_uint(&mut out, MESSAGE_SYNC);
        write_var_uint(&mut out, step);
        write_var_uint(&mut out, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    /// Decodes one message from untrusted bytes. The payload itself is not looked into:
    /// [`crate::Documents`] checks it when it is applied.
    pub fn decode(bytes: &[u8]) -> Result<Self, SyncMessageError> {
        let mut at = 0;
        let mut next = |bytes: &[u8]| -> Result<u64, SyncMessageError> {
            let (value, len) = read_var_uint(&bytes[at..])?;
            at += len;
            Ok(value)
        };
        let kind = next(bytes)?;
        if kind != MESSAGE_SYNC {
            return Err(SyncMessageError::NotSync(kind));
        }
        let step = next(bytes)?;
        if step > SYNC_UPDATE {
            return Err(SyncMessageError::UnknownStep(step));
        }
        let len = next(bytes)?;
        let rest = &bytes[at..];
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= rest.len())
            .ok_or(SyncMessageError::Truncated)?;
        if rest.len() > len {
            return Err(SyncMessageError::TrailingBytes(rest.len() - len));
        }
        let payload = rest.to_vec();
        Ok(match step {
            SYNC_STEP_1 => Self::SyncStep1 {
                state_vector: payload,
            },
            SYNC_STEP_2 => Self::SyncStep2 { update: payload },
            _ => Self::Update { update: payload },
        })
    }
}

/// Appends a lib0 varuint.
pub(crate) fn write_var_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a lib0 varuint from the front of `bytes`: the value and how many bytes it took.
pub(crate) fn read_var_uint(bytes: &[u8]) -> Result<(u64, usize), SyncMessageError> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().take(MAX_VAR_UINT_BYTES).enumerate() {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        // The tenth byte may carry only the 64th bit.
        if index == MAX_VAR_UINT_BYTES - 1 && bits > 1 {
            return Err(SyncMessageError::IntegerTooLong);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    if bytes.len() >= MAX_VAR_UINT_BYTES {
        Err(SyncMessageError::IntegerTooLong)
    } else {
        Err(SyncMessageError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            SyncMessage::SyncStep1 {
                state_vector: vec![0],
            },
            SyncMessage::SyncStep2 {
                update: vec![7; 300],
            },
            SyncMessage::Update { update: vec![] },
        ] {
            assert_eq!(SyncMessage::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn encoding_matches_y_protocols() {
        // writeVarUint(0) writeVarUint(1) writeVarUint8Array([1, 2]) / a 200-byte payload.
        let step2 = SyncMessage::SyncStep2 { update: vec![1, 2] };
        assert_eq!(step2.encode(), [0, 1, 2, 1, 2]);
        let update = SyncMessage::Update {
            update: vec![9; 200],
        };
        assert_eq!(update.encode()[..4], [0, 2, 0xc8, 0x01]);
    }

    #[test]
    fn bad_messages_are_errors() {
        assert_eq!(SyncMessage::decode(&[]), Err(SyncMessageError::Truncated));
        assert_eq!(
            SyncMessage::decode(&[1, 0, 0]),
            Err(SyncMessageError::NotSync(1))
        );
        assert_eq!(
            SyncMessage::decode(&[0, 3, 0]),
            Err(SyncMessageError::UnknownStep(3))
        );
        assert_eq!(
            SyncMessage::decode(&[0, 0, 5, 1]),
            Err(SyncMessageError::Truncated)
        );
        assert_eq!(
            SyncMessage::decode(&[0, 0, 1, 1, 1]),
            Err(SyncMessageError::TrailingBytes(1))
        );
        assert_eq!(
            SyncMessage::decode(&[
                0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            Err(SyncMessageError::IntegerTooLong)
        );
    }

    #[test]
    fn varuints_round_trip_to_64_bits() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            (1 << 53) - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_var_uint(&mut out, value);
            assert_eq!(read_var_uint(&out), Ok((value, out.len())));
        }
    }
}
