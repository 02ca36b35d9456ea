//! Negotiation: building a link's `Rtc` (extensions, codecs, ICE host candidates), building and
//! accepting SDP offers and answers, and which track each m-line (mid) carries.
//!
//! These functions work on one `Rtc` or [`Link`] and never see the actor: it allocates link ids
//! and registers links with the router once negotiation succeeded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use chroom_types::{LinkId, LinkMode, MediaKind, Track};
use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction, MediaAdded, Mid, Simulcast, SimulcastLayer};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc};

use crate::api::{MediaConfig, MediaError, PlaybackOffer, PlaybackSlot};
use crate::layers::LAYER_RIDS;

/// How often str0m reports what each received stream carried, and its estimator's own latest
/// estimate (whose moves show the estimator alive, see `estimation.rs`).
const STATS_INTERVAL: Duration = Duration::from_millis(500);
use crate::link::Link;
use crate::router::SlotMids;

/// An offer built on a fresh `Rtc`, before its link exists.
#[derive(Debug)]
pub(crate) struct BuiltOffer {
    pub(crate) sdp: String,
    pub(crate) pending: SdpPendingOffer,
    /// The m-lines this side added: str0m reports `MediaAdded` only for the remote's, so the
    /// link must be told which track each carries.
    media: Vec<(Mid, Track, Direction)>,
}

impl BuiltOffer {
    /// Tells `link` which track each offered m-line carries, in each direction.
    pub(crate) fn record_media(&self, link: &mut Link) {
        for (mid, track, direction) in &self.media {
            if *direction != Direction::SendOnly {
                link.expect_receive(*mid, *track);
            }
            if *direction != Direction::RecvOnly {
                link.expect_send(*mid, *track);
            }
        }
    }
}

/// A playback offer built on a fresh `Rtc`: its slots' m-lines and the screen's.
#[derive(Debug)]
pub(crate) struct BuiltPlayback {
    pub(crate) sdp: String,
    pub(crate) pending: SdpPendingOffer,
    pub(crate) slots: Vec<SlotMids>,
    pub(crate) screen: Option<Mid>,
}

impl BuiltPlayback {
    /// The offer as the node sees it, for the link `link`.
    pub(crate) fn to_offer(&self, link: LinkId) -> PlaybackOffer {
        PlaybackOffer {
            link,
            sdp: self.sdp.clone(),
            slots: self
                .slots
                .iter()
                .map(|slot| PlaybackSlot {
                    audio_mid: slot.audio.to_string(),
                    video_mid: slot.video.map(|mid| mid.to_string()),
                })
                .collect(),
            screen_mid: self.screen.map(|mid| mid.to_string()),
        }
    }
}

/// Transport-wide congestion control (TWCC) on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Congestion {
    /// None: relay-tree links, which forward packets as they come.
    Off,
    /// Feedback on what arrives, for the peer's estimator: a page's links (its browser sizes
    /// its simulcast layers by it; without feedback it stays at its 300 kbit/s start).
    Feedback,
    /// Feedback both ways, and this side estimates what the link carries: conference links
    /// between nodes, whose simulcast layer follows the estimate.
    Estimate,
}

/// A new `Rtc` for a link in `mode`, offering `candidates` as ICE host candidates and, when
/// the node is behind a NAT that maps it the same way for everyone, its server-reflexive
/// address (`reflexive`, with the host address it maps), and a relayer's allocation
/// (`relayed`: its address, and the local address that reaches the relayer), with
/// `congestion` control as [`Congestion`] says.
pub(crate) fn new_rtc(
    candidates: &[SocketAddr],
    reflexive: Option<Reflexive>,
    relayed: Option<(SocketAddr, SocketAddr)>,
    cert: Option<&DtlsCert>,
    mode: LinkMode,
    congestion: Congestion,
    now: Instant,
) -> Rtc {
    // str0m's standard header extensions minus abs-send-time, and minus transport-wide
    // congestion control where nobody acts on it: building TWCC feedback nobody reads cost a
    // 1 → 1 relayer a fifth of its CPU. The ids stay str0m's standard ones.
    let mut builder = Rtc::builder().clear_extension_map();
    if congestion != Congestion::Off {
        builder = builder.set_extension(3, Extension::TransportSequenceNumber);
    }
    if congestion == Congestion::Estimate {
        builder = builder.enable_bwe(Some(Bitrate::mbps(1)));
    }
    for (id, extension) in [
        (1, Extension::AudioLevel),
        (4, Extension::RtpMid),
        (10, Extension::RtpStreamId),
        (11, Extension::RepairedRtpStreamId),
        (13, Extension::VideoOrientation),
    ] {
        builder = builder.set_extension(id, extension);
    }
    if let Some(cert) = cert {
        builder = builder.set_dtls_cert(cert.clone());
    }
    let mut rtc = builder
        .set_rtp_mode(mode == LinkMode::Packets)
        // Each stream's received-packet count, for loss figures, and the estimator's own
        // estimate (a few events a second per link).
        .set_stats_interval(Some(STATS_INTERVAL))
        .clear_codecs()
        .enable_vp8(true)
        .enable_opus(true, false)
        .build(now);
    for addr in candidates {
        match Candidate::host(*addr, "udp") {
            Ok(candidate) => {
                rtc.add_local_candidate(candidate);
            }
            Err(e) => tracing::warn!(%addr, error = %e, "unusable host candidate"),
        }
    }
    if let Some(Reflexive { mapped, base }) = reflexive {
        match Candidate::server_reflexive(mapped, base, "udp") {
            Ok(candidate) => {
                rtc.add_local_candidate(candidate);
            }
            Err(e) => tracing::warn!(%mapped, error = %e, "unusable reflexive candidate"),
        }
    }
    if let Some((relayed, local)) = relayed {
        match Candidate::relayed(relayed, local, "udp") {
            Ok(candidate) => {
                rtc.add_local_candidate(candidate);
            }
            Err(e) => tracing::warn!(%relayed, error = %e, "unusable relayed candidate"),
        }
    }
    rtc
}

/// A server-reflexive address: where a NAT maps the host address `base` for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reflexive {
    pub(crate) mapped: SocketAddr,
    pub(crate) base: SocketAddr,
}

/// The ICE host candidates for a socket bound at `local`.
pub(crate) fn host_candidates(config: &MediaConfig, local: SocketAddr) -> Vec<SocketAddr> {
    if !config.advertise.is_empty() {
        return config
            .advertise
            .iter()
            .map(|ip| SocketAddr::new(*ip, local.port()))
            .collect();
    }
    if local.ip().is_unspecified() {
        // Without an advertised address a wildcard bind is only reachable on loopback for sure.
        return vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            local.port(),
        )];
    }
    vec![local]
}

/// The ICE host candidates for links to this node's own user's browser, for a socket bound at
/// `local`: for a wildcard bind, every address of the machine's interfaces of the socket's
/// family, others before loopback; else the bound address.
///
/// Why not the node links' candidates: a browser on this machine can always reach the node on
/// an interface address, but Firefox (by default) neither gathers nor pairs loopback
/// candidates, so a node that offers only 127.0.0.1 is unreachable to it; and an advertised
/// public address may not loop back at all. The browser's own host addresses are hidden
/// behind mDNS names, so the node's candidates are the only way the two find each other.
pub(crate) fn page_candidates(local: SocketAddr) -> Vec<SocketAddr> {
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let ips = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list network interfaces: pages get loopback only");
            Vec::new()
        }
    };
    order_page_ips(local, ips)
}

/// The addresses `ips` a socket bound at the wildcard `local` can offer a browser, in order of
/// preference: others first (in the order given), then loopback, which is always there.
fn order_page_ips(local: SocketAddr, ips: Vec<IpAddr>) -> Vec<SocketAddr> {
    let usable = |ip: &IpAddr| match (local.ip(), ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => true,
        // A v6 wildcard socket also takes IPv4 (mapped) on Linux by default, but its
        // datagrams then carry mapped addresses ICE would not match: offer only v6 there.
        // Link-local v6 needs a scope id candidates cannot carry.
        (IpAddr::V6(_), IpAddr::V6(v6)) => !v6.is_unicast_link_local(),
        _ => false,
    };
    let loopback = match local.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let mut ordered: Vec<IpAddr> = Vec::new();
    for ip in ips
        .iter()
        .filter(|ip| !ip.is_loopback())
        .chain(std::iter::once(&loopback))
    {
        if usable(ip) && !ordered.contains(ip) {
            ordered.push(*ip);
        }
    }
    ordered
        .into_iter()
        .map(|ip| SocketAddr::new(ip, local.port()))
        .collect()
}

/// An offer on `rtc` with one m-line per track in `receive` or `send`, in [`Track::ALL`] order.
/// With `receive_layers` (a relayer's link from its parent) the camera is asked for as
/// simulcast layers ([`LAYER_RIDS`]), so the relayer can give each child the layer that
/// child's link carries.
pub(crate) fn create_offer(
    rtc: &mut Rtc,
    receive: &[Track],
    send: &[Track],
    receive_layers: bool,
) -> Result<BuiltOffer, MediaError> {
    let mut change = rtc.sdp_api();
    let mut media = Vec::new();
    for track in Track::ALL {
        let direction = match (receive.contains(&track), send.contains(&track)) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::RecvOnly,
            (false, true) => Direction::SendOnly,
            (false, false) => continue,
        };
        // The track's name goes in the msid, so the answering node knows the screen's m-line
        // from the camera's.
        let name = Some(track.name().to_owned());
        let layers = (receive_layers && track == Track::Camera && direction == Direction::RecvOnly)
            .then(|| {
                let mut layers = Simulcast::new();
                for rid in LAYER_RIDS {
                    layers.add_recv_layer(SimulcastLayer::new(rid));
                }
                layers
            });
        let mid = change.add_media(str0m_kind(track.kind()), direction, None, name, layers);
        media.push((mid, track, direction));
    }
    let (offer, pending) = change.apply().ok_or_else(|| MediaError::BadSdp {
        reason: "offer has no media".into(),
    })?;
    Ok(BuiltOffer {
        sdp: offer.to_sdp_string(),
        pending,
        media,
    })
}

/// A send-only offer on `rtc` for a playback link: `slots` audio m-lines, each with a video
/// m-line unless `audio_only`, then unless `audio_only` one video m-line for a shared screen.
pub(crate) fn create_playback_offer(
    rtc: &mut Rtc,
    slots: usize,
    audio_only: bool,
) -> Result<BuiltPlayback, MediaError> {
    use str0m::media::MediaKind as Kind;
    let mut change = rtc.sdp_api();
    let slots: Vec<SlotMids> = (0..slots)
        .map(|_| SlotMids {
            audio: change.add_media(Kind::Audio, Direction::SendOnly, None, None, None),
            video: (!audio_only)
                .then(|| change.add_media(Kind::Video, Direction::SendOnly, None, None, None)),
        })
        .collect();
    let screen =
        (!audio_only).then(|| change.add_media(Kind::Video, Direction::SendOnly, None, None, None));
    let (offer, pending) = change.apply().ok_or_else(|| MediaError::BadSdp {
        reason: "a playback offer needs at least one slot".into(),
    })?;
    Ok(BuiltPlayback {
        sdp: offer.to_sdp_string(),
        pending,
        slots,
        screen,
    })
}

/// Accepts a player's offer to receive (WHEP) on `rtc`: its first audio and first video
/// m-line become the one slot the link shows. Returns the answer and the slot.
pub(crate) fn accept_playback_offer(
    rtc: &mut Rtc,
    offer_sdp: &str,
) -> Result<(String, SlotMids), MediaError> {
    let (mut audio, mut video) = (None, None);
    let mut kind = None;
    for line in offer_sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            kind = media.split(' ').next();
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            match kind {
                Some("audio") if audio.is_none() => audio = Some(Mid::from(mid)),
                Some("video") if video.is_none() => video = Some(Mid::from(mid)),
                _ => {}
            }
        }
    }
    let audio = audio.ok_or_else(|| MediaError::BadSdp {
        reason: "a playback offer needs an audio m-line".into(),
    })?;
    let answer = accept_offer(rtc, offer_sdp)?;
    Ok((answer, SlotMids { audio, video }))
}

/// Completes the offer `pending` of `link` with the peer's answer. A bad answer closes the link.
pub(crate) fn accept_answer(
    link: &mut Link,
    pending: SdpPendingOffer,
    answer_sdp: &str,
) -> Result<(), MediaError> {
    let answer = SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| MediaError::BadSdp {
        reason: e.to_string(),
    })?;
    let rtc = link.rtc_mut();
    // str0m panics on broken internal invariants: contain it to this link.
    let result = catch_unwind(AssertUnwindSafe(|| {
        rtc.sdp_api().accept_answer(pending, answer)
    }));
    let reason = match result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "answer crashed the sdp parser".into(),
    };
    link.close();
    Err(MediaError::BadSdp { reason })
}

/// Accepts a peer's offer on `rtc` and returns the answer.
pub(crate) fn accept_offer(rtc: &mut Rtc, offer_sdp: &str) -> Result<String, MediaError> {
    let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| MediaError::BadSdp {
        reason: e.to_string(),
    })?;
    let answer = catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)))
        .map_err(|_| MediaError::BadSdp {
            reason: "offer crashed the sdp parser".into(),
        })?
        .map_err(|e| MediaError::BadSdp {
            reason: e.to_string(),
        })?;
    Ok(answer.to_sdp_string())
}

/// The track an m-line the peer added carries: the one its msid names if that is of the right
/// kind, else the microphone for audio and `unnamed_video` for video (a browser's m-lines
/// have random track ids).
pub(crate) fn added_track(rtc: &Rtc, added: &MediaAdded, unnamed_video: Track) -> Track {
    let kind = match added.kind {
        str0m::media::MediaKind::Audio => MediaKind::Audio,
        str0m::media::MediaKind::Video => MediaKind::Video,
    };
    let named = rtc
        .media(added.mid)
        .and_then(|media| Track::from_name(media.track_id()))
        .filter(|track| track.kind() == kind);
    named.unwrap_or(match kind {
        MediaKind::Audio => Track::Microphone,
        MediaKind::Video => unnamed_video,
    })
}

/// A link's m-lines in one direction and the track each carries. A link has three at most,
/// so a list beats hashing on the per-packet path.
#[derive(Debug, Default)]
pub(crate) struct Mids(Vec<(Mid, Track)>);

impl Mids {
    /// `mid` carries `track` (and no other m-line does, nor does `mid` carry another).
    pub(crate) fn insert(&mut self, mid: Mid, track: Track) {
        self.0.retain(|(m, t)| *m != mid && *t != track);
        self.0.push((mid, track));
    }

    pub(crate) fn mid_of(&self, track: Track) -> Option<Mid> {
        self.0.iter().find(|(_, t)| *t == track).map(|(m, _)| *m)
    }

    pub(crate) fn track_of(&self, mid: Mid) -> Option<Track> {
        self.0.iter().find(|(m, _)| *m == mid).map(|(_, t)| *t)
    }
}

/// The codec a kind's media is sent in: VP8 video, Opus audio.
pub(crate) fn codec_for(kind: MediaKind) -> Codec {
    match kind {
        MediaKind::Audio => Codec::Opus,
        MediaKind::Video => Codec::Vp8,
    }
}

fn str0m_kind(kind: MediaKind) -> str0m::media::MediaKind {
    match kind {
        MediaKind::Audio => str0m::media::MediaKind::Audio,
        MediaKind::Video => str0m::media::MediaKind::Video,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_page_gets_interface_addresses_before_loopback() {
        let local: SocketAddr = "0.0.0.0:4002".parse().unwrap();
        let ips = [
            "127.0.0.1",
            "192.0.2.2",
            "::1",
            "2001:db8::2",
            "10.1.0.7",
            "192.0.2.2",
        ]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
        assert_eq!(
            order_page_ips(local, ips),
            addrs(&["192.0.2.2:4002", "10.1.0.7:4002", "127.0.0.1:4002"])
        );
    }

    #[test]
    fn a_machine_with_loopback_only_offers_loopback() {
        let local: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert_eq!(order_page_ips(local, Vec::new()), addrs(&["127.0.0.1:9"]));
        let local: SocketAddr = "[::]:9".parse().unwrap();
        let ips = ["fe80::1", "2001:db8::2", "192.0.2.2"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(
            order_page_ips(local, ips),
            addrs(&["[2001:db8::2]:9", "[::1]:9"])
        );
    }

    /// A frame-mode link offering only the host candidate `addr`.
    fn host_only_rtc(addr: &str, now: Instant) -> Rtc {
        new_rtc(
            &addrs(&[addr]),
            None,
            None,
            None,
            LinkMode::Frames,
            Congestion::Off,
            now,
        )
    }

    /// A player's offer to receive, as str0m makes it: `kinds` m-lines, receive-only.
    fn player_offer(kinds: &[str0m::media::MediaKind]) -> String {
        let now = Instant::now();
        let mut player = host_only_rtc("127.0.0.1:9", now);
        let mut change = player.sdp_api();
        for kind in kinds {
            change.add_media(*kind, Direction::RecvOnly, None, None, None);
        }
        let (offer, _pending) = change.apply().unwrap();
        offer.to_sdp_string()
    }

    #[test]
    fn a_players_first_audio_and_video_m_lines_make_its_one_slot() {
        use str0m::media::MediaKind::{Audio, Video};
        let offer = player_offer(&[Video, Audio, Video]);
        let now = Instant::now();
        let mut node = host_only_rtc("127.0.0.1:10", now);
        let (answer, slot) = accept_playback_offer(&mut node, &offer).unwrap();
        assert!(answer.contains("a=sendonly"), "{answer}");
        let mids: Vec<Mid> = offer
            .lines()
            .filter_map(|line| line.strip_prefix("a=mid:"))
            .map(Mid::from)
            .collect();
        assert_eq!(slot.audio, mids[1]);
        assert_eq!(slot.video, Some(mids[0]));

        let video_only = player_offer(&[Video]);
        let mut node = host_only_rtc("127.0.0.1:10", now);
        assert!(matches!(
            accept_playback_offer(&mut node, &video_only),
            Err(MediaError::BadSdp { .. })
        ));
    }

    #[test]
    fn a_socket_bound_to_one_address_offers_that_one() {
        let local: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        assert_eq!(page_candidates(local), vec![local]);
    }
}
