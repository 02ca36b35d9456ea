//! Splicing: an outgoing track that another source feeds from now on (a broadcast's program
//! starting or ending at the root) keeps its media time running on, as if one source had sent
//! it all, and its video starts again only on a keyframe of the new source: a decoder fed the
//! new source's inter frames would draw garbage until the next one, and a jump in time makes
//! receivers' jitter buffers wait or drop. Sans-IO.
//!
//! A relayer forwards packets, not frames, and numbers them for each child as its parent link
//! did: when that parent changes (the old one went quiet or crashed, and the relayer found
//! another), the new parent's numbers start elsewhere. A child that sees its sequence numbers
//! jump by more than half their space guesses the wrong SRTP rollover counter and drops every
//! packet after it: its whole subtree would go dark. [`PacketSplices`] keeps each child's
//! numbers and times running on across such a change.

use std::collections::HashMap;
use std::time::Instant;

use chroom_types::{LinkId, MediaKind, Track};

use crate::layers::LayerIndex;
use crate::{AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ, clock_ticks};

/// The gap put between the last frame of one source and the first of the next: one video
/// frame at 30 fps (90 kHz clock), one 20 ms Opus packet (48 kHz clock).
const fn frame_gap(kind: MediaKind) -> u64 {
    match kind {
        MediaKind::Video => 3000,
        MediaKind::Audio => 960,
    }
}

/// What to do with a frame on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spliced {
    /// Write it at this media time.
    Write(u64),
    /// Drop it: the track waits for a keyframe of its new source (ask that source for one).
    AwaitKeyframe,
}

/// Per outgoing stream (a link's track, and on a link to a relayer, one simulcast layer of
/// it), the source feeding it and the offset that keeps its time running on.
#[derive(Debug, Default)]
pub(crate) struct Splices {
    tracks: HashMap<(LinkId, Track, Option<LayerIndex>), Splice>,
}

#[derive(Debug, Clone, Copy)]
struct Splice {
    source: LinkId,
    /// Added (wrapping) to the source's media time.
    offset: u64,
    /// The media time last written.
    last_out: u64,
    /// A new source feeds the track: its first frame written sets the offset.
    fresh: bool,
    /// Video of a new source waits for its keyframe.
    awaiting_keyframe: bool,
}

impl Splices {
    /// A frame of `source` at media time `time` (a `keyframe`, for video) is to be written on
    /// `to`'s `track` (on its simulcast stream `layer`, to a relayer).
    pub(crate) fn splice(
        &mut self,
        (to, track, layer): (LinkId, Track, Option<LayerIndex>),
        source: LinkId,
        time: u64,
        keyframe: bool,
    ) -> Spliced {
        let video = track.kind() == MediaKind::Video;
        let splice = self.tracks.entry((to, track, layer)).or_insert(Splice {
            source,
            offset: 0,
            last_out: time,
            fresh: false,
            awaiting_keyframe: false,
        });
        if splice.source != source {
            splice.source = source;
            splice.fresh = true;
            splice.awaiting_keyframe = video;
        }
        if splice.awaiting_keyframe {
            if !keyframe {
                return Spliced::AwaitKeyframe;
            }
            splice.awaiting_keyframe = false;
        }
        if std::mem::take(&mut splice.fresh) {
            let next = splice.last_out.wrapping_add(frame_gap(track.kind()));
            splice.offset = next.wrapping_sub(time);
        }
        let out = time.wrapping_add(splice.offset);
        splice.last_out = out;
        Spliced::Write(out)
    }

    /// `link` closed: what was kept of its tracks goes.
    pub(crate) fn forget(&mut self, link: LinkId) {
        self.tracks.retain(|(to, _, _), _| *to != link);
    }
}

/// Per outgoing packet stream (a child's track, and to a relayer one simulcast layer of it),
/// the upstream link feeding it and the offsets that keep its numbers and times running on.
#[derive(Debug, Default)]
pub(crate) struct PacketSplices {
    streams: HashMap<(LinkId, Track, Option<LayerIndex>), PacketSplice>,
}

#[derive(Debug, Clone, Copy)]
struct PacketSplice {
    source: LinkId,
    /// The source fed the stream before `source`: its packets still in flight are dropped.
    retired: Option<LinkId>,
    /// Added (wrapping) to the source's sequence number and media time.
    seq_offset: u64,
    time_offset: u64,
    /// The highest sequence number written, the media time written last, and when.
    last_seq: u64,
    last_time: u64,
    last_at: Instant,
}

impl PacketSplices {
    /// A packet of `source` numbered `seq` at media time `time` is to be written on `to`'s
    /// `track` (its stream `layer`, to a relayer): under which number and time, or `None` to
    /// drop it (a packet of the source this stream had before).
    pub(crate) fn splice(
        &mut self,
        (to, track, layer): (LinkId, Track, Option<LayerIndex>),
        source: LinkId,
        (seq, time): (u64, u64),
        now: Instant,
    ) -> Option<(u64, u64)> {
        let splice = self
            .streams
            .entry((to, track, layer))
            .or_insert(PacketSplice {
                source,
                retired: None,
                seq_offset: 0,
                time_offset: 0,
                last_seq: seq,
                last_time: time,
                last_at: now,
            });
        if splice.source != source {
            if splice.retired == Some(source) {
                return None;
            }
            // The new source's first packet follows the last one written, by as much media
            // time as the wall clock moved.
            let clock = match track.kind() {
                MediaKind::Video => VIDEO_CLOCK_HZ,
                MediaKind::Audio => AUDIO_CLOCK_HZ,
            };
            let ticks = clock_ticks(now.saturating_duration_since(splice.last_at), clock);
            splice.retired = Some(splice.source);
            splice.source = source;
            splice.seq_offset = splice.last_seq.wrapping_add(1).wrapping_sub(seq);
            splice.time_offset = splice.last_time.wrapping_add(ticks).wrapping_sub(time);
        }
        let out = (
            seq.wrapping_add(splice.seq_offset),
            time.wrapping_add(splice.time_offset),
        );
        splice.last_seq = splice.last_seq.max(out.0);
        splice.last_time = out.1;
        splice.last_at = now;
        Some(out)
    }

    /// `link` closed: what was kept of its streams goes.
    pub(crate) fn forget(&mut self, link: LinkId) {
        self.streams.retain(|(to, _, _), _| *to != link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: LinkId = LinkId(1);
    const RAW: LinkId = LinkId(2);
    const PROGRAM: LinkId = LinkId(3);

    #[test]
    fn one_source_passes_unchanged() {
        let mut splices = Splices::default();
        for time in [1000, 4000, 7000] {
            assert_eq!(
                splices.splice((TO, Track::Camera, None), RAW, time, false),
                Spliced::Write(time)
            );
        }
    }

    #[test]
    fn a_new_sources_video_waits_for_its_keyframe_and_runs_on_from_the_old_time() {
        let mut splices = Splices::default();
        splices.splice((TO, Track::Camera, None), RAW, 90_000, true);
        // The program's clock starts elsewhere; its inter frames are held back.
        assert_eq!(
            splices.splice((TO, Track::Camera, None), PROGRAM, 5_000, false),
            Spliced::AwaitKeyframe
        );
        assert_eq!(
            splices.splice((TO, Track::Camera, None), PROGRAM, 8_000, true),
            Spliced::Write(93_000),
            "one frame after the last one written"
        );
        assert_eq!(
            splices.splice((TO, Track::Camera, None), PROGRAM, 11_000, false),
            Spliced::Write(96_000)
        );
        // And back: the browser's own camera takes over at its next keyframe.
        assert_eq!(
            splices.splice((TO, Track::Camera, None), RAW, 200_000, false),
            Spliced::AwaitKeyframe
        );
        assert_eq!(
            splices.splice((TO, Track::Camera, None), RAW, 203_000, true),
            Spliced::Write(99_000)
        );
    }

    #[test]
    fn audio_switches_at_once_and_each_link_and_track_splices_alone() {
        let mut splices = Splices::default();
        splices.splice((TO, Track::Microphone, None), RAW, 48_000, false);
        splices.splice((LinkId(9), Track::Microphone, None), RAW, 48_000, false);
        assert_eq!(
            splices.splice((TO, Track::Microphone, None), PROGRAM, 10, false),
            Spliced::Write(48_960)
        );
        assert_eq!(
            splices.splice((LinkId(9), Track::Microphone, None), RAW, 48_960, false),
            Spliced::Write(48_960),
            "another link keeps its source"
        );
        // A clock near its end wraps instead of overflowing.
        assert!(matches!(
            splices.splice((TO, Track::Microphone, None), RAW, u64::MAX - 5, false),
            Spliced::Write(_)
        ));
        splices.forget(TO);
        assert_eq!(
            splices.splice((TO, Track::Microphone, None), PROGRAM, 77, false),
            Spliced::Write(77)
        );
    }

    #[test]
    fn a_childs_packets_run_on_when_its_relayer_takes_another_parent() {
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        let at = |ms: u64| start + std::time::Duration::from_millis(ms);
        let mut splices = PacketSplices::default();
        let key = (TO, Track::Camera, None);
        // The first parent's numbers pass unchanged.
        assert_eq!(
            splices.splice(key, RAW, (100, 9_000), at(0)),
            Some((100, 9_000))
        );
        assert_eq!(
            splices.splice(key, RAW, (101, 12_000), at(33)),
            Some((101, 12_000))
        );
        // The new parent numbers from far away (over half the 16-bit space): the child sees
        // the next number, and time on by the 200 ms that passed.
        assert_eq!(
            splices.splice(key, PROGRAM, (40_000, 500_000), at(233)),
            Some((102, 12_000 + 18_000))
        );
        assert_eq!(
            splices.splice(key, PROGRAM, (40_001, 503_000), at(266)),
            Some((103, 33_000))
        );
        // A packet of the old parent still in flight is dropped, not numbered in.
        assert_eq!(splices.splice(key, RAW, (102, 15_000), at(270)), None);
        // Audio ticks at 48 kHz; another child keeps its own numbers.
        let audio = (TO, Track::Microphone, None);
        splices.splice(audio, RAW, (7, 960), at(0));
        assert_eq!(
            splices.splice(audio, PROGRAM, (9_000, 1), at(100)),
            Some((8, 960 + 4_800))
        );
        let other = (LinkId(9), Track::Camera, None);
        assert_eq!(
            splices.splice(other, PROGRAM, (40_002, 506_000), at(300)),
            Some((40_002, 506_000))
        );
        splices.forget(TO);
        assert_eq!(
            splices.splice(key, PROGRAM, (40_003, 509_000), at(333)),
            Some((40_003, 509_000))
        );
    }
}
