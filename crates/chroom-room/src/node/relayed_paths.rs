//! Relayed media paths: those this node serves to members behind NATs that filter (within
//! its upload budget, [`crate::relaying`]), and the one it seeks for itself when its own NAT
//! maps anew for every destination.

use std::fmt::Debug;
use std::hash::Hash;

use super::*;

impl<P: Copy + Eq + Ord + Hash + Debug> NodeCore<P> {
    /// Serves relayed media paths to members of the rooms they name, within `budget`.
    pub fn serve_relayed_paths(&mut self, budget: RelayBudget) {
        self.relay_ledger = Some(RelayLedger::new(budget));
    }

    /// `peer` asks this node for a relayed media path for links in `room`. It gets one if
    /// this node serves them, the registry makes it a member of `room`, and the upload budget
    /// holds one more ([`crate::relaying`]).
    pub fn handle_relay_request(
        &mut self,
        now: Instant,
        request: InboundId,
        peer: P,
        room: RoomId,
    ) {
        self.now = self.now.max(now);
        if self.relay_ledger.is_none() {
            let error = SignalError::new(ErrorCode::NotFound, "this node relays no media paths");
            return self.refuse(request, peer, error);
        }
        if let Err(error) = self.session.check_peer(now, peer, room, Action::Listen) {
            return self.refuse(request, peer, error);
        }
        let children = self.session.tree_child_count();
        let Some(ledger) = &mut self.relay_ledger else {
            return;
        };
        match ledger.reserve(peer, children) {
            Ok(kbps) => self.outputs.push_back(NodeOutput::GrantRelay {
                request,
                peer,
                kbps,
            }),
            Err(error) => self.refuse(request, peer, error),
        }
    }

    /// What the media socket learned of the NAT in front of it: `per_destination` when it maps
    /// the socket anew for every destination, so peers behind filtering NATs cannot reach it
    /// directly and it needs a relayed path ([`NodeOutput::SeekRelay`]).
    pub fn handle_nat(&mut self, now: Instant, per_destination: bool) {
        self.now = self.now.max(now);
        self.relay_seek.set_needed(per_destination);
        self.seek_relay(now);
    }

    /// A [`NodeOutput::SeekRelay`] ended; `found` if a relayer granted a path.
    pub fn handle_relay_found(&mut self, now: Instant, found: bool) {
        self.now = self.now.max(now);
        self.relay_seek.searched(now, found);
    }

    /// Asks the runtime to look for a relayed path, when this node needs one and a search
    /// is due.
    pub(super) fn seek_relay(&mut self, now: Instant) {
        let Some(&room) = self.present_in.first() else {
            return;
        };
        if self.relay_seek.should_search(now, true) {
            self.outputs.push_back(NodeOutput::SeekRelay { room });
        }
    }

    /// An allocation granted to `peer` ended (or could not be opened).
    pub fn handle_relay_ended(&mut self, peer: P) {
        if let Some(ledger) = &mut self.relay_ledger {
            ledger.release(peer);
        }
    }
}
