//! The router's decisions, one route kind at a time, with time injected.

use std::time::{Duration, Instant};

use chroom_types::{LinkId, Track};
use str0m::media::Mid;

use super::*;

const UP: LinkId = LinkId(1);
const A: LinkId = LinkId(2);
const B: LinkId = LinkId(3);
const SOURCE: LinkId = LinkId(4);
const PLAYBACK: LinkId = LinkId(5);
const BROWSER: LinkId = LinkId(6);

fn mid(name: &str) -> Mid {
    Mid::from(name)
}

/// Four links to other nodes (an upstream, two children, a remote member), this node's browser
/// source and a playback link with two slots and a screen m-line.
fn router() -> Router {
    let mut router = Router::default();
    for link in [UP, A, B, SOURCE] {
        add_released_peer(&mut router, link);
    }
    router.add_link(BROWSER, LinkRole::LocalSource);
    router.add_link(
        PLAYBACK,
        LinkRole::Playback {
            slots: vec![
                SlotMids {
                    audio: mid("a0"),
                    video: Some(mid("v0")),
                },
                SlotMids {
                    audio: mid("a1"),
                    video: Some(mid("v1")),
                },
            ],
            screen: Some(mid("s")),
        },
    );
    router
}

/// A link to another node whose peer's right is known.
fn add_released_peer(router: &mut Router, link: LinkId) {
    router.add_link(link, LinkRole::Peer);
    router.hold(link, false);
}

fn keyframe_targets(router: &Router, now: Instant, from: LinkId, mid: Mid) -> Vec<KeyframeTarget> {
    let mut out = Vec::new();
    router.route_keyframe_request(now, from, mid, Some(Track::Camera), &mut out);
    out
}

fn target(link: LinkId, track: Track, reason: KeyframeReason) -> KeyframeTarget {
    KeyframeTarget {
        link,
        track,
        reason,
    }
}

#[test]
fn forwarding_sends_an_upstream_to_its_children_and_stops_on_empty() {
    let mut router = router();
    assert!(router.downstream(UP).is_empty());
    router.forward(UP, vec![A, B], 1);
    assert_eq!(router.downstream(UP), [A, B]);
    assert_eq!(router.child_count(), 2);
    assert!(router.downstream(A).is_empty());
    router.forward(UP, Vec::new(), 2);
    assert!(router.downstream(UP).is_empty());
    assert_eq!(router.child_count(), 0);
}

#[test]
fn forwarding_orders_apply_by_version_not_arrival() {
    let mut router = router();
    router.forward(UP, vec![A], 5);
    // An older order sent concurrently arrives late: it must not undo the newer one.
    router.forward(UP, vec![B], 4);
    assert_eq!(router.downstream(UP), [A]);
    // The same version replaces (a node re-sends its latest order).
    router.forward(UP, vec![B], 5);
    assert_eq!(router.downstream(UP), [B]);
    // A stop keeps its version: an older order cannot restart forwarding.
    router.forward(UP, Vec::new(), 7);
    router.forward(UP, vec![A], 6);
    assert!(router.downstream(UP).is_empty());
    router.forward(UP, vec![A], 8);
    assert_eq!(router.downstream(UP), [A]);
}

#[test]
fn forwarding_from_or_to_links_that_are_not_open_is_ignored() {
    let mut router = router();
    let closed = LinkId(99);
    router.forward(closed, vec![A], 1);
    assert!(router.downstream(closed).is_empty());
    router.forward(UP, vec![A, closed, B], 1);
    assert_eq!(router.downstream(UP), [A, B]);
    assert_eq!(router.child_count(), 2);
}

#[test]
fn the_browser_source_goes_to_every_other_link() {
    let router = router();
    for track in Track::ALL {
        assert_eq!(
            router.route_frame(BROWSER, track),
            FrameRoute::ToSubscribers
        );
    }
    assert_eq!(router.subscribers(), [UP, A, B, SOURCE, PLAYBACK]);
}

#[test]
fn a_remote_member_goes_to_the_node_and_to_the_slot_showing_it() {
    let mut router = router();
    let to_node = FrameRoute::ToNode { show_on: None };
    assert_eq!(router.route_frame(SOURCE, Track::Camera), to_node);

    let keyframe = router.play(PLAYBACK, 1, Some(SOURCE));
    assert_eq!(
        keyframe,
        Some(target(SOURCE, Track::Camera, KeyframeReason::Shown))
    );
    let shown = |mid| FrameRoute::ToNode {
        show_on: Some((PLAYBACK, mid)),
    };
    assert_eq!(
        router.route_frame(SOURCE, Track::Microphone),
        shown(mid("a1"))
    );
    assert_eq!(router.route_frame(SOURCE, Track::Camera), shown(mid("v1")));
    // A slot shows camera and microphone; the screen has its own m-line.
    assert_eq!(router.route_frame(SOURCE, Track::Screen), to_node);
    assert_eq!(router.route_frame(A, Track::Camera), to_node);

    // A source shows in one slot: moving it leaves the old slot empty.
    router.play(PLAYBACK, 0, Some(SOURCE));
    assert_eq!(router.route_frame(SOURCE, Track::Camera), shown(mid("v0")));
    // Another source in that slot replaces it.
    router.play(PLAYBACK, 0, Some(A));
    assert_eq!(router.route_frame(SOURCE, Track::Camera), to_node);
    assert_eq!(router.route_frame(A, Track::Camera), shown(mid("v0")));
    // `None` empties the slot.
    assert_eq!(router.play(PLAYBACK, 0, None), None);
    assert_eq!(router.route_frame(A, Track::Camera), to_node);
}

#[test]
fn playing_in_a_slot_or_link_that_does_not_exist_shows_nothing() {
    let mut router = router();
    assert_eq!(router.play(PLAYBACK, 2, Some(SOURCE)), None);
    assert_eq!(router.play(A, 0, Some(SOURCE)), None);
    assert_eq!(router.play(PLAYBACK, 0, Some(LinkId(99))), None);
    let to_node = FrameRoute::ToNode { show_on: None };
    assert_eq!(router.route_frame(SOURCE, Track::Camera), to_node);
}

#[test]
fn an_audio_only_slot_shows_the_microphone_only() {
    let mut router = router();
    let audio_only = LinkId(7);
    router.add_link(
        audio_only,
        LinkRole::Playback {
            slots: vec![SlotMids {
                audio: mid("a0"),
                video: None,
            }],
            screen: None,
        },
    );
    router.play(audio_only, 0, Some(SOURCE));
    let show_on = Some((audio_only, mid("a0")));
    assert_eq!(
        router.route_frame(SOURCE, Track::Microphone),
        FrameRoute::ToNode { show_on }
    );
    assert_eq!(
        router.route_frame(SOURCE, Track::Camera),
        FrameRoute::ToNode { show_on: None }
    );
    assert_eq!(router.show_screen(audio_only, Some(SOURCE)), None);
}

#[test]
fn a_screen_route_shows_one_source_on_the_screen_m_line() {
    let mut router = router();
    let keyframe = router.show_screen(PLAYBACK, Some(SOURCE));
    assert_eq!(
        keyframe,
        Some(target(SOURCE, Track::Screen, KeyframeReason::Shown))
    );
    let on_screen = FrameRoute::ToNode {
        show_on: Some((PLAYBACK, mid("s"))),
    };
    assert_eq!(router.route_frame(SOURCE, Track::Screen), on_screen);
    assert_eq!(
        router.route_frame(SOURCE, Track::Camera),
        FrameRoute::ToNode { show_on: None }
    );
    // One screen per playback link: a new source replaces the old.
    router.show_screen(PLAYBACK, Some(A));
    assert_eq!(router.route_frame(A, Track::Screen), on_screen);
    assert_eq!(
        router.route_frame(SOURCE, Track::Screen),
        FrameRoute::ToNode { show_on: None }
    );
    assert_eq!(router.show_screen(PLAYBACK, None), None);
    assert_eq!(
        router.route_frame(A, Track::Screen),
        FrameRoute::ToNode { show_on: None }
    );
}

#[test]
fn silencing_drops_the_microphone_only_until_lifted() {
    let mut router = router();
    router.play(PLAYBACK, 0, Some(SOURCE));
    router.silence(SOURCE);
    assert_eq!(
        router.route_frame(SOURCE, Track::Microphone),
        FrameRoute::Silenced
    );
    assert_eq!(
        router.route_frame(SOURCE, Track::Camera),
        FrameRoute::ToNode {
            show_on: Some((PLAYBACK, mid("v0")))
        }
    );
    // A muted node does not send its user's voice either.
    router.silence(BROWSER);
    assert_eq!(
        router.route_frame(BROWSER, Track::Microphone),
        FrameRoute::Silenced
    );
    assert_eq!(
        router.route_frame(BROWSER, Track::Camera),
        FrameRoute::ToSubscribers
    );
    router.unsilence(SOURCE);
    assert_eq!(
        router.route_frame(SOURCE, Track::Microphone),
        FrameRoute::ToNode {
            show_on: Some((PLAYBACK, mid("a0")))
        }
    );
    // Silencing a link that is not open does nothing, and it stays so once it would exist.
    router.silence(LinkId(99));
    add_released_peer(&mut router, LinkId(99));
    assert_ne!(
        router.route_frame(LinkId(99), Track::Microphone),
        FrameRoute::Silenced
    );
}

#[test]
fn closing_a_link_takes_it_out_of_every_route() {
    let mut router = router();
    router.forward(UP, vec![A, B], 1);
    router.forward(SOURCE, vec![A], 1);
    router.play(PLAYBACK, 0, Some(SOURCE));
    router.show_screen(PLAYBACK, Some(SOURCE));
    router.silence(SOURCE);

    // As a child: its upstreams forward to the others only.
    router.handle_link_closed(A);
    assert_eq!(router.downstream(UP), [B]);
    assert!(router.downstream(SOURCE).is_empty());
    assert_eq!(router.child_count(), 1);
    assert!(!router.subscribers().contains(&A));

    // As an upstream, a shown source and a silenced link.
    router.handle_link_closed(SOURCE);
    assert_eq!(router.child_count(), 1);
    assert!(!router.keyframe_due(Instant::now(), SOURCE, Track::Camera));
    // Its id reused (it is not, but routes must not linger): nothing of it is left.
    add_released_peer(&mut router, SOURCE);
    assert!(router.downstream(SOURCE).is_empty());
    assert_eq!(
        router.route_frame(SOURCE, Track::Microphone),
        FrameRoute::ToNode { show_on: None }
    );
    assert_eq!(
        router.route_frame(SOURCE, Track::Screen),
        FrameRoute::ToNode { show_on: None }
    );

    // As a playback link: nothing is shown on it any more.
    router.play(PLAYBACK, 1, Some(SOURCE));
    router.handle_link_closed(PLAYBACK);
    assert_eq!(
        router.route_frame(SOURCE, Track::Camera),
        FrameRoute::ToNode { show_on: None }
    );

    // As a local source: it gets no keyframe requests for this node's streams.
    let own = [target(BROWSER, Track::Camera, KeyframeReason::LocalSource)];
    assert_eq!(
        keyframe_targets(&router, Instant::now(), SOURCE, mid("x")),
        own
    );
    router.handle_link_closed(BROWSER);
    assert_eq!(
        keyframe_targets(&router, Instant::now(), SOURCE, mid("x")),
        []
    );
    assert_eq!(router.subscribers(), [UP, B, SOURCE]);

    // Closing twice, or an unknown link, is harmless.
    router.handle_link_closed(A);
    router.handle_link_closed(LinkId(99));
}

#[test]
fn keyframe_requests_go_to_the_upstream_of_a_relayed_stream() {
    let mut router = router();
    let now = Instant::now();
    router.forward(UP, vec![A, B], 1);
    let mut out = Vec::new();
    // The track is the one the child's m-line sends, whichever m-line that is.
    router.route_keyframe_request(now, B, mid("1"), Some(Track::Screen), &mut out);
    assert_eq!(out, [target(UP, Track::Screen, KeyframeReason::Relayed)]);
    out.clear();
    // An m-line the child does not name means the camera.
    router.route_keyframe_request(now, A, mid("9"), None, &mut out);
    assert_eq!(out, [target(UP, Track::Camera, KeyframeReason::Relayed)]);
}

#[test]
fn keyframe_requests_from_a_playback_link_go_to_the_source_shown_on_that_m_line() {
    let mut router = router();
    let now = Instant::now();
    router.play(PLAYBACK, 0, Some(SOURCE));
    router.play(PLAYBACK, 1, Some(A));
    router.show_screen(PLAYBACK, Some(B));
    let shown = |link, track| [target(link, track, KeyframeReason::Shown)];
    assert_eq!(
        keyframe_targets(&router, now, PLAYBACK, mid("v0")),
        shown(SOURCE, Track::Camera)
    );
    assert_eq!(
        keyframe_targets(&router, now, PLAYBACK, mid("v1")),
        shown(A, Track::Camera)
    );
    assert_eq!(
        keyframe_targets(&router, now, PLAYBACK, mid("s")),
        shown(B, Track::Screen)
    );
}

#[test]
fn keyframe_requests_for_this_nodes_own_streams_go_to_its_browser_sources() {
    let mut router = router();
    let now = Instant::now();
    let screen_source = LinkId(8);
    router.add_link(screen_source, LinkRole::LocalSource);
    let mut out = Vec::new();
    router.route_keyframe_request(now, A, mid("1"), Some(Track::Screen), &mut out);
    // Every browser source is asked; the one not sending the track has no m-line for it.
    assert_eq!(
        out,
        [
            target(BROWSER, Track::Screen, KeyframeReason::LocalSource),
            target(screen_source, Track::Screen, KeyframeReason::LocalSource),
        ]
    );
    // A playback m-line showing nothing falls back alike.
    assert_eq!(keyframe_targets(&router, now, PLAYBACK, mid("v0")).len(), 2);
}

#[test]
fn keyframe_requests_are_rate_limited_per_link_and_track() {
    let mut router = router();
    let start = Instant::now();
    router.forward(UP, vec![A, B], 1);
    let relayed = [target(UP, Track::Camera, KeyframeReason::Relayed)];
    assert_eq!(keyframe_targets(&router, start, A, mid("1")), relayed);
    router.handle_keyframe_requested(start, UP, Track::Camera);
    // Another child's request within the interval merges into the one sent.
    let soon = start + Duration::from_millis(999);
    assert_eq!(keyframe_targets(&router, soon, B, mid("1")), []);
    // Other tracks and other links have their own limits.
    assert!(router.keyframe_due(soon, UP, Track::Screen));
    assert!(router.keyframe_due(soon, A, Track::Camera));
    let later = start + Duration::from_secs(1);
    assert_eq!(keyframe_targets(&router, later, B, mid("1")), relayed);

    // This node's own browser is asked more often.
    router.handle_keyframe_requested(start, BROWSER, Track::Camera);
    assert!(!router.keyframe_due(start + Duration::from_millis(199), BROWSER, Track::Camera));
    assert!(router.keyframe_due(start + Duration::from_millis(200), BROWSER, Track::Camera));

    // A time before the last request (clocks read in another order) is not due, not a panic.
    assert!(!router.keyframe_due(start - Duration::from_millis(1), UP, Track::Camera));
}

#[test]
fn a_new_viewer_asks_for_a_keyframe_whatever_the_rate_limit() {
    let mut router = router();
    let now = Instant::now();
    router.handle_keyframe_requested(now, SOURCE, Track::Camera);
    router.handle_keyframe_requested(now, SOURCE, Track::Screen);
    assert!(!router.keyframe_due(now, SOURCE, Track::Camera));
    // `play` and `show_screen` answer with the request even so: the caller makes it at once.
    assert!(router.play(PLAYBACK, 0, Some(SOURCE)).is_some());
    assert!(router.show_screen(PLAYBACK, Some(SOURCE)).is_some());
    // The playback link asking at once is rate-limited like everyone else.
    assert_eq!(keyframe_targets(&router, now, PLAYBACK, mid("v0")), []);
}

/// The join time the call bench found: the keyframe asked for when a place was given reached
/// a playback link still connecting; the page's own request a few hundred milliseconds later
/// was held back for a second by the relay limit. A page's request waits 200 ms at most.
#[test]
fn a_page_asking_for_the_member_it_shows_waits_less_than_a_relay() {
    let mut router = router();
    let now = Instant::now();
    let _ = router.play(PLAYBACK, 0, Some(SOURCE));
    router.handle_keyframe_requested(now, SOURCE, Track::Camera);
    let soon = now + Duration::from_millis(199);
    assert_eq!(keyframe_targets(&router, soon, PLAYBACK, mid("v0")), []);
    let later = now + Duration::from_millis(200);
    assert_eq!(
        keyframe_targets(&router, later, PLAYBACK, mid("v0")),
        [target(SOURCE, Track::Camera, KeyframeReason::Shown)]
    );
    // A relayed child asking of the same link still merges into the one sent a second ago.
    assert!(!router.keyframe_due(later, SOURCE, Track::Camera));
}

#[test]
fn a_playback_link_connecting_wants_a_keyframe_from_everyone_it_shows() {
    let mut router = router();
    let _ = router.play(PLAYBACK, 0, Some(SOURCE));
    let _ = router.show_screen(PLAYBACK, Some(SOURCE));
    let mut out = Vec::new();
    router.shown_on(PLAYBACK, &mut out);
    out.sort_by_key(|t| t.track == Track::Screen);
    assert_eq!(
        out,
        [
            target(SOURCE, Track::Camera, KeyframeReason::Shown),
            target(SOURCE, Track::Screen, KeyframeReason::Shown),
        ]
    );
    let mut other = Vec::new();
    router.shown_on(A, &mut other);
    assert!(other.is_empty(), "a link that shows nothing wants nothing");
}

#[test]
fn a_link_to_another_node_carries_nothing_either_way_until_released() {
    let mut router = router();
    const NEW: LinkId = LinkId(7);
    router.add_link(NEW, LinkRole::Peer);
    router.play(PLAYBACK, 1, Some(NEW));
    router.forward(UP, vec![A, NEW], 1);
    router.forward(NEW, vec![B], 1);

    // Held: none of this node's frames go to it, nothing of its own is used or passed on,
    // and its keyframe requests go nowhere.
    assert!(!router.subscribers().contains(&NEW));
    assert_eq!(router.route_frame(NEW, Track::Camera), FrameRoute::Held);
    assert_eq!(router.route_frame(NEW, Track::Microphone), FrameRoute::Held);
    assert_eq!(router.downstream(UP), [A]);
    assert!(router.downstream(NEW).is_empty());
    assert_eq!(router.child_count(), 1);
    assert!(keyframe_targets(&router, Instant::now(), NEW, mid("v")).is_empty());

    // Released: every route ordered while it was held applies.
    router.hold(NEW, false);
    assert!(router.subscribers().contains(&NEW));
    assert_eq!(
        router.route_frame(NEW, Track::Camera),
        FrameRoute::ToNode {
            show_on: Some((PLAYBACK, mid("v1")))
        }
    );
    assert_eq!(router.downstream(UP), [A, NEW]);
    assert_eq!(router.downstream(NEW), [B]);
    assert_eq!(router.child_count(), 3);

    // Held again (its peer's account changed, say): it stops both ways at once.
    router.hold(NEW, true);
    assert_eq!(router.route_frame(NEW, Track::Camera), FrameRoute::Held);
    assert_eq!(router.downstream(UP), [A]);
    assert!(router.downstream(NEW).is_empty());
    // Only links to other nodes are held; the page's own links never are.
    router.hold(BROWSER, true);
    assert_eq!(
        router.route_frame(BROWSER, Track::Camera),
        FrameRoute::ToSubscribers
    );
}

#[test]
fn a_program_feeds_everyone_outside_the_studio_and_the_browsers_own_tracks_feed_the_studio() {
    let now = Instant::now();
    let mut router = router();
    const PROGRAM: LinkId = LinkId(7);
    router.add_link(PROGRAM, LinkRole::LocalSource);
    router.set_studio(vec![B]);
    // No program yet: every local source feeds everyone, the studio included.
    assert!(router.feeds(BROWSER, A) && router.feeds(BROWSER, B));

    router.set_program(PROGRAM);
    assert!(router.feeds(PROGRAM, A), "a tree child gets the program");
    assert!(
        !router.feeds(PROGRAM, B),
        "a guest never gets its own voice back"
    );
    assert!(
        router.feeds(BROWSER, B),
        "the studio gets the broadcaster's own tracks"
    );
    assert!(!router.feeds(BROWSER, A));
    // Keyframes are asked of the source that feeds the asker.
    let targets = |from| keyframe_targets(&router, now, from, mid("v"));
    assert_eq!(
        targets(A),
        vec![target(PROGRAM, Track::Camera, KeyframeReason::LocalSource)]
    );
    assert_eq!(
        targets(B),
        vec![target(BROWSER, Track::Camera, KeyframeReason::LocalSource)]
    );

    // The program ends: the browser's tracks feed everyone again.
    router.handle_link_closed(PROGRAM);
    assert!(router.feeds(BROWSER, A) && router.feeds(BROWSER, B));
    // Only local sources can be the program.
    router.set_program(A);
    assert!(router.feeds(BROWSER, A));
}
