//! Making links: capacity, str0m instances with this node's candidates and congestion
//! control, offers and answers (node links, a page's playback), remote candidates.

use std::net::SocketAddr;
use std::time::Instant;

use chroom_types::{LinkId, LinkMode, Track};
use str0m::change::SdpPendingOffer;
use str0m::{Candidate, Input, Rtc};

use super::{LinkState, MediaActor};
use crate::api::{MediaError, PlaybackOffer};
use crate::estimation::Aim;
use crate::link::Link;
use crate::router::LinkRole;
use crate::sdp::{self, Congestion};

impl MediaActor {
    pub(super) fn check_capacity(&self) -> Result<(), MediaError> {
        if self.links.len() >= self.config.max_links {
            return Err(MediaError::TooManyLinks {
                limit: self.config.max_links,
            });
        }
        Ok(())
    }

    pub(super) fn new_link(&mut self, rtc: Rtc, mode: LinkMode) -> Link {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        Link::new(id, rtc, mode)
    }

    /// Starts serving `link` (its connect timeout runs from now) and routing for it.
    pub(super) fn insert_link(
        &mut self,
        mut link: Link,
        peer: LinkPeer,
        pending_offer: Option<SdpPendingOffer>,
        role: LinkRole,
    ) {
        let id = link.id;
        let now = Instant::now();
        // Starts ICE now. A fresh str0m link asks for its first timeout far ahead, and an
        // answering link would otherwise wait for its peer's checks before sending its own:
        // behind a NAT those are dropped until this side's checks open the way.
        link.handle_input(Input::Timeout(now));
        let state = LinkState {
            link,
            peer,
            pending_offer,
            connect_deadline: Some(now + self.config.connect_timeout),
            last_media: None,
            // No media yet: the first to arrive is reported like media coming back.
            silent: true,
            last_source: None,
            last_via_relay: false,
            aim: Aim::new(now),
            next_timeout: now,
            close_cause: None,
        };
        self.links.insert(id, state);
        self.router.add_link(id, role);
    }

    /// Congestion control on a new link: estimates wherever media crosses the network to
    /// another node (a relayer's too: it picks each child's layer by it), feedback for a
    /// page's browser (see `MediaConfig::bandwidth_estimation`).
    pub(super) fn congestion(&self, peer: LinkPeer) -> Congestion {
        match peer {
            LinkPeer::Page => Congestion::Feedback,
            LinkPeer::Node if self.config.bandwidth_estimation => Congestion::Estimate,
            LinkPeer::Node => Congestion::Off,
        }
    }

    /// A new str0m instance with the host candidates for `peer` and this node's certificate.
    pub(super) fn new_rtc(&mut self, mode: LinkMode, peer: LinkPeer) -> Rtc {
        let candidates = match peer {
            LinkPeer::Node => &self.candidates,
            LinkPeer::Page => {
                if self.local_addr.ip().is_unspecified() {
                    // Interfaces come and go (a laptop changes networks): list them again.
                    let now = sdp::page_candidates(self.local_addr);
                    if now != self.page_candidates {
                        log_page_candidates(self.local_addr, &now);
                        self.page_candidates = now;
                    }
                }
                &self.page_candidates
            }
        };
        sdp::new_rtc(
            candidates,
            self.reflexive_candidate(),
            self.relay_client
                .as_ref()
                .map(|client| (client.grant.relayed, self.receive_addr)),
            self.dtls_cert.as_ref(),
            mode,
            self.congestion(peer),
            Instant::now(),
        )
    }

    pub(super) fn create_offer(
        &mut self,
        receive: &[Track],
        send: &[Track],
        mode: LinkMode,
    ) -> Result<(LinkId, String), MediaError> {
        self.check_capacity()?;
        let mut rtc = self.new_rtc(mode, LinkPeer::Node);
        let offer = sdp::create_offer(&mut rtc, receive, send, mode == LinkMode::Packets)?;
        let mut link = self.new_link(rtc, mode);
        offer.record_media(&mut link);
        let id = link.id;
        self.insert_link(link, LinkPeer::Node, Some(offer.pending), LinkRole::Peer);
        tracing::debug!(link = %id, "created offer");
        Ok((id, offer.sdp))
    }

    pub(super) fn create_playback_offer(
        &mut self,
        slots: usize,
        audio_only: bool,
    ) -> Result<PlaybackOffer, MediaError> {
        self.check_capacity()?;
        let mut rtc = self.new_rtc(LinkMode::Frames, LinkPeer::Page);
        let built = sdp::create_playback_offer(&mut rtc, slots, audio_only)?;
        let link = self.new_link(rtc, LinkMode::Frames);
        let offer = built.to_offer(link.id);
        let role = LinkRole::Playback {
            slots: built.slots,
            screen: built.screen,
        };
        self.insert_link(link, LinkPeer::Page, Some(built.pending), role);
        tracing::debug!(link = %offer.link, slots, "created playback offer");
        Ok(offer)
    }

    pub(super) fn accept_playback_offer(
        &mut self,
        offer_sdp: &str,
    ) -> Result<(LinkId, String), MediaError> {
        self.check_capacity()?;
        let mut rtc = self.new_rtc(LinkMode::Frames, LinkPeer::Page);
        let (answer, slot) = sdp::accept_playback_offer(&mut rtc, offer_sdp)?;
        let link = self.new_link(rtc, LinkMode::Frames);
        let id = link.id;
        let role = LinkRole::Playback {
            slots: vec![slot],
            screen: None,
        };
        self.insert_link(link, LinkPeer::Page, None, role);
        tracing::debug!(link = %id, "accepted playback offer");
        Ok((id, answer))
    }

    pub(super) fn accept_answer(
        &mut self,
        link: LinkId,
        answer_sdp: &str,
    ) -> Result<(), MediaError> {
        let state = self
            .links
            .get_mut(&link)
            .ok_or(MediaError::UnknownLink { link })?;
        let pending = state
            .pending_offer
            .take()
            .ok_or(MediaError::NoPendingOffer { link })?;
        sdp::accept_answer(&mut state.link, pending, answer_sdp)?;
        state.next_timeout = Instant::now();
        Ok(())
    }

    pub(super) fn add_remote_candidates(
        &mut self,
        link: LinkId,
        candidates: &[String],
    ) -> Result<(), MediaError> {
        let state = self
            .links
            .get_mut(&link)
            .ok_or(MediaError::UnknownLink { link })?;
        let parsed = candidates
            .iter()
            .map(|line| {
                Candidate::from_sdp_string(line).map_err(|e| MediaError::BadSdp {
                    reason: format!("candidate {line:?}: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for candidate in parsed {
            state.link.rtc_mut().add_remote_candidate(candidate);
        }
        state.next_timeout = Instant::now();
        Ok(())
    }

    /// Accepts an offer; `local_source` is set for one from this node's own user's browser,
    /// naming what its unnamed video m-line carries (camera or screen).
    pub(super) fn accept_offer(
        &mut self,
        offer_sdp: &str,
        mode: LinkMode,
        local_source: Option<Track>,
    ) -> Result<(LinkId, String), MediaError> {
        self.check_capacity()?;
        let peer = match local_source {
            Some(_) => LinkPeer::Page,
            None => LinkPeer::Node,
        };
        let mut rtc = self.new_rtc(mode, peer);
        let answer = sdp::accept_offer(&mut rtc, offer_sdp)?;
        let mut link = self.new_link(rtc, mode);
        let role = match local_source {
            Some(video) => {
                link.set_unnamed_video(video);
                LinkRole::LocalSource
            }
            None => LinkRole::Peer,
        };
        let id = link.id;
        self.insert_link(link, peer, None, role);
        tracing::debug!(link = %id, "accepted offer");
        Ok((id, answer))
    }
}

/// Who is at the other end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkPeer {
    /// Another node.
    Node,
    /// This node's own user's browser (or another WebRTC stack driving the page API), on
    /// this machine.
    Page,
}

/// Says which addresses pages are offered, and when none is one a browser that refuses
/// loopback (Firefox, by default) can use: a warning when the machine has no other interface,
/// a note when the socket was bound to loopback on purpose (a relayer's, say).
pub(super) fn log_page_candidates(bound: SocketAddr, candidates: &[SocketAddr]) {
    if !candidates.iter().all(|c| c.ip().is_loopback()) {
        tracing::info!(?candidates, "host candidates for pages");
    } else if bound.ip().is_unspecified() {
        tracing::warn!(
            ?candidates,
            "no network interface but loopback: Firefox pages will get no media"
        );
    } else {
        tracing::info!(
            ?candidates,
            "media bound to loopback: Firefox pages will get no media (bind [media] to 0.0.0.0)"
        );
    }
}
