//! IVF: a 32-byte file header, then frames each prefixed by a 12-byte header (size, pts).
//!
//! Layout (all little endian): `DKIF`, version u16 (0), header length u16 (32), fourcc, width
//! u16, height u16, timebase denominator u32, timebase numerator u32, frame count u32, unused u32.
//! libvpx names the denominator "rate" and the numerator "scale".

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Largest frame a reader accepts. A 4K VP8 keyframe is well under 2 MiB.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

const SIGNATURE: &[u8; 4] = b"DKIF";
const HEADER_LEN: u16 = 32;
const FRAME_HEADER_LEN: usize = 12;
/// Offset of the frame count in the file header.
const FRAME_COUNT_OFFSET: u64 = 24;

/// An IVF file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvfHeader {
    /// Codec, e.g. `VP80`.
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Timebase numerator: a pts unit is `timebase_num / timebase_den` seconds.
    pub timebase_num: u32,
    /// Timebase denominator.
    pub timebase_den: u32,
    /// Frames in the file, as the header claims (writers patch it at the end).
    pub frame_count: u32,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvfFrame {
    /// Presentation timestamp in timebase units.
    pub pts: u64,
    /// The codec frame.
    pub data: Vec<u8>,
}

/// An IVF file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IvfError {
    /// Reading or writing failed.
    #[error("ivf io: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with `DKIF`.
    #[error("not an ivf file (signature {found:?})")]
    BadSignature {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A version or header length this reader does not know.
    #[error("unsupported ivf version {version} with header length {header_len}")]
    Unsupported {
        /// The version field.
        version: u16,
        /// The header length field.
        header_len: u16,
    },
    /// The file ended inside a header or frame.
    #[error("ivf file truncated in {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// A frame claims more than [`MAX_FRAME_BYTES`].
    #[error("ivf frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    FrameTooLarge {
        /// The claimed size.
        len: u32,
    },
    /// More frames than the 32-bit count field can hold.
    #[error("too many frames for an ivf file")]
    TooManyFrames,
}

/// Reads frames from an IVF stream.
#[derive(Debug)]
pub struct IvfReader<R: Read> {
    reader: R,
    header: IvfHeader,
}

impl<R: Read> IvfReader<R> {
    /// Reads and validates the file header.
    pub fn new(mut reader: R) -> Result<Self, IvfError> {
        let mut bytes = [0u8; HEADER_LEN as usize];
        read_exact_or(&mut reader, &mut bytes, "file header")?;
        let field16 = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let field32 = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let signature = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if &signature != SIGNATURE {
            return Err(IvfError::BadSignature { found: signature });
        }
        let (version, header_len) = (field16(4), field16(6));
        if version != 0 || header_len != HEADER_LEN {
            return Err(IvfError::Unsupported {
                version,
                header_len,
            });
        }
        let header = IvfHeader {
            fourcc: [bytes[8], bytes[9], bytes[10], bytes[11]],
            width: field16(12),
            height: field16(14),
            timebase_den: field32(16),
            timebase_num: field32(20),
            frame_count: field32(24),
        };
        Ok(Self { reader, header })
    }

    /// The file header.
    pub fn header(&self) -> &IvfHeader {
        &self.header
    }

    /// The next frame; `Ok(None)` at a clean end of file.
    pub fn read_frame(&mut self) -> Result<Option<IvfFrame>, IvfError> {
        let mut head = [0u8; FRAME_HEADER_LEN];
        let got = read_up_to(&mut self.reader, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if got < FRAME_HEADER_LEN {
            return Err(IvfError::Truncated {
                what: "frame header",
            });
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if len as usize > MAX_FRAME_BYTES {
            return Err(IvfError::FrameTooLarge { len });
        }
        let mut pts_bytes = [0u8; 8];
        pts_bytes.copy_from_slice(&head[4..12]);
        let mut data = vec![0u8; len as usize];
        read_exact_or(&mut self.reader, &mut data, "frame")?;
        Ok(Some(IvfFrame {
            pts: u64::from_le_bytes(pts_bytes),
            data,
        }))
    }
}

/// Reads a whole IVF stream.
pub fn read_all(reader: impl Read) -> Result<(IvfHeader, Vec<IvfFrame>), IvfError> {
    let mut reader = IvfReader::new(reader)?;
    let mut frames = Vec::new();
    while let Some(frame) = reader.read_frame()? {
        frames.push(frame);
    }
    Ok((reader.header, frames))
}

/// Writes an IVF stream; [`IvfWriter::finish`] patches the frame count into the header.
#[derive(Debug)]
pub struct IvfWriter<W: Write + Seek> {
    writer: W,
    frames: u32,
}

impl<W: Write + Seek> IvfWriter<W> {
    /// Writes the file header (its frame count is patched by `finish`).
    pub fn new(mut writer: W, header: IvfHeader) -> Result<Self, IvfError> {
        let mut bytes = Vec::with_capacity(HEADER_LEN as usize);
        bytes.extend_from_slice(SIGNATURE);
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&HEADER_LEN.to_le_bytes());
        bytes.extend_from_slice(&header.fourcc);
        bytes.extend_from_slice(&header.width.to_le_bytes());
        bytes.extend_from_slice(&header.height.to_le_bytes());
        bytes.extend_from_slice(&header.timebase_den.to_le_bytes());
        bytes.extend_from_slice(&header.timebase_num.to_le_bytes());
        bytes.extend_from_slice(&header.frame_count.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        writer.write_all(&bytes)?;
        Ok(Self { writer, frames: 0 })
    }

    /// Appends one frame.
    pub fn write_frame(&mut self, pts: u64, data: &[u8]) -> Result<(), IvfError> {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|len| *len as usize <= MAX_FRAME_BYTES)
            .ok_or(IvfError::FrameTooLarge {
                len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            })?;
        self.frames = self.frames.checked_add(1).ok_or(IvfError::TooManyFrames)?;
        self.writer.write_all(&len.to_le_bytes())?;
        self.writer.write_all(&pts.to_le_bytes())?;
        self.writer.write_all(data)?;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u32 {
        self.frames
    }

    /// Patches the frame count, flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, IvfError> {
        let end = self.writer.stream_position()?;
        self.writer.seek(SeekFrom::Start(FRAME_COUNT_OFFSET))?;
        self.writer.write_all(&self.frames.to_le_bytes())?;
        self.writer.seek(SeekFrom::Start(end))?;
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_exact_or(
    reader: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), IvfError> {
    if read_up_to(reader, buf)? < buf.len() {
        return Err(IvfError::Truncated { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn header() -> IvfHeader {
        IvfHeader {
            fourcc: *b"VP80",
            width: 640,
            height: 360,
            timebase_num: 1,
            timebase_den: 30,
            frame_count: 0,
        }
    }

    fn sample_file() -> Vec<u8> {
        let mut writer = IvfWriter::new(Cursor::new(Vec::new()), header()).unwrap();
        writer.write_frame(0, b"key").unwrap();
        writer.write_frame(1, b"delta").unwrap();
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn round_trip_patches_the_frame_count() {
        let (read_header, frames) = read_all(Cursor::new(sample_file())).unwrap();
        assert_eq!(
            read_header,
            IvfHeader {
                frame_count: 2,
                ..header()
            }
        );
        assert_eq!(
            frames,
            vec![
                IvfFrame {
                    pts: 0,
                    data: b"key".to_vec()
                },
                IvfFrame {
                    pts: 1,
                    data: b"delta".to_vec()
                },
            ]
        );
    }

    #[test]
    fn bad_signature_and_version_are_refused() {
        let mut file = sample_file();
        file[0] = b'X';
        assert!(matches!(
            IvfReader::new(Cursor::new(&file)),
            Err(IvfError::BadSignature { .. })
        ));
        let mut file = sample_file();
        file[4] = 1;
        assert!(matches!(
            IvfReader::new(Cursor::new(&file)),
            Err(IvfError::Unsupported { .. })
        ));
    }

    #[test]
    fn truncation_is_an_error_not_an_end() {
        let file = sample_file();
        assert!(matches!(
            IvfReader::new(Cursor::new(&file[..20])),
            Err(IvfError::Truncated { .. })
        ));
        for cut in [33, 40, file.len() - 1] {
            let err = read_all(Cursor::new(&file[..cut])).unwrap_err();
            assert!(
                matches!(err, IvfError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn absurd_frame_length_is_refused_before_allocating() {
        let mut file = sample_file()[..32].to_vec();
        file.extend_from_slice(&u32::MAX.to_le_bytes());
        file.extend_from_slice(&0u64.to_le_bytes());
        let err = read_all(Cursor::new(file)).unwrap_err();
        assert!(matches!(err, IvfError::FrameTooLarge { len: u32::MAX }));
    }
}
