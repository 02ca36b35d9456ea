//! What a page is shown of its room beside the media: who is present and what they hold,
//! and what is wrong (the registry not answering). A page whose broadcast lost to one started
//! at the same moment goes back to watching from here, where that is learned.

use chroom_net::PeerId;
use chroom_proto::page::{ParticipantView, ServerMessage};
use chroom_room::node::RegistryStatus;
use chroom_types::{Account, Role};

use super::{Closed, PageSession};
use crate::node::{Participant, RoomStatus};

fn participant_view(p: &Participant) -> ParticipantView {
    ParticipantView {
        peer_id: p.peer.to_base58(),
        account: p.account.map(|a| a.to_string()),
        role: p.role.map(Role::name),
        is_self: p.is_self,
        sharing_screen: p.sharing_screen,
        muted_by_host: p.muted_by_host,
        hosting: p.hosting,
        acting_host: p.acting_host,
        presenting: p.presenting,
        hand: p.hand,
        on_stage: p.on_stage,
        asking_to_present: p.asking_to_present,
        display_name: p.display_name.clone(),
    }
}

/// What a page says is wrong in its room, one sentence per problem.
fn notices(status: &RoomStatus) -> Vec<String> {
    let mut notices = Vec::new();
    let minutes = |secs: u64| secs.div_ceil(60);
    match status.registry {
        RegistryStatus::Reachable => {}
        RegistryStatus::CacheServing { for_secs } => notices.push(format!(
            "The room registry has not answered for {} min: rights are checked against what \
             this node read before.",
            minutes(for_secs)
        )),
        RegistryStatus::Unreachable { for_secs } => notices.push(format!(
            "The room registry has not answered for {} min: nobody's rights can be checked, \
             so links to other members are closed until it answers.",
            minutes(for_secs)
        )),
    }
    notices
}

/// How a page names another member: its account, or its node if it proved none.
pub(super) fn who(member: &(PeerId, Option<Account>)) -> String {
    let (peer, account) = member;
    account.map_or_else(|| peer.to_base58(), |a| a.to_string())
}

impl PageSession {
    /// Sends the page who is present and which member each place shows, where they changed.
    pub(super) async fn refresh(&mut self) -> Result<(), Closed> {
        self.refresh_participants().await?;
        self.refresh_notices().await?;
        self.retell_heights();
        self.refresh_slots().await
    }

    /// Tells members' nodes again how tall the page shows their cameras, every
    /// [`HEIGHTS_RETOLD`](super::HEIGHTS_RETOLD).
    fn retell_heights(&mut self) {
        let Some(room) = self.room.as_ref().map(|r| r.id()) else {
            return;
        };
        if self.heights_told.elapsed() < super::HEIGHTS_RETOLD {
            return;
        }
        self.heights_told = std::time::Instant::now();
        for (peer, height) in &self.shown_heights {
            self.node.show_video_at(room, *peer, *height);
        }
    }

    async fn refresh_notices(&mut self) -> Result<(), Closed> {
        let Some(room) = &self.room else {
            return Ok(());
        };
        let Ok(status) = self.node.room_status(room.id()).await else {
            return Err(Closed);
        };
        // Two pages went live at once: one broadcast wins on every node (the lowest node id),
        // and the other page goes back to watching it rather than broadcasting to nobody.
        if let Some(winner) = &status.outranked_by
            && self.live
        {
            let name = room.as_str().to_owned();
            self.join(&name, false).await?;
            self.stepped_back = true;
            return self
                .error(format!(
                    "{} went live at the same moment, and viewers watch them: a room carries \
                     one broadcast at a time, so this page watches it too.",
                    who(winner)
                ))
                .await;
        }
        let notices = notices(&status);
        if notices == self.notices {
            return Ok(());
        }
        self.notices.clone_from(&notices);
        let message = ServerMessage::Notices {
            room: room.as_str().to_owned(),
            notices,
        };
        self.send(&message).await
    }

    pub(super) async fn refresh_participants(&mut self) -> Result<(), Closed> {
        let Some(room) = &self.room else {
            return Ok(());
        };
        let Ok(participants) = self.node.participants(room.id()).await else {
            return Err(Closed);
        };
        let views: Vec<ParticipantView> = participants.iter().map(participant_view).collect();
        if views == self.shown {
            return Ok(());
        }
        self.shown.clone_from(&views);
        let message = ServerMessage::Participants {
            room: room.as_str().to_owned(),
            participants: views,
        };
        self.send(&message).await
    }
}
