//! The page a node serves its user, and the WebSocket API the page talks to (its messages are
//! [`chroom_proto::page`]).
//!
//! One page (`web/`: HTML, JS, CSS compiled into the binary) at `/` and `/r/<room>` (a link to
//! a room joins it). The page opens `/api/ws` and speaks JSON messages tagged by `type`
//! ([`chroom_proto::page::ClientMessage`] in, [`chroom_proto::page::ServerMessage`] out), each
//! connection served by a `page::PageSession`; files go up with `POST /api/files` and come
//! down with `GET /api/files/<hash>`. The API only asks; the node decides: a join is checked
//! against the registry for the node's account before anything else happens, and everything a
//! page says to others goes through the node's room machinery, which peers check again.
//!
//! Bad input (not JSON, unknown types, oversized or binary messages, bad room names) gets an
//! `error` message and the connection stays open; the node keeps serving every other page.
//!
//! Only the node's own user gets in: the page acts for the node's account, and any local
//! program (or any site the user visits: browsers let it reach 127.0.0.1) could otherwise. The
//! node makes a secret key at start and prints its page link with it (`/?token=…`, the way
//! Jupyter does); the link sets an HttpOnly, SameSite=Strict cookie and every request without
//! it gets 401. The API's WebSocket and uploads must also come from this server's own page
//! (an `Origin` naming it; none at all is refused too).
//!
//! WHIP ingest (RFC 9725, `web::whip`) lets a streaming tool publish into a room as the node's
//! user, with a Bearer token derived from the page's key instead of the cookie.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Path, Query};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chroom_types::{Action, FileHash, MAX_FILE_BYTES, RoomId, RoomName};
use tokio_util::sync::CancellationToken;

use crate::node::{NodeHandle, OwnRefusal};

mod page;
mod whip;

use page::PageSession;

/// Frames above this size are not even read: the connection is closed.
const MAX_WS_FRAME_BYTES: usize = 1024 * 1024;

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
/// The Notes panel with yjs, bundled by `scripts/page-bundle.sh` from `web/src/notes.mjs`.
const NOTES_JS: &str = include_str!("../web/notes.js");
/// A live broadcaster's program: its camera and its guests' composed, their sounds mixed.
const PROGRAM_JS: &str = include_str!("../web/program.js");

/// The cookie holding the page's key.
const KEY_COOKIE: &str = "chroom_page";

/// The page as served: where, and the link (with its key) that opens it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The bound address.
    pub addr: SocketAddr,
    /// The page's link, carrying its key: give it to the node's user only.
    pub link: String,
    /// The Bearer token of the node's WHIP ingest (`POST /whip/<room>`, see the module
    /// docs of `web::whip`): like the link, for the node's user only.
    pub whip_token: String,
}

/// Binds `listen` and serves the page and API until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    node: NodeHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<(Served, impl Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding the web page on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let key: Arc<str> = random_hex(32)?.into();
    let whip_token = whip::whip_token(&key);
    let state = WebState {
        node,
        pages_in: Arc::default(),
        key: key.clone(),
        whip: whip::Sessions::default(),
        whip_token: whip_token.clone().into(),
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(index))
        .route("/app.js", get(|| async { script(APP_JS) }))
        .route("/notes.js", get(|| async { script(NOTES_JS) }))
        .route("/program.js", get(|| async { script(PROGRAM_JS) }))
        .route("/app.css", get(app_css))
        .route("/api/ws", get(upgrade))
        .route(
            "/api/files",
            post(upload).layer(DefaultBodyLimit::max(MAX_FILE_BYTES as usize)),
        )
        .route("/api/files/{hash}", get(download))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .merge(whip::routes().layer(DefaultBodyLimit::max(whip::MAX_BODY_BYTES)))
        .with_state(state.clone());
    let sweep = whip::end_closed_sessions(state, shutdown.clone());
    let server = async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let (result, ()) = tokio::join!(serve.into_future(), sweep);
        if let Err(e) = result {
            tracing::warn!(error = %e, "web page server stopped");
        }
    };
    let link = format!("http://{addr}/?token={key}");
    let served = Served {
        addr,
        link,
        whip_token,
    };
    Ok((served, server))
}

/// `len` fresh random bytes in hex: the page's key, WHIP session ids.
fn random_hex(len: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("reading /dev/urandom: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Lets through requests that carry the page's key in their cookie. A link carrying it as
/// `?token=` sets the cookie and sends the browser on to the same page without it (so it
/// does not stay in the address bar or the history).
async fn require_key(State(web): State<WebState>, request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let (tokens, rest): (Vec<&str>, Vec<&str>) = query
        .split('&')
        .partition(|pair| pair.starts_with("token="));
    if let Some(token) = tokens.first().map(|pair| &pair["token=".len()..]) {
        if !same_secret(token, &web.key) {
            return refuse_keyless("the link's key is not this node's");
        }
        let rest: Vec<&str> = rest.into_iter().filter(|pair| !pair.is_empty()).collect();
        let mut location = request.uri().path().to_owned();
        if !rest.is_empty() {
            location = format!("{location}?{}", rest.join("&"));
        }
        let cookie = format!(
            "{KEY_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            web.key
        );
        return (
            StatusCode::SEE_OTHER,
            [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
        )
            .into_response();
    }
    if cookie_key(request.headers()).is_some_and(|key| same_secret(key, &web.key)) {
        return next.run(request).await;
    }
    refuse_keyless("no key")
}

fn refuse_keyless(why: &str) -> Response {
    tracing::warn!(why, "refused a page request without this node's key");
    (
        StatusCode::UNAUTHORIZED,
        "open this node's page by the link it printed when it started (…/?token=…)",
    )
        .into_response()
}

/// The page's key from a request's cookies, if it carries one.
fn cookie_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(KEY_COOKIE)?.strip_prefix('='))
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(given: &str, key: &str) -> bool {
    given.len() == key.len()
        && given
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

fn script(source: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        source,
    )
        .into_response()
}

async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

/// What every page connection shares.
#[derive(Debug, Clone)]
struct WebState {
    node: NodeHandle,
    /// Pages and WHIP sessions in each room: the node leaves a room when the last of them does
    /// (a user may have the page open twice, or stream into the room the page is in).
    pages_in: Arc<Mutex<HashMap<RoomId, usize>>>,
    /// The page's key (see the module docs).
    key: Arc<str>,
    /// The WHIP publishers' sessions.
    whip: whip::Sessions,
    /// The WHIP clients' Bearer token.
    whip_token: Arc<str>,
}

impl WebState {
    /// Counts one more page or WHIP session in `room`, joining it as `participation` if
    /// `Join::Always` or nothing of this node's user is there yet.
    async fn enter_room(
        &self,
        room: RoomId,
        participation: chroom_room::Participation,
        join: Join,
    ) -> anyhow::Result<()> {
        let present = self.pages().get(&room).is_some_and(|count| *count > 0);
        if join == Join::Always || !present {
            self.node.join(room, participation).await?;
        }
        *self.pages().entry(room).or_default() += 1;
        Ok(())
    }

    /// Counts one page or WHIP session less in `room`; the node leaves it with the last.
    async fn leave_room(&self, room: RoomId) {
        let last = {
            let mut pages = self.pages();
            let count = pages.entry(room).or_default();
            *count = count.saturating_sub(1);
            let last = *count == 0;
            if last {
                pages.remove(&room);
            }
            last
        };
        if last && let Err(e) = self.node.leave(room).await {
            tracing::debug!(error = %e, "leaving room for a page");
        }
    }

    fn pages(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, usize>> {
        // A panic while holding this lock leaves a count, not a broken invariant: go on.
        self.pages_in
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether [`WebState::enter_room`] joins a room the node's user is in already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// Joins again, with the new participation (a page asks for its own way in).
    Always,
    /// Keeps the participation of who is there (a WHIP publisher adds its media to it).
    IfAbsent,
}

async fn upgrade(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(web): State<WebState>,
) -> Response {
    if let Some(refused) = refuse_foreign(&headers) {
        return refused;
    }
    ws.max_message_size(MAX_WS_FRAME_BYTES)
        .max_frame_size(MAX_WS_FRAME_BYTES)
        .on_upgrade(move |socket| PageSession::new(socket, web).run())
}

fn refuse_foreign(headers: &HeaderMap) -> Option<Response> {
    if same_origin(headers) {
        return None;
    }
    tracing::warn!(origin = ?headers.get(header::ORIGIN), "refused a page API request from another site");
    Some(
        (
            StatusCode::FORBIDDEN,
            "the page API answers this node's own page only",
        )
            .into_response(),
    )
}

/// Where and as what an uploaded file is shared.
#[derive(Debug, serde::Deserialize)]
struct UploadQuery {
    room: String,
    name: String,
}

/// `POST /api/files?room=<room>&name=<file name>` with the file as the body: shares it with the
/// room (which the node must be in), answering `{"hash": "<hex>"}`.
async fn upload(
    headers: HeaderMap,
    State(web): State<WebState>,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_foreign(&headers) {
        return refused;
    }
    let room: RoomName = match query.room.parse() {
        Ok(room) => room,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a room name: {e}")).into_response();
        }
    };
    match web.node.check_own_access(&room, Action::Chat).await {
        Ok(Ok(_)) => {}
        Ok(Err(refusal @ OwnRefusal::Unavailable)) => {
            let message = format!("cannot share: {refusal}");
            return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
        }
        Ok(Err(refusal)) => {
            return (StatusCode::FORBIDDEN, format!("cannot share: {refusal}")).into_response();
        }
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot share: {e:#}"),
            )
                .into_response();
        }
    }
    match web.node.share_file(room.id(), query.name, body).await {
        Ok(hash) => axum::Json(serde_json::json!({ "hash": hash.to_string() })).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("cannot share: {e:#}")).into_response(),
    }
}

/// `GET /api/files/<hash>`: a file held whole and checked, as an attachment. A download link
/// is a navigation, which carries no `Origin`: the page's cookie (SameSite=Strict, so never
/// sent from another site) is what lets it through.
async fn download(State(web): State<WebState>, Path(hash): Path<String>) -> Response {
    let Ok(hash) = hash.parse::<FileHash>() else {
        return (StatusCode::BAD_REQUEST, "a file is named by 64 hex digits").into_response();
    };
    match web.node.files().read(hash).await {
        Ok(Some((name, bytes))) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_DISPOSITION, attachment(&name)),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            "this node does not hold that file whole (yet)",
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
    }
}

/// A `Content-Disposition` saving as `name` (RFC 6266: an ASCII fallback, the UTF-8 name
/// percent-encoded).
fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Whether a WebSocket upgrade or an upload comes from this node's own page. Browsers let any
/// site open a WebSocket to 127.0.0.1 and send its `Origin`; without this check any web page
/// the user visits could act for the node's account. The `Host` must name the node by address
/// (or `localhost`), so a site cannot point its own name at 127.0.0.1 (DNS rebinding) and pass
/// as same-origin. A request with no `Origin` is no browser's page: refused as well.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if !names_this_machine(host) {
        return false;
    }
    headers
        .get(header::ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .is_some_and(|origin| origin == format!("http://{host}"))
}

/// Whether a `Host` header (`name:port`) names an address or `localhost`, not a domain.
fn names_this_machine(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(addr, _)| addr),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_the_nodes_own_page_may_open_the_api() {
        assert!(same_origin(&headers(
            "127.0.0.1:7800",
            Some("http://127.0.0.1:7800")
        )));
        assert!(same_origin(&headers(
            "localhost:7800",
            Some("http://localhost:7800")
        )));
        assert!(same_origin(&headers(
            "[::1]:7800",
            Some("http://[::1]:7800")
        )));
        // No origin: not a page at all (a local program).
        assert!(!same_origin(&headers("127.0.0.1:7800", None)));
        // Another site's page.
        assert!(!same_origin(&headers(
            "127.0.0.1:7800",
            Some("https://evil.example")
        )));
        assert!(!same_origin(&headers(
            "127.0.0.1:7800",
            Some("http://127.0.0.1:9999")
        )));
        // DNS rebinding: the attacker's name pointed at 127.0.0.1 is same-origin but not ours.
        assert!(!same_origin(&headers(
            "evil.example:7800",
            Some("http://evil.example:7800")
        )));
        assert!(!same_origin(&headers("evil.example:7800", None)));
    }

    #[test]
    fn the_pages_key_comes_from_its_cookie_and_is_compared_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "other=1; chroom_page=abc123".parse().unwrap(),
        );
        assert_eq!(cookie_key(&headers), Some("abc123"));
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc124", "abc123"));
        assert!(!same_secret("abc12", "abc123"));
        assert!(!same_secret("", "abc123"));
        assert_eq!(cookie_key(&HeaderMap::new()), None);
    }
}
