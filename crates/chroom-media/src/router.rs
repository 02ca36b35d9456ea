//! The SFU's routing decisions: which link and track each arriving packet, frame and keyframe
//! request goes to.
//!
//! Sans-IO, like the core crates: no sockets, no tokio, no clock (time is an input), no str0m
//! `Rtc`. The actor tells the [`Router`] which links exist and what the node ordered
//! (forwarding, playback slots, screens, silencing); per packet, frame or keyframe request it
//! asks where that goes and carries the answer out on the links.
//!
//! Route changes are rare and may allocate. Lookups run per packet and do not: a packet costs
//! one hash lookup (as before the router existed), a frame one hash lookup plus scans of lists
//! that hold a link or two, and the lists they scan are rebuilt when links come and go.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chroom_types::{LinkId, Track};
use str0m::media::Mid;

/// Shortest gap between two keyframe requests sent to one link for one track (RFC 4585 leaves
/// the rate to the application; one per second is what libwebrtc's receivers use after loss).
/// Requests from many children within it are merged into one upstream.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest gap between keyframe requests to this node's own browser. A conference has few
/// members, each joining one wants a keyframe at once, and the browser's encoder is local: a
/// second of black per join would be the price of the relay default.
const LOCAL_SOURCE_KEYFRAME_INTERVAL: Duration = Duration::from_millis(200);

/// Shortest gap between keyframe requests on behalf of this node's own page, for a member it
/// shows. One viewer asks, not a tree of them: nothing to merge, and the page's first request
/// often follows the one made when its place was given by a few hundred milliseconds (its
/// link was still connecting then, so that keyframe never reached it). A second of black per
/// join would be the price of the relay default.
const SHOWN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(200);

/// What a link is for, as far as routing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkRole {
    /// From this node's own user (the browser's camera, microphone, screen): what arrives on
    /// it goes to every other link, and keyframe requests for this node's streams go to it.
    LocalSource,
    /// To another node (or a bot): relayed and local streams go out, remote members come in.
    /// Held when it opens (see [`Router::release`]).
    Peer,
    /// To this node's user's browser, showing remote members: each slot's m-lines, and the
    /// m-line showing a shared screen (`None` when audio-only).
    Playback {
        slots: Vec<SlotMids>,
        screen: Option<Mid>,
    },
}

/// One playback slot's m-lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotMids {
    pub(crate) audio: Mid,
    /// `None` in an audio-only playback link.
    pub(crate) video: Option<Mid>,
}

/// Where a frame that arrived on a link goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameRoute {
    /// Nowhere: the microphone of a silenced link.
    Silenced,
    /// Nowhere: the link is held (its peer's right is not known yet).
    Held,
    /// A remote member's frame: to the node, and written on `show_on` (a playback link's
    /// m-line) when a slot or the screen shows its source.
    ToNode { show_on: Option<(LinkId, Mid)> },
    /// This node's own user's frame: to every link in [`Router::subscribers`] (each writes it
    /// if it sends that track).
    ToSubscribers,
}

/// A keyframe request to pass on: ask `link` for a keyframe of `track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyframeTarget {
    pub(crate) link: LinkId,
    pub(crate) track: Track,
    pub(crate) reason: KeyframeReason,
}

/// Why a keyframe request goes where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyframeReason {
    /// A stream this node originates: its own browser encodes it.
    LocalSource,
    /// A relayed stream: its keyframes come from the upstream link.
    Relayed,
    /// A remote member shown in a playback slot or the screen m-line (a new viewer, or the
    /// browser asking).
    Shown,
}

/// Routing state of every open link. See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Router {
    links: HashMap<LinkId, RoutedLink>,
    /// Upstream link -> the links its packets go to (empty: stopped, version kept).
    forwarding: HashMap<LinkId, Forwarding>,
    /// Source link -> the playback slot showing it (a source shows in one slot at most).
    playback: HashMap<LinkId, PlaybackRoute>,
    /// Source link -> the playback link's screen m-line showing its screen.
    screens: HashMap<LinkId, ScreenRoute>,
    /// Prepared when links change: the links that are local sources.
    local_sources: Vec<LinkId>,
    /// Prepared when links change: every link but local sources, where local frames go.
    subscribers: Vec<LinkId>,
    /// Links whose microphone is dropped. A host mutes few members: a list beats hashing.
    silenced: Vec<LinkId>,
    /// Links to other nodes not released yet: nothing goes to them, what arrives is dropped.
    /// Few at once (a link is released as soon as its peer's right is known): a list.
    held: Vec<LinkId>,
    /// Links fed from another link, summed over all forwarding.
    children: usize,
    /// Local sources carrying a broadcast's program (the broadcaster's page composing itself
    /// and its guests): while one exists it feeds every subscriber outside the studio, and
    /// the other local sources feed only the studio. At most a source or two: a list.
    programs: Vec<LinkId>,
    /// Links to the members on this node's broadcast stage (its studio): they get this
    /// node's own tracks, never the program, which holds their own voices.
    studio: Vec<LinkId>,
}

#[derive(Debug)]
struct RoutedLink {
    role: LinkRole,
    /// When a keyframe of each track (in [`track_index`] order) was last asked of this link.
    keyframe_asked: [Option<Instant>; 3],
}

#[derive(Debug, Default)]
struct Forwarding {
    /// The latest order's version: older orders (sent concurrently) must not undo it.
    version: u64,
    /// The children ordered.
    ordered: Vec<LinkId>,
    /// Where packets go now: `ordered` less held links; none while the upstream is held.
    children: Vec<LinkId>,
}

#[derive(Debug, Clone, Copy)]
struct PlaybackRoute {
    playback: LinkId,
    slot: usize,
    mids: SlotMids,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ScreenRoute {
    playback: LinkId,
    mid: Mid,
}

impl Router {
    /// A new link takes part in routing. A link to another node starts held: the node
    /// releases it once it knows the peer may take part (fail closed).
    pub(crate) fn add_link(&mut self, link: LinkId, role: LinkRole) {
        if role == LinkRole::Peer {
            self.held.push(link);
        }
        let routed = RoutedLink {
            role,
            keyframe_asked: [None; 3],
        };
        self.links.insert(link, routed);
        self.prepare_lists();
    }

    /// Media flows on `link` (`held` false) or stops both ways (`held` true): nothing is sent
    /// on a held link and whatever arrives on it is dropped. Only links to other nodes are
    /// held: this node's own user's links are its own. Unknown links are ignored.
    pub(crate) fn hold(&mut self, link: LinkId, held: bool) {
        if self.role(link) != Some(&LinkRole::Peer) || self.held.contains(&link) == held {
            return;
        }
        if held {
            self.held.push(link);
        } else {
            self.held.retain(|h| *h != link);
        }
        self.prepare_lists();
        self.refresh_forwarding();
    }

    /// Marks the local source `link` as a broadcast's program (see [`Self::feeds`]). Unknown
    /// links and links that are not local sources are ignored.
    pub(crate) fn set_program(&mut self, link: LinkId) {
        if self.role(link) == Some(&LinkRole::LocalSource) && !self.programs.contains(&link) {
            self.programs.push(link);
        }
    }

    /// The links to the members on this node's broadcast stage, replacing the previous set.
    pub(crate) fn set_studio(&mut self, mut links: Vec<LinkId>) {
        links.sort_unstable();
        links.dedup();
        self.studio = links;
    }

    /// Whether frames of the local source `source` go to the subscriber `to`: all of them
    /// do, unless a program is on; then the program feeds whoever is outside the studio and
    /// the other sources feed the studio. Per frame and subscriber: scans of a few links.
    pub(crate) fn feeds(&self, source: LinkId, to: LinkId) -> bool {
        self.programs.is_empty() || self.programs.contains(&source) != self.studio.contains(&to)
    }

    /// `link` is gone: it leaves every route, as source, upstream, child or playback link.
    pub(crate) fn handle_link_closed(&mut self, link: LinkId) {
        if self.links.remove(&link).is_none() {
            return;
        }
        self.programs.retain(|program| *program != link);
        self.studio.retain(|studio| *studio != link);
        self.forwarding.remove(&link);
        self.playback
            .retain(|source, route| *source != link && route.playback != link);
        self.screens
            .retain(|source, route| *source != link && route.playback != link);
        self.silenced.retain(|silenced| *silenced != link);
        self.held.retain(|held| *held != link);
        self.prepare_lists();
        self.refresh_forwarding();
    }

    /// Forwards every packet arriving on `upstream` to `downstream` from now on, replacing the
    /// previous order unless that one has a higher `version`; empty `downstream` stops it.
    /// Unknown links are left out: closed ones would only count as drops.
    pub(crate) fn forward(&mut self, upstream: LinkId, mut downstream: Vec<LinkId>, version: u64) {
        if !self.links.contains_key(&upstream) {
            // Closed meanwhile: nothing will arrive on it.
            return;
        }
        let forwarding = self.forwarding.entry(upstream).or_default();
        if version < forwarding.version {
            return;
        }
        forwarding.version = version;
        downstream.retain(|child| self.links.contains_key(child));
        forwarding.ordered = downstream;
        self.refresh_forwarding();
    }

    /// Shows what arrives on `source` in `slot` of `playback` (`None`: nothing), and moves
    /// `source` out of any slot it was shown in. Returns the keyframe request to make at once,
    /// whatever the rate limit: a new viewer cannot show anything until a keyframe comes.
    pub(crate) fn play(
        &mut self,
        playback: LinkId,
        slot: usize,
        source: Option<LinkId>,
    ) -> Option<KeyframeTarget> {
        self.playback
            .retain(|_, route| !(route.playback == playback && route.slot == slot));
        let source = source.filter(|source| self.links.contains_key(source))?;
        let Some(LinkRole::Playback { slots, .. }) = self.role(playback) else {
            return None;
        };
        let mids = *slots.get(slot)?;
        let route = PlaybackRoute {
            playback,
            slot,
            mids,
        };
        self.playback.insert(source, route);
        Some(KeyframeTarget {
            link: source,
            track: Track::Camera,
            reason: KeyframeReason::Shown,
        })
    }

    /// The keyframes `playback` needs the moment it connects: one from every source it shows.
    /// Those asked for when their places were given reached a link still connecting, and
    /// waiting for the browser to ask costs a round trip and the rate limit.
    pub(crate) fn shown_on(&self, playback: LinkId, out: &mut Vec<KeyframeTarget>) {
        let shown = |link: &LinkId, track| KeyframeTarget {
            link: *link,
            track,
            reason: KeyframeReason::Shown,
        };
        for (source, route) in &self.playback {
            if route.playback == playback {
                out.push(shown(source, Track::Camera));
            }
        }
        for (source, route) in &self.screens {
            if route.playback == playback {
                out.push(shown(source, Track::Screen));
            }
        }
    }

    /// Shows the screen shared on `source` in the screen m-line of `playback` (`None`:
    /// nothing). Returns the keyframe request to make at once, as [`Self::play`] does.
    pub(crate) fn show_screen(
        &mut self,
        playback: LinkId,
        source: Option<LinkId>,
    ) -> Option<KeyframeTarget> {
        self.screens.retain(|_, route| route.playback != playback);
        let source = source.filter(|source| self.links.contains_key(source))?;
        let Some(LinkRole::Playback {
            screen: Some(mid), ..
        }) = self.role(playback)
        else {
            return None;
        };
        let route = ScreenRoute {
            playback,
            mid: *mid,
        };
        self.screens.insert(source, route);
        Some(KeyframeTarget {
            link: source,
            track: Track::Screen,
            reason: KeyframeReason::Shown,
        })
    }

    /// Drops the microphone arriving on `link` from now on. Unknown links are ignored.
    pub(crate) fn silence(&mut self, link: LinkId) {
        if self.links.contains_key(&link) && !self.silenced.contains(&link) {
            self.silenced.push(link);
        }
    }

    /// Passes the microphone arriving on `link` again.
    pub(crate) fn unsilence(&mut self, link: LinkId) {
        self.silenced.retain(|silenced| *silenced != link);
    }

    /// A keyframe of `track` was asked of `link` at `now`: the rate limit counts from here.
    pub(crate) fn handle_keyframe_requested(&mut self, now: Instant, link: LinkId, track: Track) {
        if let Some(routed) = self.links.get_mut(&link) {
            routed.keyframe_asked[track_index(track)] = Some(now);
        }
    }

    /// The links packets arriving on `upstream` go to; empty when it is not forwarded.
    /// Per packet: one hash lookup.
    pub(crate) fn downstream(&self, upstream: LinkId) -> &[LinkId] {
        self.forwarding
            .get(&upstream)
            .map_or(&[], |forwarding| &forwarding.children)
    }

    /// Where a frame of `track` that arrived on `from` goes.
    pub(crate) fn route_frame(&self, from: LinkId, track: Track) -> FrameRoute {
        if self.held.contains(&from) {
            return FrameRoute::Held;
        }
        if track == Track::Microphone && self.silenced.contains(&from) {
            return FrameRoute::Silenced;
        }
        if self.local_sources.contains(&from) {
            return FrameRoute::ToSubscribers;
        }
        let show_on = match track {
            Track::Microphone => self
                .playback
                .get(&from)
                .map(|route| (route.playback, route.mids.audio)),
            Track::Camera => self
                .playback
                .get(&from)
                .and_then(|route| Some((route.playback, route.mids.video?))),
            Track::Screen => self
                .screens
                .get(&from)
                .map(|route| (route.playback, route.mid)),
        };
        FrameRoute::ToNode { show_on }
    }

    /// Every link but local sources: where this node's own frames go.
    pub(crate) fn subscribers(&self) -> &[LinkId] {
        &self.subscribers
    }

    /// Where a keyframe request that `from`'s peer made for the m-line `mid` goes; `sent` is
    /// the track `from` sends on `mid`, if `from` names it (else the camera is meant). Pushes
    /// the targets the rate limit lets through to `out`: the upstream of a relayed stream, the
    /// source a playback slot or the screen shows, or else this node's own browser sources.
    pub(crate) fn route_keyframe_request(
        &self,
        now: Instant,
        from: LinkId,
        mid: Mid,
        sent: Option<Track>,
        out: &mut Vec<KeyframeTarget>,
    ) {
        if self.held.contains(&from) {
            return;
        }
        let sent = sent.unwrap_or(Track::Camera);
        // A link is fed by one upstream in practice; should two name it, the lower id wins so
        // the answer does not depend on hash order.
        let upstream = self
            .forwarding
            .iter()
            .filter(|(_, forwarding)| forwarding.children.contains(&from))
            .map(|(upstream, _)| *upstream)
            .min();
        let single = upstream
            .map(|link| (link, sent, KeyframeReason::Relayed))
            .or_else(|| {
                self.playback
                    .iter()
                    .find(|(_, route)| route.playback == from && route.mids.video == Some(mid))
                    .map(|(source, _)| (*source, Track::Camera, KeyframeReason::Shown))
            })
            .or_else(|| {
                let shown_on = ScreenRoute {
                    playback: from,
                    mid,
                };
                self.screens
                    .iter()
                    .find(|(_, route)| **route == shown_on)
                    .map(|(source, _)| (*source, Track::Screen, KeyframeReason::Shown))
            });
        if let Some((link, track, reason)) = single {
            self.push_if_due(now, link, track, reason, out);
            return;
        }
        for link in &self.local_sources {
            if self.feeds(*link, from) {
                self.push_if_due(now, *link, sent, KeyframeReason::LocalSource, out);
            }
        }
    }

    /// Whether a keyframe of `track` may be asked of `link` at `now`: its interval (shorter
    /// for this node's own browser) has passed since the last request.
    pub(crate) fn keyframe_due(&self, now: Instant, link: LinkId, track: Track) -> bool {
        self.due(now, link, track, None)
    }

    /// Whether a keyframe of `track` may be asked of `link`, the gap being the link's own or
    /// `shorter`, if given and shorter.
    fn due(&self, now: Instant, link: LinkId, track: Track, shorter: Option<Duration>) -> bool {
        let Some(routed) = self.links.get(&link) else {
            return false;
        };
        let interval = match routed.role {
            LinkRole::LocalSource => LOCAL_SOURCE_KEYFRAME_INTERVAL,
            LinkRole::Peer | LinkRole::Playback { .. } => KEYFRAME_REQUEST_INTERVAL,
        };
        let interval = shorter.map_or(interval, |shorter| interval.min(shorter));
        routed.keyframe_asked[track_index(track)]
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
    }

    /// Links fed from another link, summed over all forwarding.
    pub(crate) fn child_count(&self) -> usize {
        self.children
    }

    fn role(&self, link: LinkId) -> Option<&LinkRole> {
        self.links.get(&link).map(|routed| &routed.role)
    }

    fn push_if_due(
        &self,
        now: Instant,
        link: LinkId,
        track: Track,
        reason: KeyframeReason,
        out: &mut Vec<KeyframeTarget>,
    ) {
        let shorter = (reason == KeyframeReason::Shown).then_some(SHOWN_KEYFRAME_INTERVAL);
        if self.due(now, link, track, shorter) {
            out.push(KeyframeTarget {
                link,
                track,
                reason,
            });
        }
    }

    fn prepare_lists(&mut self) {
        self.local_sources.clear();
        self.subscribers.clear();
        for (id, routed) in &self.links {
            match routed.role {
                LinkRole::LocalSource => self.local_sources.push(*id),
                LinkRole::Peer if self.held.contains(id) => {}
                LinkRole::Peer | LinkRole::Playback { .. } => self.subscribers.push(*id),
            }
        }
        self.local_sources.sort_unstable();
        self.subscribers.sort_unstable();
    }

    /// Rebuilds where each upstream's packets go now, leaving held links out.
    fn refresh_forwarding(&mut self) {
        let held = &self.held;
        for (upstream, forwarding) in &mut self.forwarding {
            forwarding
                .ordered
                .retain(|child| self.links.contains_key(child));
            forwarding.children.clear();
            if !held.contains(upstream) {
                let open = forwarding.ordered.iter().filter(|c| !held.contains(c));
                forwarding.children.extend(open);
            }
        }
        self.children = self.forwarding.values().map(|f| f.children.len()).sum();
    }
}

fn track_index(track: Track) -> usize {
    match track {
        Track::Microphone => 0,
        Track::Camera => 1,
        Track::Screen => 2,
    }
}

#[cfg(test)]
mod tests;
