//! Shared documents across nodes and browsers: members of a conference type into one note at
//! once from Chromium and Firefox pages, and every page and every node's stored copy ends with
//! the same text; an audio space's listener reads along and cannot write.

use std::time::Duration;

use chroom_docs::{Documents, DocumentsConfig};
use chroom_store::Store;
use chroom_tests::pages::{page_nodes, page_url, screenshots};
use chroom_tests::{Chain, init_tracing, run_page_scenario};
use chroom_types::{Role, RoomKind, RoomName};
use serde_json::json;

const ROOM: &str = "planning";
const SPACE: &str = "fireside";

/// The text of `room`'s document `name` as the store in `dir` kept it.
fn stored_text(dir: &std::path::Path, room: &str, name: &str) -> Option<String> {
    let room = room.parse::<RoomName>().unwrap().id();
    let (store, _) = Store::open(dir.join("chroom.redb"), "reader", 1).unwrap();
    let mut docs: Documents<()> = Documents::new(DocumentsConfig::default());
    for (stored, bytes) in store.room_docs(room).unwrap() {
        docs.load(&stored, &bytes).unwrap();
    }
    Some(docs.document(name)?.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pages_typing_at_once_converge_and_a_listener_reads_along() {
    init_tracing();
    // Accounts 1 (speaker) and 2 (listener) are members of both rooms; 3 of the conference.
    let (chain, room) = Chain::with_room(ROOM).await;
    chain.grant(room, 3, Role::Listener).await;
    chain.add_room(SPACE, RoomKind::AudioSpace).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = page_nodes(&chain, dir.path(), &[1, 2, 3]).await;

    let seen = run_page_scenario(
        "notes.mjs",
        json!({
            "room": ROOM,
            "pages": nodes.iter().map(page_url).collect::<Vec<_>>(),
            "engines": ["chromium", "firefox", "chromium"],
            "space": SPACE,
            "speaker": page_url(&nodes[0]),
            "listener": page_url(&nodes[1]),
            "screenshots": screenshots(),
        }),
        Duration::from_secs(180),
    )
    .await;

    // Every page shows one text holding what each page typed, each run of keys whole: a
    // caret keeps to the key before it, so members typing at one spot do not mix letters.
    let texts: Vec<&str> = seen["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(texts.iter().all(|t| *t == texts[0]), "{seen}");
    let text = texts[0];
    for runs in seen["typed"].as_array().unwrap() {
        for run in runs.as_array().unwrap() {
            let run = run.as_str().unwrap();
            assert!(text.contains(run), "{run:?} is not whole in {text:?}");
        }
    }
    let typed: usize = seen["typed"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|runs| runs.as_array().unwrap())
        .map(|run| run.as_str().unwrap().chars().count())
        .sum();
    assert_eq!(text.chars().count(), typed, "{text:?}");

    // Every node stored that text (its pages closed, it left the room and stored its copy).
    let mut kept = Vec::new();
    for (i, node) in nodes.into_iter().enumerate() {
        node.shutdown().await;
        kept.push(stored_text(
            &dir.path().join(format!("node-{i}")),
            ROOM,
            "notes",
        ));
    }
    assert!(kept.iter().all(|k| k.as_deref() == Some(text)), "{kept:?}");

    // The audio space's listener saw the speaker's notes, could not change them, and was told.
    let space = &seen["space"];
    assert_eq!(space["listener_text"], "agenda: questions", "{space}");
    assert_eq!(space["speaker_text"], "agenda: questions", "{space}");
    assert!(
        space["listener_status"]
            .as_str()
            .unwrap()
            .contains("Read only"),
        "{space}"
    );
}
