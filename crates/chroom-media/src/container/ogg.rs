//! Ogg (RFC 3533) carrying one Opus stream (RFC 7845).
//!
//! The reader follows the first logical stream, checks every page's CRC, reassembles packets
//! that span pages and validates the `OpusHead`/`OpusTags` headers. The writer puts one packet
//! per page: a few bytes of overhead per 20 ms packet buys simplicity.

use std::io::{self, Read, Write};

use super::ivf::read_up_to;

/// Largest packet the reader reassembles. Opus audio packets are under 8 KiB; `OpusTags` with
/// embedded cover art can be larger, so leave room.
pub const MAX_PACKET_BYTES: usize = 8 * 1024 * 1024;

/// Largest packet the writer puts on one page (255 lacing values of 255 bytes, minus one).
const MAX_WRITE_PACKET_BYTES: usize = 255 * 255 - 1;
const PAGE_HEADER_LEN: usize = 27;
const FLAG_CONTINUED: u8 = 0x01;
const FLAG_BOS: u8 = 0x02;
const FLAG_EOS: u8 = 0x04;
const CAPTURE: &[u8; 4] = b"OggS";

/// The Opus identification header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels.
    pub channels: u8,
    /// Samples (48 kHz) to drop from the start of decoded output.
    pub pre_skip: u16,
    /// Sample rate of the original input (informational).
    pub input_sample_rate: u32,
    /// Gain to apply, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family (0: mono/stereo).
    pub mapping_family: u8,
}

/// An Ogg Opus file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OggError {
    /// Reading or writing failed.
    #[error("ogg io: {0}")]
    Io(#[from] io::Error),
    /// A page does not start with `OggS` or has an unknown version.
    #[error("bad ogg page at byte {offset}")]
    BadPage {
        /// Where the page starts.
        offset: u64,
    },
    /// A page's checksum does not match its contents.
    #[error("ogg page at byte {offset} fails its crc check")]
    BadCrc {
        /// Where the page starts.
        offset: u64,
    },
    /// The file ended inside a page.
    #[error("ogg file truncated in a page at byte {offset}")]
    Truncated {
        /// Where the page starts.
        offset: u64,
    },
    /// A packet grew past [`MAX_PACKET_BYTES`].
    #[error("ogg packet exceeds {MAX_PACKET_BYTES} bytes")]
    PacketTooLarge,
    /// The stream is not Opus or its headers are malformed.
    #[error("not an ogg opus stream: {reason}")]
    NotOpus {
        /// What was wrong.
        reason: &'static str,
    },
}

/// Reads Opus packets from an Ogg stream.
#[derive(Debug)]
pub struct OggOpusReader<R: Read> {
    reader: R,
    head: OpusHead,
    serial: u32,
    offset: u64,
    /// Complete packets of the current page not yet returned.
    ready: std::collections::VecDeque<Vec<u8>>,
    /// A packet continuing on the next page.
    partial: Vec<u8>,
    ended: bool,
}

impl<R: Read> OggOpusReader<R> {
    /// Reads the `OpusHead` and `OpusTags` headers.
    pub fn new(reader: R) -> Result<Self, OggError> {
        let mut this = Self {
            reader,
            head: OpusHead {
                channels: 0,
                pre_skip: 0,
                input_sample_rate: 0,
                output_gain: 0,
                mapping_family: 0,
            },
            serial: 0,
            offset: 0,
            ready: Default::default(),
            partial: Vec::new(),
            ended: false,
        };
        let head = this.next_packet(true)?.ok_or(OggError::NotOpus {
            reason: "empty stream",
        })?;
        this.head = parse_head(&head)?;
        let tags = this.next_packet(false)?.ok_or(OggError::NotOpus {
            reason: "no OpusTags header",
        })?;
        if !tags.starts_with(b"OpusTags") {
            return Err(OggError::NotOpus {
                reason: "second packet is not OpusTags",
            });
        }
        Ok(this)
    }

    /// The identification header.
    pub fn head(&self) -> &OpusHead {
        &self.head
    }

    /// The next audio packet; `Ok(None)` at the end of the stream.
    pub fn read_packet(&mut self) -> Result<Option<Vec<u8>>, OggError> {
        self.next_packet(false)
    }

    fn next_packet(&mut self, first: bool) -> Result<Option<Vec<u8>>, OggError> {
        loop {
            if let Some(packet) = self.ready.pop_front() {
                return Ok(Some(packet));
            }
            if self.ended || !self.read_page(first)? {
                return Ok(None);
            }
        }
    }

    /// Reads one page of our stream into `ready`/`partial`. Returns false at end of file.
    fn read_page(&mut self, first: bool) -> Result<bool, OggError> {
        let offset = self.offset;
        let mut header = [0u8; PAGE_HEADER_LEN];
        match read_up_to(&mut self.reader, &mut header)? {
            0 => return Ok(false),
            n if n < PAGE_HEADER_LEN => return Err(OggError::Truncated { offset }),
            _ => {}
        }
        if &header[..4] != CAPTURE || header[4] != 0 {
            return Err(OggError::BadPage { offset });
        }
        let flags = header[5];
        let serial = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
        let stored_crc = u32::from_le_bytes([header[22], header[23], header[24], header[25]]);
        let mut lacing = vec![0u8; usize::from(header[26])];
        if read_up_to(&mut self.reader, &mut lacing)? < lacing.len() {
            return Err(OggError::Truncated { offset });
        }
        let body_len: usize = lacing.iter().map(|l| usize::from(*l)).sum();
        let mut body = vec![0u8; body_len];
        if read_up_to(&mut self.reader, &mut body)? < body_len {
            return Err(OggError::Truncated { offset });
        }
        self.offset += (PAGE_HEADER_LEN + lacing.len() + body_len) as u64;

        header[22..26].fill(0);
        let crc = crc32(crc32(crc32(0, &header), &lacing), &body);
        if crc != stored_crc {
            return Err(OggError::BadCrc { offset });
        }
        if first {
            if flags & FLAG_BOS == 0 {
                return Err(OggError::NotOpus {
                    reason: "first page lacks the BOS flag",
                });
            }
            self.serial = serial;
        } else if serial != self.serial {
            // Another logical stream (a video track, say): not ours.
            return Ok(true);
        }
        if flags & FLAG_CONTINUED == 0 {
            // A packet left open by the previous page was never finished: drop it.
            self.partial.clear();
        }
        let mut at = 0;
        for len in lacing {
            let len = usize::from(len);
            if self.partial.len() + len > MAX_PACKET_BYTES {
                return Err(OggError::PacketTooLarge);
            }
            self.partial.extend_from_slice(&body[at..at + len]);
            at += len;
            if len < 255 {
                self.ready.push_back(std::mem::take(&mut self.partial));
            }
        }
        if flags & FLAG_EOS != 0 {
            self.ended = true;
        }
        Ok(true)
    }
}

fn parse_head(packet: &[u8]) -> Result<OpusHead, OggError> {
    if packet.len() < 19 || !packet.starts_with(b"OpusHead") {
        return Err(OggError::NotOpus {
            reason: "first packet is not OpusHead",
        });
    }
    if packet[8] >> 4 != 0 {
        return Err(OggError::NotOpus {
            reason: "unsupported OpusHead version",
        });
    }
    let channels = packet[9];
    if channels == 0 {
        return Err(OggError::NotOpus {
            reason: "zero channels",
        });
    }
    Ok(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
        input_sample_rate: u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]),
        output_gain: i16::from_le_bytes([packet[16], packet[17]]),
        mapping_family: packet[18],
    })
}

/// Writes an Ogg Opus stream, one packet per page.
#[derive(Debug)]
pub struct OggOpusWriter<W: Write> {
    writer: W,
    serial: u32,
    sequence: u32,
    granule: u64,
    packets: u64,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the `OpusHead` (beginning-of-stream) and `OpusTags` pages.
    pub fn new(writer: W, head: OpusHead, serial: u32) -> Result<Self, OggError> {
        let mut this = Self {
            writer,
            serial,
            sequence: 0,
            granule: 0,
            packets: 0,
        };
        let mut id = b"OpusHead".to_vec();
        id.push(1);
        id.push(head.channels);
        id.extend_from_slice(&head.pre_skip.to_le_bytes());
        id.extend_from_slice(&head.input_sample_rate.to_le_bytes());
        id.extend_from_slice(&head.output_gain.to_le_bytes());
        id.push(head.mapping_family);
        this.write_page(FLAG_BOS, 0, Some(&id))?;
        let vendor = b"chroom";
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        this.write_page(0, 0, Some(&tags))?;
        Ok(this)
    }

    /// Appends one packet lasting `samples_48k` samples.
    pub fn write_packet(&mut self, data: &[u8], samples_48k: u32) -> Result<(), OggError> {
        if data.len() > MAX_WRITE_PACKET_BYTES {
            return Err(OggError::PacketTooLarge);
        }
        self.granule += u64::from(samples_48k);
        self.write_page(0, self.granule, Some(data))?;
        self.packets += 1;
        Ok(())
    }

    /// Audio packets written so far.
    pub fn packets_written(&self) -> u64 {
        self.packets
    }

    /// Writes the end-of-stream page, flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, OggError> {
        // No segments at all: an empty packet here would read back as a zero-length packet.
        self.write_page(FLAG_EOS, self.granule, None)?;
        self.writer.flush()?;
        Ok(self.writer)
    }

    fn write_page(
        &mut self,
        flags: u8,
        granule: u64,
        packet: Option<&[u8]>,
    ) -> Result<(), OggError> {
        let mut lacing = Vec::new();
        if let Some(packet) = packet {
            lacing.resize(packet.len() / 255, 255u8);
            // The final lacing value below 255 ends the packet (0 when the length is a multiple).
            lacing.push((packet.len() % 255) as u8);
        }
        let packet = packet.unwrap_or_default();
        let mut page = Vec::with_capacity(PAGE_HEADER_LEN + lacing.len() + packet.len());
        page.extend_from_slice(CAPTURE);
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.sequence.to_le_bytes());
        page.extend_from_slice(&0u32.to_le_bytes());
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(packet);
        let crc = crc32(0, &page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        self.writer.write_all(&page)?;
        self.sequence += 1;
        Ok(())
    }
}

/// Duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 §3.1); `None`
/// for an empty or malformed packet.
pub fn opus_packet_samples_48k(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = frame * frames;
    // A packet holds at least one frame and at most 120 ms.
    (frames > 0 && total <= 5760).then_some(total)
}

/// Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0, no final xor.
fn crc32(mut crc: u32, bytes: &[u8]) -> u32 {
    for byte in bytes {
        crc ^= u32::from(*byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn head() -> OpusHead {
        OpusHead {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
            mapping_family: 0,
        }
    }

    fn sample_file(packets: &[&[u8]]) -> Vec<u8> {
        let mut writer = OggOpusWriter::new(Cursor::new(Vec::new()), head(), 7).unwrap();
        for packet in packets {
            writer.write_packet(packet, 960).unwrap();
        }
        assert_eq!(writer.packets_written(), packets.len() as u64);
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn round_trip() {
        let long = vec![0x42u8; 600];
        let exact = vec![0x43u8; 510];
        let packets: Vec<&[u8]> = vec![b"\xfc\x01", &long, &exact, b""];
        let file = sample_file(&packets);
        let mut reader = OggOpusReader::new(Cursor::new(file)).unwrap();
        assert_eq!(reader.head(), &head());
        for expected in &packets {
            assert_eq!(reader.read_packet().unwrap().as_deref(), Some(*expected));
        }
        assert_eq!(reader.read_packet().unwrap(), None);
    }

    #[test]
    fn crc_matches_the_reference_check_value() {
        // CRC-32/MPEG-2 without the inversions; "123456789" gives 0x89a1897f.
        assert_eq!(crc32(0, b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn corrupted_page_fails_its_crc() {
        let mut file = sample_file(&[b"\xfc\x01\x02"]);
        let last = file.len() - 30;
        file[last] ^= 0xff;
        let mut reader = OggOpusReader::new(Cursor::new(file)).unwrap();
        let err = reader.read_packet().unwrap_err();
        assert!(matches!(err, OggError::BadCrc { .. }), "{err}");
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let file = sample_file(&[b"\xfc\x01"]);
        assert!(matches!(
            OggOpusReader::new(Cursor::new(&file[..10])),
            Err(OggError::Truncated { .. })
        ));
        assert!(matches!(
            OggOpusReader::new(Cursor::new(b"RIFF....WAVEfmt ".repeat(4))),
            Err(OggError::BadPage { .. })
        ));
        let mut reader = OggOpusReader::new(Cursor::new(&file[..file.len() - 5])).unwrap();
        assert!(reader.read_packet().is_err() || reader.read_packet().is_err());
    }

    #[test]
    fn packet_durations_follow_the_toc() {
        // config 31 (CELT 20 ms), code 0: one frame.
        assert_eq!(opus_packet_samples_48k(&[0xf8]), Some(960));
        // config 1 (SILK 20 ms), code 1: two frames.
        assert_eq!(opus_packet_samples_48k(&[0x09]), Some(1920));
        // config 16 (CELT 2.5 ms), code 3 with 4 frames.
        assert_eq!(opus_packet_samples_48k(&[0x83, 0x04]), Some(480));
        // code 3 without a count byte, zero frames, or over 120 ms.
        assert_eq!(opus_packet_samples_48k(&[0x83]), None);
        assert_eq!(opus_packet_samples_48k(&[0x83, 0x00]), None);
        assert_eq!(opus_packet_samples_48k(&[0x1b, 0x03]), None);
        assert_eq!(opus_packet_samples_48k(&[]), None);
    }
}
