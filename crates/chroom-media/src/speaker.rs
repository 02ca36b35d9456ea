//! Who speaks: the dominant speaker among the links audio arrives on, from the audio level each
//! sender puts in its packets (RFC 6464, `ssrc-audio-level`: 0 is the loudest, −127 dBov
//! silence). Sans-IO: the media actor feeds it each audio frame's level and asks it whom to
//! show where one picture stands for a room (a WHEP player watching a conference).
//!
//! Levels are smoothed (an exponential average with a [`SMOOTHING`] time constant) so one loud
//! syllable or a cough does not take the floor; the floor changes hands only to a speaker
//! louder than the holder by [`MARGIN`] dB, or once the holder has been quiet for
//! [`QUIET_HANDOVER`]; and it is held at least [`MIN_HOLD`] — the way conferencing servers keep
//! the main picture from flapping between two people talking over each other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chroom_types::LinkId;

/// Time constant of the smoothed level.
pub const SMOOTHING: Duration = Duration::from_millis(300);
/// How much louder (dB) a speaker must be than the holder to take the floor from it.
pub const MARGIN: f32 = 6.0;
/// A holder quiet this long gives the floor to anyone speaking.
pub const QUIET_HANDOVER: Duration = Duration::from_secs(1);
/// The floor is kept at least this long once taken.
pub const MIN_HOLD: Duration = Duration::from_millis(800);
/// Smoothed levels at or above this (dBov) count as speech; background noise stays below.
pub const SPEECH_DBOV: f32 = -50.0;
/// A link heard from less recently than this has stopped sending audio: its level is ignored.
const STALE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Voice {
    /// Smoothed level, dBov (−127 … 0).
    level: f32,
    heard_at: Instant,
    /// When it last counted as speech.
    spoke_at: Option<Instant>,
}

/// The dominant speaker among the links audio arrives on.
#[derive(Debug, Default)]
pub struct Speakers {
    voices: HashMap<LinkId, Voice>,
    /// The link holding the floor, and since when.
    floor: Option<(LinkId, Instant)>,
}

impl Speakers {
    /// An audio frame arrived on `link` at `now` with the sender's `level_dbov` (0 loudest,
    /// −127 silence).
    pub fn observe(&mut self, now: Instant, link: LinkId, level_dbov: i8) {
        let heard = f32::from(level_dbov.clamp(-127, 0));
        let voice = self.voices.entry(link).or_insert(Voice {
            level: -127.0,
            heard_at: now,
            spoke_at: None,
        });
        let elapsed = now.saturating_duration_since(voice.heard_at).as_secs_f32();
        let weight = 1.0 - (-elapsed / SMOOTHING.as_secs_f32()).exp();
        voice.level += (heard - voice.level) * weight;
        voice.heard_at = now;
        if voice.level >= SPEECH_DBOV {
            voice.spoke_at = Some(now);
        }
        self.reconsider(now);
    }

    /// `link` closed: it neither speaks nor holds the floor.
    pub fn forget(&mut self, link: LinkId) {
        self.voices.remove(&link);
        if self.floor.is_some_and(|(holder, _)| holder == link) {
            self.floor = None;
        }
    }

    /// The dominant speaker among `among`: the floor's holder if it is one of them, else the
    /// loudest of them speaking now, else `None` (nobody there has spoken).
    pub fn dominant(&self, now: Instant, among: &[LinkId]) -> Option<LinkId> {
        if let Some((holder, _)) = self.floor
            && among.contains(&holder)
        {
            return Some(holder);
        }
        among
            .iter()
            .filter_map(|link| Some((*link, self.live(now, *link)?)))
            .filter(|(_, voice)| voice.level >= SPEECH_DBOV)
            .max_by(|a, b| a.1.level.total_cmp(&b.1.level))
            .map(|(link, _)| link)
    }

    /// `link`'s voice if it still sends audio.
    fn live(&self, now: Instant, link: LinkId) -> Option<Voice> {
        self.voices
            .get(&link)
            .filter(|voice| now.saturating_duration_since(voice.heard_at) < STALE)
            .copied()
    }

    /// Hands the floor on if someone else should hold it now.
    fn reconsider(&mut self, now: Instant) {
        let Some((challenger, loudest)) = self
            .voices
            .iter()
            .filter(|(_, voice)| {
                voice.level >= SPEECH_DBOV && now.saturating_duration_since(voice.heard_at) < STALE
            })
            .max_by(|a, b| a.1.level.total_cmp(&b.1.level))
            .map(|(link, voice)| (*link, *voice))
        else {
            return;
        };
        let Some((holder, since)) = self.floor else {
            self.floor = Some((challenger, now));
            return;
        };
        if challenger == holder || now.saturating_duration_since(since) < MIN_HOLD {
            return;
        }
        let takes_it = match self.live(now, holder) {
            None => true,
            Some(voice) => {
                let quiet_for = voice
                    .spoke_at
                    .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
                loudest.level >= voice.level + MARGIN || quiet_for >= QUIET_HANDOVER
            }
        };
        if takes_it {
            self.floor = Some((challenger, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LinkId = LinkId(1);
    const B: LinkId = LinkId(2);
    const FRAME: Duration = Duration::from_millis(20);

    /// Two members, A and B, whose audio frames arrive every 20 ms.
    struct Call {
        speakers: Speakers,
        now: Instant,
    }

    impl Call {
        fn new() -> Self {
            Self {
                speakers: Speakers::default(),
                now: Instant::now(),
            }
        }

        /// A speaks at `a` dBov and B at `b` for `ms` milliseconds; then who has the floor.
        fn talk(&mut self, ms: u64, a: i8, b: i8) -> Option<LinkId> {
            let end = self.now + Duration::from_millis(ms);
            while self.now < end {
                self.speakers.observe(self.now, A, a);
                self.speakers.observe(self.now, B, b);
                self.now += FRAME;
            }
            self.speakers.dominant(self.now, &[A, B])
        }
    }

    #[test]
    fn the_one_speaking_holds_the_floor_and_silence_gives_nobody_it() {
        let mut call = Call::new();
        assert_eq!(call.talk(1000, -127, -127), None);
        assert_eq!(call.talk(1000, -127, -20), Some(B));
    }

    #[test]
    fn a_cough_does_not_take_the_floor_but_a_new_speaker_does() {
        let mut call = Call::new();
        assert_eq!(call.talk(2000, -20, -127), Some(A));
        // B coughs for 60 ms over A's talking: smoothed, it stays below A.
        call.talk(60, -20, 0);
        assert_eq!(call.talk(1000, -20, -127), Some(A));
        // A stops; B talks: B has the floor within a second and a half.
        assert_eq!(call.talk(1500, -127, -25), Some(B));
    }

    #[test]
    fn two_talking_over_each_other_do_not_flap() {
        let mut call = Call::new();
        call.talk(1000, -30, -127);
        // B as loud as A, a little louder and a little quieter in turn: A keeps the floor.
        let holders: Vec<Option<LinkId>> = (0..20)
            .map(|round| call.talk(200, -30, if round % 2 == 0 { -28 } else { -32 }))
            .collect();
        assert!(holders.iter().all(|h| *h == Some(A)), "{holders:?}");
    }

    #[test]
    fn a_holder_outside_the_set_asked_about_or_gone_is_passed_over() {
        let mut call = Call::new();
        assert_eq!(call.talk(1000, -10, -30), Some(A));
        let now = call.now;
        assert_eq!(call.speakers.dominant(now, &[B]), Some(B));
        call.speakers.forget(A);
        assert_eq!(call.speakers.dominant(now, &[A, B]), Some(B));
        // B stops sending altogether: after a while nobody is speaking.
        assert_eq!(call.speakers.dominant(now + STALE, &[A, B]), None);
    }
}
