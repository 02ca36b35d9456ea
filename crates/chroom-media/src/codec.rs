//! What the node reads of a codec's bytes: a VP8 keyframe's size (to tell simulcast layers
//! apart and to name a recording's resolution).

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

#[cfg(test)]
mod tests {
    use super::*;

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
