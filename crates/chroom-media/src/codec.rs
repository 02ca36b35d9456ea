//! What the node reads of a codec's bytes: a VP8 keyframe's size (to tell simulcast layers
//! apart and to name a recording's resolution), and a VP8 RTP packet's payload descriptor (a
//! relayer choosing a layer per child sees packets, not frames).

/// Width and height of a VP8 keyframe (RFC 6386 §9.1), or `None` for an inter frame or a
/// truncated one.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    // Bit 0 of the frame tag is the inverse keyframe flag; a keyframe carries a start code and
    // 14-bit dimensions after the 3-byte tag.
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

/// What a relayer needs of one VP8 RTP packet (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Packet {
    /// The packet starts a frame (start of partition 0).
    pub starts_frame: bool,
    /// It starts a keyframe.
    pub keyframe: bool,
    /// The frame's temporal layer, when the descriptor carries one.
    pub temporal: Option<u8>,
    /// The picture's height, when it starts a keyframe whose header it holds.
    pub height: Option<u16>,
}

/// Reads the payload descriptor of a VP8 RTP packet's `payload`; `None` when it is too short
/// for the descriptor it announces.
pub fn vp8_packet(payload: &[u8]) -> Option<Vp8Packet> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let starts_partition = first & 0x10 != 0;
    let partition = first & 0x07;
    let mut at = 1;
    let mut temporal = None;
    if extended {
        let flags = *payload.get(at)?;
        at += 1;
        // I: picture id, 7 or 15 bits.
        if flags & 0x80 != 0 {
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        // L: TL0PICIDX.
        if flags & 0x40 != 0 {
            at += 1;
        }
        // T or K: one byte, TID in its top two bits.
        if flags & 0x30 != 0 {
            let byte = *payload.get(at)?;
            if flags & 0x20 != 0 {
                temporal = Some(byte >> 6);
            }
            at += 1;
        }
    }
    let header = payload.get(at..)?;
    let starts_frame = starts_partition && partition == 0;
    // The VP8 payload header's P bit (inverse keyframe flag) is only there at a frame's start.
    let keyframe = starts_frame && header.first().is_some_and(|byte| byte & 1 == 0);
    Some(Vp8Packet {
        starts_frame,
        keyframe,
        temporal,
        height: if keyframe {
            vp8_keyframe_size(header).map(|(_, height)| height)
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyframe_header() -> Vec<u8> {
        let mut key = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        key.extend_from_slice(&320u16.to_le_bytes());
        key.extend_from_slice(&180u16.to_le_bytes());
        key
    }

    #[test]
    fn a_packet_starting_a_keyframe_says_so_with_its_height_and_temporal_layer() {
        // X, S, partition 0; I with a 15-bit picture id, L, T (TID 0).
        let mut packet = vec![0x90, 0xe0, 0x81, 0x23, 0x07, 0x20];
        packet.extend(keyframe_header());
        assert_eq!(
            vp8_packet(&packet),
            Some(Vp8Packet {
                starts_frame: true,
                keyframe: true,
                temporal: Some(0),
                height: Some(180),
            })
        );
    }

    #[test]
    fn later_packets_and_inter_frames_are_no_keyframe_starts() {
        // A minimal descriptor (no X), S set: an inter frame (P bit set).
        let inter = [0x10, 0x01, 0x00, 0x00];
        let read = vp8_packet(&inter).unwrap();
        assert!(read.starts_frame && !read.keyframe);
        // X with T only, TID 2; S clear: the middle of a frame, even if its bytes look like a
        // keyframe header.
        let mut middle = vec![0x80, 0x20, 0x80];
        middle.extend(keyframe_header());
        let read = vp8_packet(&middle).unwrap();
        assert_eq!(read.temporal, Some(2));
        assert!(!read.starts_frame && !read.keyframe && read.height.is_none());
        // S set but in partition 1: not the frame's start.
        assert!(!vp8_packet(&[0x11, 0x00]).unwrap().starts_frame);
    }

    #[test]
    fn a_descriptor_cut_short_is_refused() {
        assert_eq!(vp8_packet(&[]), None);
        // X announces an extension byte that is missing.
        assert_eq!(vp8_packet(&[0x90]), None);
        // I announces a 15-bit picture id with one byte there.
        assert_eq!(vp8_packet(&[0x90, 0x80, 0x81]), None);
    }

    #[test]
    fn keyframe_size_is_read_and_inter_frames_are_not_keyframes() {
        let mut key = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        key.extend_from_slice(&640u16.to_le_bytes());
        key.extend_from_slice(&360u16.to_le_bytes());
        assert_eq!(vp8_keyframe_size(&key), Some((640, 360)));
        let mut inter = key.clone();
        inter[0] |= 1;
        assert_eq!(vp8_keyframe_size(&inter), None);
        assert_eq!(vp8_keyframe_size(&key[..5]), None);
    }
}
