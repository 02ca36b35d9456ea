//! Headless recording: writes what publishers in a room send to IVF (VP8) and Ogg (Opus) files,
//! one pair per publisher.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chroom_media::container::{ivf, ogg};
use chroom_media::{ReceivedFrame, VIDEO_CLOCK_HZ};
use chroom_net::PeerId;
use chroom_types::{MediaKind, Track};

use crate::node::NodeFrame;

/// Samples per Opus packet assumed when a packet's TOC byte cannot be read.
const DEFAULT_OPUS_SAMPLES: u32 = 960;

/// When to stop recording.
#[derive(Debug, Clone, Copy, Default)]
pub struct StopAfter {
    /// After this many video frames from one publisher.
    pub video_frames: Option<u64>,
    /// After this long.
    pub duration: Option<Duration>,
}

/// What a recording produced.
#[derive(Debug, Clone, Default)]
pub struct RecordStats {
    /// Time from the recorder's start to its first frame of any kind.
    pub first_frame_after: Option<Duration>,
    /// Time from the recorder's start to its first video keyframe.
    pub first_keyframe_after: Option<Duration>,
    /// Per publisher: files written and counts.
    pub publishers: Vec<PublisherRecording>,
}

/// The files and counts of one publisher.
#[derive(Debug, Clone)]
pub struct PublisherRecording {
    /// The publisher.
    pub peer: PeerId,
    /// The IVF file, if video arrived.
    pub video_path: Option<PathBuf>,
    /// Video frames written.
    pub video_frames: u64,
    /// Video frames received before the first keyframe (not written: undecodable).
    pub skipped_before_keyframe: u64,
    /// The Ogg file, if audio arrived.
    pub audio_path: Option<PathBuf>,
    /// Audio packets written.
    pub audio_packets: u64,
}

/// Writes received frames to files.
#[derive(Debug)]
pub struct Recorder {
    out_dir: PathBuf,
    started: Instant,
    stats: RecordStats,
    peers: HashMap<PeerId, PeerFiles>,
}

#[derive(Debug)]
struct PeerFiles {
    video: Option<ivf::IvfWriter<BufWriter<File>>>,
    video_base: Option<u64>,
    audio: Option<ogg::OggOpusWriter<BufWriter<File>>>,
    index: usize,
}

impl Recorder {
    /// A recorder writing into `out_dir` (created if missing). `started` is when recording was
    /// asked for, the reference for the first-frame times.
    pub fn new(out_dir: &Path, started: Instant) -> anyhow::Result<Self> {
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        Ok(Self {
            out_dir: out_dir.to_path_buf(),
            started,
            stats: RecordStats::default(),
            peers: HashMap::new(),
        })
    }

    /// Writes one frame. A member's camera and microphone are recorded; a shared screen (a
    /// second video track) is not mixed into its camera's file.
    pub fn write(&mut self, frame: &NodeFrame) -> anyhow::Result<()> {
        if frame.frame.track != Track::main(frame.frame.kind) {
            return Ok(());
        }
        let elapsed = frame
            .frame
            .received_at
            .saturating_duration_since(self.started);
        self.stats.first_frame_after.get_or_insert(elapsed);
        let index = match self
            .stats
            .publishers
            .iter()
            .position(|p| p.peer == frame.peer)
        {
            Some(i) => i,
            None => {
                self.stats.publishers.push(PublisherRecording {
                    peer: frame.peer,
                    video_path: None,
                    video_frames: 0,
                    skipped_before_keyframe: 0,
                    audio_path: None,
                    audio_packets: 0,
                });
                self.stats.publishers.len() - 1
            }
        };
        let files = self.peers.entry(frame.peer).or_insert(PeerFiles {
            video: None,
            video_base: None,
            audio: None,
            index,
        });
        let record = &mut self.stats.publishers[files.index];
        let ReceivedFrame {
            kind,
            rtp_time,
            data,
            ..
        } = &frame.frame;
        match kind {
            MediaKind::Video => {
                if files.video.is_none() {
                    let Some((width, height)) = vp8_keyframe_size(data) else {
                        record.skipped_before_keyframe += 1;
                        return Ok(());
                    };
                    self.stats.first_keyframe_after.get_or_insert(elapsed);
                    let path = self.out_dir.join(format!("{}.ivf", frame.peer));
                    let file = File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let header = ivf::IvfHeader {
                        fourcc: *b"VP80",
                        width,
                        height,
                        timebase_num: 1,
                        timebase_den: VIDEO_CLOCK_HZ,
                        frame_count: 0,
                    };
                    files.video = Some(ivf::IvfWriter::new(BufWriter::new(file), header)?);
                    files.video_base = Some(*rtp_time);
                    record.video_path = Some(path);
                }
                let base = files.video_base.unwrap_or(*rtp_time);
                if let Some(writer) = &mut files.video {
                    writer.write_frame(rtp_time.saturating_sub(base), data)?;
                    record.video_frames += 1;
                }
            }
            MediaKind::Audio => {
                if files.audio.is_none() {
                    let path = self.out_dir.join(format!("{}.ogg", frame.peer));
                    let file = File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let head = ogg::OpusHead {
                        channels: 2,
                        pre_skip: 312,
                        input_sample_rate: 48_000,
                        output_gain: 0,
                        mapping_family: 0,
                    };
                    let serial = u32::try_from(index).unwrap_or(0) + 1;
                    files.audio =
                        Some(ogg::OggOpusWriter::new(BufWriter::new(file), head, serial)?);
                    record.audio_path = Some(path);
                }
                if let Some(writer) = &mut files.audio {
                    let samples =
                        ogg::opus_packet_samples_48k(data).unwrap_or(DEFAULT_OPUS_SAMPLES);
                    writer.write_packet(data, samples)?;
                    record.audio_packets += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether `stop` is reached.
    pub fn is_done(&self, stop: &StopAfter) -> bool {
        let frames_done = stop
            .video_frames
            .is_some_and(|n| self.stats.publishers.iter().any(|p| p.video_frames >= n));
        let time_done = stop.duration.is_some_and(|d| self.started.elapsed() >= d);
        frames_done || time_done
    }

    /// Counts so far.
    pub fn stats(&self) -> &RecordStats {
        &self.stats
    }

    /// Finalises every file (IVF frame count, Ogg end-of-stream) and returns the stats.
    pub fn finish(self) -> anyhow::Result<RecordStats> {
        for (_, files) in self.peers {
            if let Some(writer) = files.video {
                writer.finish()?;
            }
            if let Some(writer) = files.audio {
                writer.finish()?;
            }
        }
        Ok(self.stats)
    }
}

pub use chroom_media::vp8_keyframe_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_screen_is_not_mixed_into_the_camera_file() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let mut recorder = Recorder::new(dir.path(), started).unwrap();
        let mut key = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        key.extend_from_slice(&1280u16.to_le_bytes());
        key.extend_from_slice(&720u16.to_le_bytes());
        let frame = |track| NodeFrame {
            peer: PeerId::random(),
            link: chroom_types::LinkId(1),
            frame: ReceivedFrame {
                kind: MediaKind::Video,
                track,
                rtp_time: 0,
                contiguous: true,
                data: key.clone().into(),
                received_at: started,
                audio_level: None,
            },
        };
        recorder.write(&frame(Track::Screen)).unwrap();
        assert!(recorder.stats().publishers.is_empty());
        recorder.write(&frame(Track::Camera)).unwrap();
        assert_eq!(recorder.stats().publishers[0].video_frames, 1);
    }
}
