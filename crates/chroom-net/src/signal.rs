//! The signaling protocol's framing: a LEB128 length prefix, then that many bytes.
//!
//! The codec only frames; `chroom-proto` decodes. A length above
//! [`MAX_SIGNAL_MESSAGE_BYTES`] is reported as [`Frame::Oversized`] without reading the body, so
//! the node can still answer with a clear error instead of dropping the stream.

use std::io;

use chroom_types::MAX_SIGNAL_MESSAGE_BYTES;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// Protocol name of Chroom signaling.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/chroom/signal/1.0.0");

/// One framed message as read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message within the size limit.
    Payload(Vec<u8>),
    /// The peer announced a message larger than the limit; its body was not read.
    Oversized {
        /// The announced length.
        len: u64,
    },
}

/// request-response codec for [`Frame`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignalCodec;

impl libp2p::request_response::Codec for SignalCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, f: Frame) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, f).await
    }

    async fn write_response<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        f: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, f).await
    }
}

/// Reads one frame. Fails only on IO errors and on a length prefix that is not a valid LEB128.
pub async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> io::Result<Frame> {
    let len = read_varint(io).await?;
    if len > MAX_SIGNAL_MESSAGE_BYTES as u64 {
        return Ok(Frame::Oversized { len });
    }
    let mut buf = vec![0; len as usize];
    io.read_exact(&mut buf).await?;
    Ok(Frame::Payload(buf))
}

/// Writes one frame and flushes it.
pub async fn write_frame(io: &mut (impl AsyncWrite + Unpin), frame: Frame) -> io::Result<()> {
    let Frame::Payload(bytes) = frame else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an oversized frame cannot be written",
        ));
    };
    io.write_all(&encode_varint(bytes.len() as u64)).await?;
    io.write_all(&bytes).await?;
    io.flush().await
}

/// LEB128 encoding of `value` (at most 10 bytes).
pub fn encode_varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

async fn read_varint(io: &mut (impl AsyncRead + Unpin)) -> io::Result<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        io.read_exact(&mut byte).await?;
        let bits = u64::from(byte[0] & 0x7f);
        // The 10th byte may only carry the top bit of a u64.
        if i == 9 && bits > 1 {
            break;
        }
        value |= bits << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "length prefix is not a valid varint",
    ))
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::io::Cursor;

    use super::*;

    #[test]
    fn frames_round_trip() {
        for len in [0usize, 1, 127, 128, 300, MAX_SIGNAL_MESSAGE_BYTES] {
            let payload = vec![7u8; len];
            let mut wire = Cursor::new(Vec::new());
            block_on(write_frame(&mut wire, Frame::Payload(payload.clone()))).unwrap();
            wire.set_position(0);
            assert_eq!(
                block_on(read_frame(&mut wire)).unwrap(),
                Frame::Payload(payload)
            );
        }
    }

    #[test]
    fn oversized_length_is_reported_without_reading_the_body() {
        let len = MAX_SIGNAL_MESSAGE_BYTES as u64 + 1;
        let mut wire = Cursor::new(encode_varint(len));
        assert_eq!(
            block_on(read_frame(&mut wire)).unwrap(),
            Frame::Oversized { len }
        );
    }

    #[test]
    fn endless_varint_is_an_error() {
        let mut wire = Cursor::new(vec![0xff; 20]);
        let err = block_on(read_frame(&mut wire)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn truncated_body_is_an_error() {
        let mut bytes = encode_varint(10);
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut wire = Cursor::new(bytes);
        assert!(block_on(read_frame(&mut wire)).is_err());
    }
}
