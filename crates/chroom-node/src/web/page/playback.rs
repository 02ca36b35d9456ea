//! The page's playback link: which member each place shows, a bigger offer when the room
//! outgrows it, and which shared screen is shown. View logic: what may be shown was decided by
//! the node (who it receives from, who shares a screen).

use chroom_proto::page::{ServerMessage, SlotView};
use chroom_types::RoomKind;

use super::{Closed, MAX_PLAYBACK_SLOTS, PLAYBACK_SLOTS, PageSession};

impl PageSession {
    /// Empties the playback link as the page leaves a room: a prepared one that shows video
    /// stays for the next room, its places emptied; any other closes.
    pub(super) async fn clear_playback(&mut self) {
        let keep = self.playback_prepared && !self.playback_audio_only;
        match self.playback_link {
            Some(playback) if keep => {
                for slot in 0..self.slots.len() {
                    if self.slots[slot].take().is_some() {
                        self.node.play_in_browser(playback, slot, None).await;
                    }
                }
                if self.screen_shown.take().is_some() {
                    self.node.show_screen_in_browser(playback, None).await;
                }
            }
            Some(playback) => {
                self.node.close_browser_media(playback).await;
                self.playback_link = None;
                self.slots.clear();
                self.screen_shown = None;
            }
            None => {}
        }
    }

    /// Offers the page a link to show (in audio-only rooms: to play) the other members on.
    pub(super) async fn offer_playback(
        &mut self,
        audio_only: bool,
        slots: usize,
    ) -> Result<(), Closed> {
        if let Some(old) = self.playback_link.take() {
            self.node.close_browser_media(old).await;
        }
        let offer = match self.node.offer_browser_playback(slots, audio_only).await {
            Ok(offer) => offer,
            Err(e) => return self.error(format!("cannot show the others: {e:#}")).await,
        };
        self.playback_link = Some(offer.link);
        self.playback_audio_only = audio_only;
        self.slots = vec![None; offer.slots.len()];
        self.screen_shown = None;
        let message = ServerMessage::PlaybackOffer {
            offer: offer.link.0,
            sdp: offer.sdp,
            slots: offer
                .slots
                .into_iter()
                .map(|slot| SlotView {
                    audio_mid: slot.audio_mid,
                    video_mid: slot.video_mid,
                })
                .collect(),
            screen_mid: offer.screen_mid,
        };
        self.send(&message).await
    }

    /// Gives every member this node receives from a playback slot, and frees the slots of
    /// members it no longer receives from. Tells the page when anything moved.
    pub(super) async fn refresh_slots(&mut self) -> Result<(), Closed> {
        let (Some(room), Some(playback)) = (&self.room, self.playback_link) else {
            return Ok(());
        };
        let Ok(receiving) = self.node.receiving_from(room.id()).await else {
            return Err(Closed);
        };
        // More members than places: offer the page a bigger playback link (the browser
        // replaces the old one), and fill it on the next refresh.
        let members = receiving.len();
        if members > self.slots.len() && self.slots.len() < MAX_PLAYBACK_SLOTS {
            let slots = members.div_ceil(PLAYBACK_SLOTS) * PLAYBACK_SLOTS;
            let audio_only = self.kind == Some(RoomKind::AudioSpace);
            tracing::info!(members, slots, "more members than places: offering more");
            return self
                .offer_playback(audio_only, slots.min(MAX_PLAYBACK_SLOTS))
                .await;
        }
        let mut changed = false;
        for slot in 0..self.slots.len() {
            if let Some(shown) = self.slots[slot]
                && !receiving.contains(&shown)
            {
                self.slots[slot] = None;
                self.node.play_in_browser(playback, slot, None).await;
                changed = true;
            }
        }
        for &source in &receiving {
            if self.slots.contains(&Some(source)) {
                continue;
            }
            // A member that came back over a new link keeps its place.
            let place = self
                .slots
                .iter()
                .position(|s| s.is_some_and(|(peer, _)| peer == source.0))
                .or_else(|| self.slots.iter().position(Option::is_none));
            let Some(slot) = place else {
                break;
            };
            self.slots[slot] = Some(source);
            self.node
                .play_in_browser(playback, slot, Some(source.1))
                .await;
            changed = true;
        }
        // One shared screen is shown: the first other member sharing one.
        let screen = self
            .shown
            .iter()
            .filter(|p| p.sharing_screen && !p.is_self)
            .find_map(|p| {
                receiving
                    .iter()
                    .find(|(peer, _)| peer.to_base58() == p.peer_id)
                    .copied()
            });
        if screen != self.screen_shown {
            self.screen_shown = screen;
            self.node
                .show_screen_in_browser(playback, screen.map(|(_, link)| link))
                .await;
            changed = true;
        }
        if !changed {
            return Ok(());
        }
        let peers = self
            .slots
            .iter()
            .map(|s| s.map(|(peer, _)| peer.to_base58()))
            .collect();
        let screen = screen.map(|(peer, _)| peer.to_base58());
        self.send(&ServerMessage::Slots { peers, screen }).await
    }
}
