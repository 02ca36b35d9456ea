//! SDP a party outside the node sends before or beside a link — an offer from a page or a
//! WHIP/WHEP client, a trickle ICE fragment (RFC 8840) — parsed and checked before the node
//! spends anything on it (joins a room, allocates a link). Every byte here is untrusted: bad
//! input is an error, never a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use str0m::Candidate;
use str0m::change::SdpOffer;

use crate::api::MediaError;

/// An offer that parses as SDP and has media: what the node knows of it before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOffer {
    /// The ICE username fragment it names (session-level, else its first m-line's): a trickle
    /// fragment naming another one asks for an ICE restart.
    pub ice_ufrag: Option<String>,
    /// Its m-lines (at least one).
    pub media_lines: usize,
}

impl CheckedOffer {
    /// Parses `sdp` as an offer with at least one m-line.
    pub fn parse(sdp: &str) -> Result<Self, MediaError> {
        let offer = catch_unwind(|| SdpOffer::from_sdp_string(sdp))
            .map_err(|_| bad("the offer crashed the sdp parser"))?
            .map_err(|e| bad(&e.to_string()))?;
        if offer.media_lines.is_empty() {
            return Err(bad("the offer has no media"));
        }
        let creds = offer
            .session
            .ice_creds()
            .or_else(|| offer.media_lines[0].ice_creds());
        Ok(Self {
            ice_ufrag: creds.map(|creds| creds.ufrag),
            media_lines: offer.media_lines.len(),
        })
    }
}

/// A trickle ICE fragment (`application/trickle-ice-sdpfrag`) a WHIP or WHEP client patches
/// its session with: the credentials it names and its candidates, each one checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrickleFragment {
    /// The ICE username fragment it names, if any.
    pub ice_ufrag: Option<String>,
    /// Its candidates, as their attribute values (`candidate:…`), each parsed once.
    pub candidates: Vec<String>,
}

impl TrickleFragment {
    /// Parses `body`. Lines it has no use for (`m=`, `a=mid`, `a=ice-pwd`,
    /// `a=end-of-candidates`, …) are skipped; a candidate that does not parse, or a second
    /// username fragment, fails the whole fragment.
    pub fn parse(body: &str) -> Result<Self, MediaError> {
        let mut fragment = Self {
            ice_ufrag: None,
            candidates: Vec::new(),
        };
        for line in body.lines() {
            let Some(value) = line.trim().strip_prefix("a=") else {
                continue;
            };
            if let Some(ufrag) = value.strip_prefix("ice-ufrag:") {
                if fragment
                    .ice_ufrag
                    .as_deref()
                    .is_some_and(|seen| seen != ufrag)
                {
                    return Err(bad("the fragment names two ice username fragments"));
                }
                fragment.ice_ufrag = Some(ufrag.to_owned());
            } else if value.starts_with("candidate:") {
                catch_unwind(AssertUnwindSafe(|| Candidate::from_sdp_string(value)))
                    .map_err(|_| bad("a candidate crashed the sdp parser"))?
                    .map_err(|e| bad(&format!("candidate {value:?}: {e}")))?;
                fragment.candidates.push(value.to_owned());
            }
        }
        Ok(fragment)
    }
}

fn bad(reason: &str) -> MediaError {
    MediaError::BadSdp {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANDIDATE: &str = "candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host";

    #[test]
    fn a_fragment_gives_its_ufrag_and_checked_candidates_and_skips_the_rest() {
        let body = format!(
            "a=ice-ufrag:abcd\r\na=ice-pwd:secret\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na={CANDIDATE}\r\na=end-of-candidates\r\n"
        );
        let fragment = TrickleFragment::parse(&body).unwrap();
        assert_eq!(fragment.ice_ufrag.as_deref(), Some("abcd"));
        assert_eq!(fragment.candidates, [CANDIDATE]);
    }

    #[test]
    fn a_broken_candidate_or_two_ufrags_fail_the_fragment() {
        let error = TrickleFragment::parse("a=candidate:1 1 udp nonsense\r\n").unwrap_err();
        assert!(
            error.to_string().starts_with("bad sdp: candidate"),
            "{error}"
        );
        let two = "a=ice-ufrag:abcd\r\na=ice-ufrag:efgh\r\n";
        assert!(TrickleFragment::parse(two).is_err());
    }

    #[test]
    fn an_offer_gives_its_ufrag_and_media_lines() {
        let mut rtc = str0m::Rtc::new(std::time::Instant::now());
        let mut change = rtc.sdp_api();
        change.add_media(
            str0m::media::MediaKind::Audio,
            str0m::media::Direction::SendOnly,
            None,
            None,
            None,
        );
        change.add_media(
            str0m::media::MediaKind::Video,
            str0m::media::Direction::SendOnly,
            None,
            None,
            None,
        );
        let (offer, _) = change.apply().unwrap();
        let checked = CheckedOffer::parse(&offer.to_sdp_string()).unwrap();
        assert_eq!(checked.media_lines, 2);
        assert_eq!(
            checked.ice_ufrag.as_deref(),
            Some(rtc.direct_api().local_ice_credentials().ufrag.as_str())
        );
    }

    #[test]
    fn an_offer_without_media_or_not_sdp_is_refused() {
        assert!(CheckedOffer::parse("hello").is_err());
        let no_media = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
        assert!(CheckedOffer::parse(no_media).is_err());
    }
}
