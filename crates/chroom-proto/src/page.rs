//! The page API: JSON messages between a node and its user's page over a WebSocket, tagged by
//! `type`. The page is untrusted input like any peer: [`decode_page_request`] bounds the size
//! and rejects anything but the known requests, with a reason a person can read.

use serde::{Deserialize, Serialize};

/// Largest request a page may send. Chat text is at most 4 KiB; SDP offers are a few KiB.
pub const MAX_PAGE_REQUEST_BYTES: usize = 64 * 1024;

/// A page request that cannot be carried out as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageRequestError {
    /// Over [`MAX_PAGE_REQUEST_BYTES`].
    #[error("request of {len} bytes is over the limit of {MAX_PAGE_REQUEST_BYTES}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not JSON, or not one of the requests.
    #[error("not a valid request: {0}")]
    Invalid(String),
}

/// Decodes a page's request.
pub fn decode_page_request(text: &str) -> Result<ClientMessage, PageRequestError> {
    if text.len() > MAX_PAGE_REQUEST_BYTES {
        return Err(PageRequestError::TooLarge { len: text.len() });
    }
    serde_json::from_str(text).map_err(|e| PageRequestError::Invalid(e.to_string()))
}

/// What a page asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Join a room by name (leaving the one joined, if any).
    Join {
        /// The room's name.
        room: String,
        /// In a broadcast room: broadcast the page's camera and microphone (its role must
        /// allow it) instead of watching. Joining again with the other value switches.
        #[serde(default)]
        live: bool,
    },
    /// Leave the room.
    Leave,
    /// Say something in the room's chat.
    Chat {
        /// The text, at most 4 KiB.
        text: String,
    },
    /// Send the page's camera and microphone to the node: an SDP offer with send-only m-lines.
    Publish {
        /// The offer.
        sdp: String,
    },
    /// Set up the link the node shows other members on now, before joining, and keep it
    /// between rooms: joining then waits only for the members' media. (Without it the node
    /// offers the link when the page joins.)
    PreparePlayback,
    /// The page's answer to a [`ServerMessage::PlaybackOffer`].
    PlaybackAnswer {
        /// The answer.
        sdp: String,
        /// The offer it answers (its `offer`): an answer to one replaced since is dropped.
        offer: u64,
    },
    /// Share the page's screen with the room: an SDP offer with one send-only video m-line.
    ShareScreen {
        /// The offer.
        sdp: String,
    },
    /// Stop sharing the screen.
    StopScreen,
    /// Live in a broadcast with guests on stage: the program the page composes (its camera
    /// and its guests' in one picture, their sounds mixed) goes to the audience instead of
    /// the page's own tracks, which its guests keep getting. An SDP offer with send-only
    /// audio and video m-lines.
    Program {
        /// The offer.
        sdp: String,
    },
    /// The program ends (no guest on stage any more): the audience gets the page's own tracks
    /// again.
    StopProgram,
    /// Ask for the text a wallet signs for the node to act for the wallet's account.
    SignInText,
    /// The wallet's EIP-191 signature of the [`ServerMessage::SignInText`] text: the node acts
    /// for `account` from now on (until `expires_at_unix`).
    SignIn {
        /// The account, `0x` and 40 hex digits.
        account: String,
        /// The expiry the signed text names.
        expires_at_unix: u64,
        /// The 65-byte signature, `0x` and 130 hex digits.
        signature: String,
    },
    /// As a host: mute, unmute or remove another member. Every node checks the page's node may.
    Moderate {
        /// The member's PeerId.
        peer_id: String,
        /// What to do.
        action: ModerateAction,
    },
    /// Ask the room's hosts a question (a webinar's Q&A), 1 to 500 bytes.
    Ask {
        /// The question.
        text: String,
    },
    /// The name the page's user goes by in every room (shown beside its account); empty or
    /// absent: by its account alone.
    SetName {
        /// The name.
        #[serde(default)]
        name: Option<String>,
    },
    /// Ask or decide who presents and who is on the stage (the room's orchestrator takes it
    /// if the page's user may): raise or lower a hand, invite a member on stage, …
    Cue {
        /// What.
        cue: CueAction,
        /// The member it is about, for the cues that name one (`lower_hand` without one is
        /// the page's own hand).
        #[serde(default)]
        peer_id: Option<String>,
    },
    /// Fetch a file of the page's room that the node did not fetch by itself (a
    /// [`FileView`] whose `fetch` is [`FileFetch::OnRequest`]). The node still checks its
    /// file space; the file's next [`ServerMessage::File`] says what became of it.
    FetchFile {
        /// The file's hash, as [`FileView::hash`] gives it.
        hash: String,
    },
    /// How tall the page shows other members' cameras now, in device pixels: each member's
    /// node then sends no taller layer than that needs. Members not named keep what they got.
    VideoSizes {
        /// At most [`MAX_SHOWN_SIZES`].
        sizes: Vec<ShownSize>,
    },
    /// Open one of the room's shared documents (a new name starts a new one at its first
    /// edit): the node answers with a [`ServerMessage::Doc`], then sends members' edits of it
    /// as [`ServerMessage::DocUpdate`]s.
    OpenDoc {
        /// The document's name, 1 to 64 bytes.
        name: String,
    },
    /// Where the page's caret and selection are in an open document, for the other members'
    /// pages: Yjs relative positions (`Y.encodeRelativePosition`), base64; both empty: the
    /// page left the document. At most a few times a second.
    DocCursor {
        /// The document's name.
        name: String,
        /// One end of the selection.
        anchor: String,
        /// The other end (the caret).
        head: String,
    },
    /// An edit of an open document made on the page: a Yjs update (v1), base64.
    EditDoc {
        /// The document's name.
        name: String,
        /// The update, base64 (standard alphabet, padded).
        update: String,
    },
}

/// Most members one [`ClientMessage::VideoSizes`] may name.
pub const MAX_SHOWN_SIZES: usize = 64;

/// How tall a page shows one member's camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShownSize {
    /// The member's PeerId.
    pub peer_id: String,
    /// Device pixels.
    pub height: u32,
}

/// A cue a page sends ([`ClientMessage::Cue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CueAction {
    /// Ask to present.
    Present,
    /// Stop presenting, or withdraw the ask.
    StopPresenting,
    /// As a host: give the presentation to the member.
    PassPresentation,
    /// Raise the page's hand.
    RaiseHand,
    /// Lower a hand: the page's own, or as a host the member's.
    LowerHand,
    /// As a host: invite the member on stage (or step on an open stage oneself).
    InviteToStage,
    /// As a host: take the member off the stage (or step down oneself).
    RemoveFromStage,
}

/// What a host may do to a member, in [`ClientMessage::Moderate`] and
/// [`ServerMessage::Moderated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerateAction {
    /// Nobody plays its microphone, and its node stops sending it.
    Mute,
    /// Lift a mute.
    Unmute,
    /// It leaves the room and is ignored there.
    Remove,
}

/// What the node tells a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent first: who this node is.
    Hello {
        /// The node's PeerId.
        peer_id: String,
        /// The account it acts for.
        account: Option<String>,
        /// When the user's wallet signed the account in: until when (unix seconds). The page
        /// asks the wallet again before then.
        wallet_until_unix: Option<u64>,
    },
    /// The page is in `room` now.
    Joined {
        /// The room's name.
        room: String,
        /// `conference`, `audio_space` or `broadcast`; absent without a registry.
        kind: Option<&'static str>,
        /// Whether the page sends media now (in a broadcast room: it is live, or on stage).
        may_publish: bool,
        /// In a broadcast room: whether the page is live (the root of its relay tree).
        live: bool,
        /// In a broadcast room: whether the page's role lets it go live.
        may_go_live: bool,
        /// This node's role in the room; absent without a registry.
        role: Option<&'static str>,
    },
    /// The page left its room.
    Left,
    /// Everyone present in the room, this node first.
    Participants {
        /// The room's name.
        room: String,
        /// The members.
        participants: Vec<ParticipantView>,
    },
    /// What the page should say is wrong in its room (sent on every change; empty: nothing),
    /// for people: the registry not answering, another broadcaster winning over this one.
    Notices {
        /// The room's name.
        room: String,
        /// One sentence each.
        notices: Vec<String>,
    },
    /// A chat line, from another member or (`own`) this node.
    Chat {
        /// The room's name.
        room: String,
        /// The author's PeerId.
        peer_id: String,
        /// The author's account.
        account: Option<String>,
        /// Unix milliseconds.
        sent_at_unix_ms: u64,
        /// The text.
        text: String,
        /// Written on this page.
        own: bool,
        /// A question to the room's hosts: hosts' pages list it apart from the chat.
        question: bool,
    },
    /// The node's answer to a [`ClientMessage::Publish`] offer.
    PublishAnswer {
        /// The answer.
        sdp: String,
    },
    /// The node's answer to a [`ClientMessage::Program`] offer.
    ProgramAnswer {
        /// The answer.
        sdp: String,
    },
    /// The node's answer to a [`ClientMessage::ShareScreen`] offer.
    ScreenAnswer {
        /// The answer.
        sdp: String,
    },
    /// The node did not take a [`ClientMessage::ShareScreen`] offer: someone else presents
    /// (the page's user is in line now), or the room's policy waits for a host.
    ScreenRefused {
        /// Why, for people.
        message: String,
    },
    /// The node offers to send the page the other members' media: one audio and one video
    /// m-line per slot; [`ServerMessage::Slots`] says who is shown in which.
    PlaybackOffer {
        /// Which offer this is: the page's answer names it, so an answer to an offer replaced
        /// meanwhile (the page joined again quickly) is not taken for the new one's.
        offer: u64,
        /// The offer.
        sdp: String,
        /// Each slot's m-lines.
        slots: Vec<SlotView>,
        /// The m-line showing a member's shared screen; absent in audio-only rooms.
        screen_mid: Option<String>,
    },
    /// Which member each playback slot shows (`null`: nobody), by PeerId, and whose shared
    /// screen the screen m-line shows.
    Slots {
        /// One entry per slot.
        peers: Vec<Option<String>>,
        /// The member whose screen is shown, if anyone's.
        screen: Option<String>,
    },
    /// A file shared in the page's room, and how far this node holds it (sent on joining for
    /// every file, then on every change).
    File(FileView),
    /// The text for the user's wallet to sign (`personal_sign`), naming this node and how long
    /// the node may act for the account.
    SignInText {
        /// The text.
        text: String,
        /// The expiry it names.
        expires_at_unix: u64,
    },
    /// A host's decision about a member of the page's room was carried out.
    Moderated {
        /// The room's name.
        room: String,
        /// The member's PeerId.
        peer_id: String,
        /// The member's account, where the node knew it (a removed member is gone from the
        /// participant list by the time the page names it).
        account: Option<String>,
        /// What was decided.
        action: ModerateAction,
        /// The host's PeerId.
        by_peer_id: String,
        /// The host's account.
        by_account: Option<String>,
        /// It is about this page's node (removed: the page is out of the room).
        is_self: bool,
    },
    /// One of the room's shared documents, as the page asked for it with
    /// [`ClientMessage::OpenDoc`] (or again after an edit of the page was refused: the page
    /// starts over from it).
    Doc {
        /// The room's name.
        room: String,
        /// The document's name.
        name: String,
        /// The whole document as one Yjs update (v1), base64; empty for a new document.
        state: String,
        /// The page's user may edit it (else the page shows it read-only).
        editable: bool,
        /// The names of the room's documents.
        names: Vec<String>,
    },
    /// A member's edit of a document of the page's room: a Yjs update (v1), base64.
    DocUpdate {
        /// The room's name.
        room: String,
        /// The document's name.
        name: String,
        /// The update.
        update: String,
    },
    /// Where another member's selection is in a document of the page's room.
    DocCursor {
        /// The room's name.
        room: String,
        /// The document's name.
        name: String,
        /// The member's PeerId.
        peer_id: String,
        /// The member's account.
        account: Option<String>,
        /// One end of the selection (a Yjs relative position, base64).
        anchor: String,
        /// The other end (the caret); both empty: the member left the document.
        head: String,
    },
    /// The node refused an edit made on the page; a [`ServerMessage::Doc`] with the document
    /// as the node holds it follows.
    DocRefused {
        /// The document's name.
        name: String,
        /// Why, for people.
        message: String,
    },
    /// A request could not be carried out; `message` says why, for people.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// A shared file in [`ServerMessage::File`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileView {
    /// The room's name.
    pub room: String,
    /// BLAKE3 of its bytes, hex: `GET /api/files/<hash>` downloads it once `complete`.
    pub hash: String,
    /// Its name.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// The PeerId of the node that shared it.
    pub peer_id: String,
    /// The account that node proved.
    pub account: Option<String>,
    /// When it was shared, unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// Bytes this node holds, checked.
    pub received: u64,
    /// Held whole and checked against its hash.
    pub complete: bool,
    /// Whether the node fetches it.
    pub fetch: FileFetch,
    /// Shared from this node.
    pub own: bool,
    /// What keeps it from completing right now (for [`FileFetch::Refused`]: why it is not
    /// fetched).
    pub problem: Option<String>,
}

/// Whether the node fetches a shared file, in [`FileView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFetch {
    /// It fetches it (`received` says how far), holds it whole, or shared it.
    Fetching,
    /// Too large to fetch unasked: the page offers to download it ([`ClientMessage::FetchFile`]).
    OnRequest,
    /// Not fetched: it would not fit in the node's file space; `problem` says why.
    Refused,
}

/// A playback slot's m-lines in [`ServerMessage::PlaybackOffer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotView {
    /// The audio m-line's mid.
    pub audio_mid: String,
    /// The video m-line's mid; absent in audio-only rooms.
    pub video_mid: Option<String>,
}

/// One member in [`ServerMessage::Participants`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantView {
    /// Its PeerId.
    pub peer_id: String,
    /// Its account.
    pub account: Option<String>,
    /// Its role in the room, where known.
    pub role: Option<&'static str>,
    /// This node.
    pub is_self: bool,
    /// It shares a screen.
    pub sharing_screen: bool,
    /// A host muted it.
    pub muted_by_host: bool,
    /// It hosts the room now (by its role, or as the policy's acting host).
    pub hosting: bool,
    /// It hosts by the room's policy, not by an on-chain role.
    pub acting_host: bool,
    /// It presents.
    pub presenting: bool,
    /// Its place among the raised hands (0 first), if its hand is up.
    pub hand: Option<usize>,
    /// A host invited it onto the stage.
    pub on_stage: bool,
    /// It asked to present and waits for its turn.
    pub asking_to_present: bool,
    /// The name its user goes by, if it set one.
    pub display_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_and_bad_ones_say_why() {
        assert_eq!(
            decode_page_request(r#"{"type":"join","room":"standup"}"#),
            Ok(ClientMessage::Join {
                room: "standup".into(),
                live: false,
            })
        );
        assert_eq!(
            decode_page_request(r#"{"type":"leave"}"#),
            Ok(ClientMessage::Leave)
        );
        assert_eq!(
            decode_page_request(r#"{"type":"stop_screen"}"#),
            Ok(ClientMessage::StopScreen)
        );
        assert_eq!(
            decode_page_request(r#"{"type":"stop_program"}"#),
            Ok(ClientMessage::StopProgram)
        );
        assert_eq!(
            decode_page_request(r#"{"type":"program","sdp":"v=0"}"#),
            Ok(ClientMessage::Program { sdp: "v=0".into() })
        );
        assert_eq!(
            decode_page_request(r#"{"type":"fetch_file","hash":"ab12"}"#),
            Ok(ClientMessage::FetchFile {
                hash: "ab12".into()
            })
        );
        assert_eq!(
            decode_page_request(r#"{"type":"cue","cue":"raise_hand"}"#),
            Ok(ClientMessage::Cue {
                cue: CueAction::RaiseHand,
                peer_id: None
            })
        );
        assert_eq!(
            decode_page_request(r#"{"type":"cue","cue":"invite_to_stage","peer_id":"12D3"}"#),
            Ok(ClientMessage::Cue {
                cue: CueAction::InviteToStage,
                peer_id: Some("12D3".into())
            })
        );
        assert_eq!(
            decode_page_request(r#"{"type":"moderate","peer_id":"12D3","action":"remove"}"#),
            Ok(ClientMessage::Moderate {
                peer_id: "12D3".into(),
                action: ModerateAction::Remove
            })
        );
        assert!(
            decode_page_request(r#"{"type":"moderate","peer_id":"12D3","action":"ban"}"#).is_err()
        );
        for bad in [
            "",
            "not json",
            r#"{"type":"join"}"#,
            r#"{"type":"fly","to":"moon"}"#,
            r#"{"type":"chat","text":"hi","extra":1}"#,
            r#"{"type":"join","room":7}"#,
        ] {
            let error = decode_page_request(bad).unwrap_err();
            assert!(
                error.to_string().starts_with("not a valid request"),
                "{bad}: {error}"
            );
        }
        let huge = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "x".repeat(MAX_PAGE_REQUEST_BYTES)
        );
        assert!(matches!(
            decode_page_request(&huge),
            Err(PageRequestError::TooLarge { .. })
        ));
    }
}
