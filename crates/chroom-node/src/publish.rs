//! Headless publishing: plays VP8 from an IVF file and Opus from an Ogg file into a room, in
//! real time, as a live source (looping by default).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI8, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chroom_media::container::{ivf, ogg};
use chroom_media::layers::{LayerIndex, MAX_LAYERS};
use chroom_media::{AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ};
use chroom_types::MediaKind;
use tokio_util::sync::CancellationToken;

use crate::RunningNode;

/// Samples per Opus packet assumed when a packet's TOC byte cannot be read.
const DEFAULT_OPUS_SAMPLES: u32 = 960;

/// Media loaded from files, ready to play.
#[derive(Debug, Clone)]
pub struct MediaSource {
    video: Option<Track>,
    /// Smaller encodings of the video, lowest first: simulcast layers below `video`.
    lower_layers: Vec<Track>,
    audio: Option<Track>,
    /// The level its audio packets say they carry, if set: a file's loudness is not known
    /// without decoding it.
    audio_level: Option<AudioLevel>,
}

/// The audio level (RFC 6464: 0 loudest, −127 dBov silence) a source's packets carry, which
/// whoever holds a clone may change while it plays (a bot that speaks now and then, a test).
/// Members take the loudest for the active speaker.
#[derive(Debug, Clone)]
pub struct AudioLevel(Arc<AtomicI8>);

impl AudioLevel {
    /// A level starting at `dbov`.
    pub fn new(dbov: i8) -> Self {
        Self(Arc::new(AtomicI8::new(dbov)))
    }

    /// From now on the packets carry `dbov`.
    pub fn set(&self, dbov: i8) {
        self.0.store(dbov, Ordering::Relaxed);
    }

    fn get(&self) -> i8 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One track: frames with their offsets (in the track's RTP clock) from the track's start.
#[derive(Debug, Clone)]
struct Track {
    frames: Vec<(u64, Arc<[u8]>)>,
    /// Length of one pass, in RTP clock units; the next loop starts here.
    duration: u64,
}

/// Whether to play the files once or forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looping {
    /// Start over at the end: a live source that never ends.
    Forever,
    /// Stop after one pass.
    Once,
}

impl MediaSource {
    /// Reads the files. At least one is needed.
    pub fn load(video: Option<&Path>, audio: Option<&Path>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            video.is_some() || audio.is_some(),
            "nothing to publish: give --video, --audio or both"
        );
        let video = video.map(load_video).transpose()?;
        let audio = audio.map(load_audio).transpose()?;
        Ok(Self {
            video,
            lower_layers: Vec::new(),
            audio,
            audio_level: None,
        })
    }

    /// The same media, with `paths` (VP8 in IVF, lowest first) sent as simulcast layers below
    /// the video, each link getting the layer it carries as it would of a page's camera.
    pub fn with_lower_layers(mut self, paths: &[PathBuf]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            paths.is_empty() || self.video.is_some(),
            "lower layers need a --video to be the top one"
        );
        anyhow::ensure!(
            paths.len() < MAX_LAYERS,
            "at most {} lower layers (simulcast has {MAX_LAYERS})",
            MAX_LAYERS - 1
        );
        self.lower_layers = paths
            .iter()
            .map(|path| load_video(path))
            .collect::<anyhow::Result<_>>()?;
        Ok(self)
    }

    /// The same media, its audio packets carrying `level` as it is set while playing.
    pub fn with_audio_level(mut self, level: AudioLevel) -> Self {
        self.audio_level = Some(level);
        self
    }

    /// The kinds this source has.
    pub fn kinds(&self) -> Vec<MediaKind> {
        let mut kinds = Vec::new();
        if self.audio.is_some() {
            kinds.push(MediaKind::Audio);
        }
        if self.video.is_some() {
            kinds.push(MediaKind::Video);
        }
        kinds
    }

    /// Video frames in file order.
    pub fn video_frames(&self) -> impl Iterator<Item = &[u8]> {
        self.video
            .iter()
            .flat_map(|t| t.frames.iter().map(|(_, data)| &data[..]))
    }

    /// RTP ticks between two video frames (3000 at 30 fps), if the source has video.
    pub fn video_frame_ticks(&self) -> Option<u64> {
        let track = self.video.as_ref()?;
        Some(track.duration / track.frames.len().max(1) as u64)
    }
}

fn load_video(path: &Path) -> anyhow::Result<Track> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (header, frames) = ivf::read_all(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        &header.fourcc == b"VP80",
        "{}: codec {:?} is not VP8",
        path.display(),
        String::from_utf8_lossy(&header.fourcc)
    );
    anyhow::ensure!(!frames.is_empty(), "{} has no frames", path.display());
    anyhow::ensure!(
        header.timebase_den > 0 && header.timebase_num > 0,
        "{}: invalid timebase {}/{}",
        path.display(),
        header.timebase_num,
        header.timebase_den
    );
    let to_rtp = |pts: u64| -> u64 {
        // pts counts timebase_num/timebase_den seconds.
        (u128::from(pts) * u128::from(VIDEO_CLOCK_HZ) * u128::from(header.timebase_num)
            / u128::from(header.timebase_den)) as u64
    };
    let first = frames[0].pts;
    let offsets: Vec<(u64, Arc<[u8]>)> = frames
        .into_iter()
        .map(|f| (to_rtp(f.pts.saturating_sub(first)), Arc::from(f.data)))
        .collect();
    // One frame interval past the last frame, so loops keep the frame rate.
    let interval = if offsets.len() > 1 {
        offsets[offsets.len() - 1].0 / (offsets.len() as u64 - 1)
    } else {
        u64::from(VIDEO_CLOCK_HZ) / 30
    };
    let duration = offsets[offsets.len() - 1].0 + interval.max(1);
    Ok(Track {
        frames: offsets,
        duration,
    })
}

fn load_audio(path: &Path) -> anyhow::Result<Track> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = ogg::OggOpusReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut frames = Vec::new();
    let mut at = 0u64;
    while let Some(packet) = reader
        .read_packet()
        .with_context(|| format!("reading {}", path.display()))?
    {
        let samples = ogg::opus_packet_samples_48k(&packet).unwrap_or(DEFAULT_OPUS_SAMPLES);
        frames.push((at, Arc::from(packet)));
        // Opus RTP always uses a 48 kHz clock (RFC 7587 §4.1).
        at += u64::from(samples) * u64::from(AUDIO_CLOCK_HZ) / 48_000;
    }
    anyhow::ensure!(!frames.is_empty(), "{} has no packets", path.display());
    Ok(Track {
        frames,
        duration: at,
    })
}

/// What a publish run sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Video frames handed to the node.
    pub video_frames: u64,
    /// Audio packets handed to the node.
    pub audio_packets: u64,
}

/// Plays `source` into `node` in real time until `cancel` (or the end, with [`Looping::Once`]).
pub async fn publish(
    node: &RunningNode,
    source: &MediaSource,
    looping: Looping,
    cancel: CancellationToken,
) -> anyhow::Result<PublishStats> {
    let start = Instant::now();
    // Layered, the top layer comes after the lower ones.
    let layered = !source.lower_layers.is_empty();
    let top = source.lower_layers.len() as LayerIndex;
    let video = source.video.as_ref().map(|t| {
        let playing = Playing::Video(layered.then_some(top));
        play(node, t, playing, start, looping, &cancel)
    });
    let lower =
        futures::future::try_join_all(source.lower_layers.iter().zip(0..).map(|(track, layer)| {
            play(
                node,
                track,
                Playing::Video(Some(layer)),
                start,
                looping,
                &cancel,
            )
        }));
    let audio = source.audio.as_ref().map(|t| {
        let playing = Playing::Audio(source.audio_level.as_ref());
        play(node, t, playing, start, looping, &cancel)
    });
    let (video, audio, lower) = tokio::join!(
        async {
            match video {
                Some(f) => f.await,
                None => Ok(0),
            }
        },
        async {
            match audio {
                Some(f) => f.await,
                None => Ok(0),
            }
        },
        lower
    );
    lower?;
    Ok(PublishStats {
        video_frames: video?,
        audio_packets: audio?,
    })
}

/// What one [`play`] sends.
#[derive(Clone, Copy)]
enum Playing<'a> {
    /// Video, as this simulcast layer if the source has layers.
    Video(Option<LayerIndex>),
    /// Audio, its packets carrying this level if set.
    Audio(Option<&'a AudioLevel>),
}

async fn play(
    node: &RunningNode,
    track: &Track,
    playing: Playing<'_>,
    start: Instant,
    looping: Looping,
    cancel: &CancellationToken,
) -> anyhow::Result<u64> {
    let clock_hz = match playing {
        Playing::Video(_) => VIDEO_CLOCK_HZ,
        Playing::Audio(_) => AUDIO_CLOCK_HZ,
    };
    let mut sent = 0;
    for pass in 0u64.. {
        if pass > 0 && looping == Looping::Once {
            break;
        }
        for (offset, data) in &track.frames {
            let rtp_time = pass * track.duration + offset;
            let due = start + Duration::from_micros(rtp_time * 1_000_000 / u64::from(clock_hz));
            tokio::select! {
                () = cancel.cancelled() => return Ok(sent),
                () = tokio::time::sleep_until(due.into()) => {}
            }
            match playing {
                Playing::Video(None) => {
                    node.send_frame(MediaKind::Video, rtp_time, data.clone(), None)
                        .await?;
                }
                Playing::Video(Some(layer)) => {
                    node.send_video_layer(layer, rtp_time, data.clone()).await?;
                }
                Playing::Audio(level) => {
                    // Without a level set, a file's audio carries none: nobody takes it for
                    // the active speaker.
                    let level = level.map(AudioLevel::get);
                    node.send_frame(MediaKind::Audio, rtp_time, data.clone(), level)
                        .await?;
                }
            }
            sent += 1;
        }
    }
    Ok(sent)
}

/// Tells every member `node` receives from in `room` that it shows their video `height`
/// pixels tall (once each, as they come), for as long as the node runs.
pub async fn show_members_at(node: crate::NodeHandle, room: chroom_types::RoomId, height: u32) {
    let mut told = std::collections::HashSet::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let Ok(members) = node.receiving_from(room).await else {
            return;
        };
        for (peer, _) in members {
            if told.insert(peer) {
                node.show_video_at(room, peer, height);
            }
        }
    }
}
