//! Splicing: an outgoing track that another source feeds from now on (a broadcast's program
//! starting or ending at the root) keeps its media time running on, as if one source had sent
//! it all, and its video starts again only on a keyframe of the new source: a decoder fed the
//! new source's inter frames would draw garbage until the next one, and a jump in time makes
//! receivers' jitter buffers wait or drop. Sans-IO.

use std::collections::HashMap;

use chroom_types::{LinkId, MediaKind, Track};

use crate::layers::LayerIndex;

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
}
