//! WHIP ingest (RFC 9725): a standard WebRTC publisher (OBS, GStreamer's `whip-client`, a
//! browser library) sends its camera and microphone into a room through this node, as the
//! node's own user — the way the page's camera goes in.
//!
//! - `POST /whip/<room>` with an SDP offer (`application/sdp`) joins `<room>` (if no page of
//!   this node is in it already) and answers `201 Created` with the SDP answer and the
//!   session's `Location` (`/whip/<room>/<session>`). In a broadcast room whose registry
//!   entry lets the node's account go live, the node goes live as the broadcast's root.
//! - `PATCH <Location>` with `application/trickle-ice-sdpfrag` adds the client's trickled ICE
//!   candidates (`204`); ICE restarts are not supported (`422`).
//! - `DELETE <Location>` ends the session (`200`): the link closes and the node leaves the
//!   room unless a page of this node is still in it.
//! - `OPTIONS` on both answers CORS preflights; every answer allows any origin, since the
//!   token, not a cookie, is what lets a request in.
//!
//! WHEP playback (the WHEP draft, draft-ietf-wish-whep) is the same the other way: `POST
//! /whep/<room>` with a player's receive-only offer (an audio m-line, a video m-line) joins the
//! room as the node's user would to watch it and answers with a link showing one member: in a
//! conference the active speaker (by the audio levels members' packets carry, held against
//! flapping: `chroom_media::speaker`), else the first this node receives from; in a broadcast
//! the broadcaster through the tree. `PATCH`, `DELETE` and `OPTIONS` on `/whep/<room>/<session>` are as for
//! WHIP.
//!
//! Every request but `OPTIONS` carries `Authorization: Bearer <token>`, where the token is
//! derived from the page's key at start ([`whip_token`]) and printed with the page link: it
//! acts for the node's account, so the registry decides whether it may publish or go live,
//! but it does not open the page (a streaming tool given it cannot chat or moderate).
//!
//! Errors get RFC 9725's codes: `401` without the token, `415` for another content type,
//! `400` for an offer or fragment that does not parse, `403` where the account may not
//! publish, `404` for an unknown session, `503` when the registry or the media socket
//! cannot take it now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{options, post};
use chroom_media::remote_sdp::{CheckedOffer, TrickleFragment};
use chroom_room::node::{OwnRefusal, page_part};
use chroom_types::{Action, LinkId, RoomId, RoomKind, RoomName, Track};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Join, WebState};
use crate::node::NodeHandle;

/// The content type of an SDP offer or answer (RFC 4566).
const SDP: &str = "application/sdp";
/// The content type of a trickle ICE fragment (RFC 8840).
const SDP_FRAG: &str = "application/trickle-ice-sdpfrag";
/// Largest offer or fragment read: a WHIP offer has two m-lines and a few candidates.
pub(super) const MAX_BODY_BYTES: usize = 64 * 1024;
/// How often a WHEP link checks whom it shows (who speaks), besides whenever the node's view
/// changes.
const FEED_CHECK: Duration = Duration::from_millis(300);
/// The context of the WHIP token's key derivation from the page's key (BLAKE3 `derive_key`).
const TOKEN_CONTEXT: &str = "chroom 2026-12 whip bearer token from the page key";

/// The WHIP sessions a node serves, by session id.
pub(super) type Sessions = Arc<Mutex<HashMap<String, Session>>>;

/// One WHIP publisher's session.
#[derive(Debug)]
pub(super) struct Session {
    room: RoomId,
    link: LinkId,
    /// The ICE username fragment of the client's offer: a fragment naming another one is an
    /// ICE restart.
    ice_ufrag: Option<String>,
    /// A WHEP session's task choosing whom its link shows; cancelled when the session ends.
    feeder: Option<CancellationToken>,
}

/// The Bearer token WHIP clients of the node whose page key is `page_key` present: the key
/// itself would open the page, so the token is derived from it one way.
pub(super) fn whip_token(page_key: &str) -> String {
    hex::encode(blake3::derive_key(TOKEN_CONTEXT, page_key.as_bytes()))
}

/// The WHIP routes (outside the page's cookie check: they check their token).
pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/whip/{room}", post(publish).options(preflight))
        .route(
            "/whip/{room}/{session}",
            options(preflight).patch(trickle).delete(end),
        )
        .route("/whep/{room}", post(play).options(preflight))
        .route(
            "/whep/{room}/{session}",
            options(preflight).patch(trickle).delete(end),
        )
        .layer(axum::middleware::map_response(allow_any_origin))
}

/// Which way a session's media goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// WHEP: the node sends the room to the client.
    Play,
    /// WHIP: the client sends into the room.
    Publish,
}

impl Way {
    /// The path the session's endpoint and resource live under.
    fn path(self) -> &'static str {
        match self {
            Self::Play => "whep",
            Self::Publish => "whip",
        }
    }
}

/// `POST /whip/<room>`: joins the room and answers the client's offer to send.
async fn publish(
    State(web): State<WebState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    open(web, &room, &headers, body, Way::Publish)
        .await
        .unwrap_or_else(|refused| refused)
}

/// `POST /whep/<room>`: joins the room to watch it and answers the player's offer.
async fn play(
    State(web): State<WebState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    open(web, &room, &headers, body, Way::Play)
        .await
        .unwrap_or_else(|refused| refused)
}

/// Opens a WHIP or WHEP session: checks the request, joins `room` as the registry lets this
/// node's account, and answers the offer (`201 Created`, the session's `Location`).
async fn open(
    web: WebState,
    room: &str,
    headers: &HeaderMap,
    offer: String,
    way: Way,
) -> Result<Response, Response> {
    if let Some(refused) = refuse(&web, headers, SDP, &offer) {
        return Err(refused);
    }
    // Checked before the node joins the room for it.
    let checked = CheckedOffer::parse(&offer).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            &format!("the body is not an SDP offer with media: {e}"),
        )
    })?;
    let room: RoomName = room
        .parse()
        .map_err(|e| problem(StatusCode::NOT_FOUND, &format!("not a room name: {e}")))?;
    let participation = participation(&web, &room, way).await?;
    if let Err(e) = web
        .enter_room(room.id(), participation, Join::IfAbsent)
        .await
    {
        let why = format!("cannot join: {e:#}");
        return Err(problem(StatusCode::SERVICE_UNAVAILABLE, &why));
    }
    let ice_ufrag = checked.ice_ufrag;
    let accepted = match way {
        Way::Play => web.node.accept_browser_playback_offer(offer).await,
        Way::Publish => web.node.accept_browser_media(offer, Track::Camera).await,
    };
    let (link, answer) = match accepted {
        Ok(accepted) => accepted,
        Err(e) => {
            web.leave_room(room.id()).await;
            let e = format!("{e:#}");
            let status = if e.contains("bad sdp") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Err(problem(status, &format!("offer not accepted: {e}")));
        }
    };
    let id = match super::random_hex(16) {
        Ok(id) => id,
        Err(e) => {
            web.node.close_browser_media(link).await;
            web.leave_room(room.id()).await;
            return Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{e:#}"),
            ));
        }
    };
    tracing::info!(room = %room.as_str(), %link, session = %id, ?way, "session opened");
    let feeder = (way == Way::Play).then(|| {
        let feeder = CancellationToken::new();
        tokio::spawn(feed(web.node.clone(), room.id(), link, feeder.clone()));
        feeder
    });
    let session = Session {
        room: room.id(),
        link,
        ice_ufrag,
        feeder,
    };
    web.whip_sessions().insert(id.clone(), session);
    let location = format!("/{}/{}/{id}", way.path(), room.as_str());
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_owned()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{id}\"")),
        ],
        answer,
    )
        .into_response())
}

/// How this node takes part in `room` for a session going `way`, if the registry lets its
/// account: a publisher in a broadcast room goes live (its root or nothing: viewers send no
/// media); a player watches as the page would.
async fn participation(
    web: &WebState,
    room: &RoomName,
    way: Way,
) -> Result<chroom_room::Participation, Response> {
    let access = match web.node.check_own_access(room, Action::Listen).await {
        Ok(Ok(access)) => access,
        Ok(Err(refusal @ OwnRefusal::Unavailable)) => {
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &refusal.to_string(),
            ));
        }
        Ok(Err(refusal)) => return Err(problem(StatusCode::FORBIDDEN, &refusal.to_string())),
        Err(e) => {
            return Err(problem(StatusCode::SERVICE_UNAVAILABLE, &format!("{e:#}")));
        }
    };
    let live = way == Way::Publish && access.kind == Some(RoomKind::Broadcast);
    // A WHIP publisher is no member on a stage: its account's role decides.
    match page_part(access, live, false) {
        Ok(part) if way == Way::Play || part.may_publish => Ok(part.participation),
        Ok(_) => Err(problem(
            StatusCode::FORBIDDEN,
            "this node's account may not send media in this room",
        )),
        Err(e) => Err(problem(StatusCode::FORBIDDEN, &e.to_string())),
    }
}

/// Keeps a WHEP link showing a member of `room`: the dominant speaker among those this node
/// receives from (by the audio levels their packets carry), else the one it shows while this
/// node still receives from it, else the first. In a broadcast that is the broadcaster. Until
/// `stop`.
async fn feed(node: NodeHandle, room: RoomId, link: LinkId, stop: CancellationToken) {
    let mut changes = node.view_changes();
    let mut check = tokio::time::interval(FEED_CHECK);
    let mut shown: Option<LinkId> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = check.tick() => {}
            Ok(()) = changes.changed() => {}
        }
        let Ok(receiving) = node.receiving_from(room).await else {
            return;
        };
        let links: Vec<LinkId> = receiving.iter().map(|(_, from)| *from).collect();
        let still_shown = shown.filter(|shown| links.contains(shown));
        let next = match node.dominant_speaker(links.clone()).await {
            Some(speaker) => Some(speaker),
            None => still_shown.or_else(|| links.first().copied()),
        };
        if next != shown {
            shown = next;
            node.play_in_browser(link, 0, shown).await;
        }
    }
}

/// `PATCH /whip/<room>/<session>`: the client's trickled candidates.
async fn trickle(
    State(web): State<WebState>,
    Path((_, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = refuse(&web, &headers, SDP_FRAG, &body) {
        return refused;
    }
    let (link, ice_ufrag) = {
        let sessions = web.whip_sessions();
        let Some(found) = sessions.get(&session) else {
            return problem(StatusCode::NOT_FOUND, "no such whip session");
        };
        (found.link, found.ice_ufrag.clone())
    };
    let fragment = match TrickleFragment::parse(&body) {
        Ok(fragment) => fragment,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &format!("{e}")),
    };
    if let Some(ufrag) = &fragment.ice_ufrag
        && ice_ufrag.as_ref().is_some_and(|known| known != ufrag)
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ice restarts are not supported: post a new offer",
        );
    }
    let candidates = fragment.candidates;
    if candidates.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    match web.node.add_browser_candidates(link, candidates).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            let e = format!("{e:#}");
            if e.contains("bad sdp") {
                return problem(StatusCode::BAD_REQUEST, &e);
            }
            // The link closed under the session: it is over.
            web.end_session(&session).await;
            problem(StatusCode::NOT_FOUND, &e)
        }
    }
}

/// `DELETE /whip/<room>/<session>`: the client stops publishing.
async fn end(
    State(web): State<WebState>,
    Path((_, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&web, &headers) {
        return unauthorized();
    }
    if web.end_session(&session).await {
        return StatusCode::OK.into_response();
    }
    problem(StatusCode::NOT_FOUND, "no such whip session")
}

/// `OPTIONS`: what a browser's CORS preflight asks (RFC 9725 §4.2).
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            ("accept-post", SDP),
            ("accept-patch", SDP_FRAG),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS.as_str(),
                "POST, PATCH, DELETE, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS.as_str(),
                "Authorization, Content-Type, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE.as_str(), "86400"),
        ],
    )
        .into_response()
}

/// Every WHIP answer may be read by any page: requests are let in by their token.
async fn allow_any_origin(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link"),
    );
    response
}

/// Ends the WHIP sessions whose link closes by itself (the client went away without a
/// DELETE, or its link failed), until `shutdown`.
pub(super) async fn end_closed_sessions(web: WebState, shutdown: CancellationToken) {
    let mut closed = web.node.closed_links();
    loop {
        let link = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            link = closed.recv() => match link {
                Ok(link) => link,
                // Missed closes are found at the session's next request (its link is unknown).
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "whip sessions missed link closes");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let session = web
            .whip_sessions()
            .iter()
            .find_map(|(id, session)| (session.link == link).then(|| id.clone()));
        if let Some(session) = session {
            web.end_session(&session).await;
        }
    }
}

impl WebState {
    /// Ends a WHIP session: closes its link and leaves its room unless a page is there.
    /// Returns whether there was one.
    async fn end_session(&self, session: &str) -> bool {
        let Some(ended) = self.whip_sessions().remove(session) else {
            return false;
        };
        tracing::info!(link = %ended.link, session, "session ended");
        if let Some(feeder) = ended.feeder {
            feeder.cancel();
        }
        self.node.close_browser_media(ended.link).await;
        self.leave_room(ended.room).await;
        true
    }

    fn whip_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding this lock leaves a map, not a broken invariant: go on.
        self.whip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The answer for a request that lacks the token or sends `content_type`'s opposite, if
/// it does.
fn refuse(web: &WebState, headers: &HeaderMap, content_type: &str, body: &str) -> Option<Response> {
    if !authorized(web, headers) {
        return Some(unauthorized());
    }
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    if !given.is_some_and(|given| given.eq_ignore_ascii_case(content_type)) {
        return Some(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("send {content_type}"),
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Some(problem(StatusCode::PAYLOAD_TOO_LARGE, "too long"));
    }
    None
}

/// Whether a request carries this node's WHIP token.
fn authorized(web: &WebState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| super::same_secret(token.trim(), &web.whip_token))
}

fn unauthorized() -> Response {
    tracing::warn!("refused a whip request without this node's token");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "send the whip token this node printed when it started (Authorization: Bearer …)",
    )
        .into_response()
}

fn problem(status: StatusCode, why: &str) -> Response {
    tracing::debug!(%status, why, "whip request refused");
    (status, why.to_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_derived_from_the_page_key_one_way() {
        let token = whip_token("00ff");
        assert_eq!(token.len(), 64);
        assert_eq!(token, whip_token("00ff"));
        assert_ne!(token, whip_token("00fe"));
        assert_ne!(token, "00ff");
    }
}
