//! Shared documents across nodes and browsers: members of a conference type into one note at
//! once from Chromium and Firefox pages, and every page and every node's stored copy ends with
//! the same text; an audio space's listener reads along and cannot write. Nodes catch up on a
//! large note by pulling it from a member, and a member stopped while others wrote, then
//! writing alone, merges both ways when it is back. A listener's node forging an edit onto the
//! room's topic is refused by the others, and a node without a right that subscribes to the
//! topic reads neither the chat nor the notes.

use std::time::{Duration, Instant};

use chroom_docs::{Documents, DocumentsConfig};
use chroom_proto::{
    RoomMessage, RoomMessageBody, SignalRequest, SignalResponse, encode_room_message,
};
use chroom_room::sealing::seal_with;
use chroom_store::Store;
use chroom_tests::pages::{page_nodes, page_url, screenshots, serve_page};
use chroom_tests::{
    Chain, eventually, init_tracing, run_page_scenario, take_part, tcp_addr, until_present,
};
use chroom_types::{Role, RoomId, RoomKind, RoomName};
use serde_json::json;
use yrs::{Doc, Text, Transact};

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
    // Each page shows the two others editing, on the line their caret is on.
    for editors in seen["editors"].as_array().unwrap() {
        let editors = editors.as_array().unwrap();
        assert_eq!(editors.len(), 2, "{editors:?}");
        assert!(
            editors
                .iter()
                .all(|e| e.as_str().unwrap().contains("· line 1")),
            "{editors:?}"
        );
    }

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

/// A writer's copy of a note: each edit comes out as the Yjs update a page would send.
struct Writer {
    doc: Doc,
}

impl Writer {
    fn new(client: u64) -> Self {
        Self {
            doc: Doc::with_client_id(client),
        }
    }

    /// Appends `text` to what this writer has seen of the note.
    fn append(&self, text: &str) -> Vec<u8> {
        let shared = self.doc.get_or_insert_text(chroom_docs::TEXT_NAME);
        let mut txn = self.doc.transact_mut();
        let end = shared.len(&txn);
        shared.insert(&mut txn, end, text);
        txn.encode_update_v1()
    }
}

/// The text of `room`'s note on `node`, once it holds `len` characters or more.
async fn note_of_at_least(node: &chroom_node::RunningNode, room: RoomId, len: usize) -> String {
    eventually(
        Duration::from_secs(60),
        "the note reaches the node",
        || async {
            node.doc_text(room, "notes")
                .await
                .ok()
                .flatten()
                .filter(|text| text.len() >= len)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_catch_up_on_a_large_note_and_edits_made_apart_merge_when_a_member_returns() {
    init_tracing();
    let (chain, room) = Chain::with_room(ROOM).await;
    chain.grant(room, 3, Role::Listener).await;
    let dir = tempfile::tempdir().unwrap();
    let data = |name: &str| dir.path().join(name);

    // A's store holds a 1 MB note already (the room has been in use).
    let seed = Writer::new(7);
    let line = "a line of the long-running meeting notes, kept for months by the team\n";
    let big = seed.append(&line.repeat(1_000_000 / line.len() + 1));
    std::fs::create_dir_all(data("a")).unwrap();
    {
        let (store, _) = Store::open(data("a").join("chroom.redb"), "seed", 1).unwrap();
        store.put_doc(room, "notes", &big).unwrap();
    }
    let a = chain.node(&data("a"), 1, &[]).await;
    let boot = [tcp_addr(&a).await];
    let b = chain.node(&data("b"), 2, &boot).await;
    let c = chain.node_with(&data("c"), 3, &boot, serve_page).await;
    let started = Instant::now();
    for node in [&a, &b, &c] {
        take_part(node, room).await;
    }
    let full = a.doc_text(room, "notes").await.unwrap().unwrap();
    assert!(full.len() >= 1_000_000);
    for node in [&b, &c] {
        let caught_up = note_of_at_least(node, room, full.len()).await;
        assert!(caught_up == full, "a member caught up on another text");
    }
    println!(
        "two members caught up on a 1 MB note in {:?}",
        started.elapsed()
    );

    // B stops; A and C write meanwhile.
    b.shutdown().await;
    let edits = [
        (&a, Writer::new(11), "A wrote while B was away. "),
        (&c, Writer::new(33), "C wrote while B was away. "),
    ];
    for (node, writer, text) in &edits {
        node.edit_doc(room, "notes", writer.append(text))
            .await
            .unwrap();
    }
    for node in [&a, &c] {
        eventually(
            Duration::from_secs(30),
            "A and C see each other's edit",
            || async {
                let text = node.doc_text(room, "notes").await.ok()??;
                edits.iter().all(|(_, _, t)| text.contains(t)).then_some(())
            },
        )
        .await;
    }

    // B starts again from its data, alone: it writes before it finds the others.
    let b = chain.node(&data("b"), 2, &[]).await;
    take_part(&b, room).await;
    let alone = "B wrote alone. ";
    b.edit_doc(room, "notes", Writer::new(22).append(alone))
        .await
        .unwrap();
    b.net().dial(boot[0].clone()).await.unwrap();
    let back = Instant::now();

    // Everyone ends with one text holding the note and all three edits.
    let wanted = full.len() + alone.len() + edits.iter().map(|(_, _, t)| t.len()).sum::<usize>();
    let mut texts = Vec::new();
    for node in [&a, &b, &c] {
        texts.push(note_of_at_least(node, room, wanted).await);
    }
    println!(
        "edits made apart merged {:?} after the member dialed back",
        back.elapsed()
    );
    assert!(
        texts.iter().all(|t| *t == texts[0]),
        "the nodes hold different texts"
    );
    for text in edits.iter().map(|(_, _, t)| *t).chain([alone]) {
        assert!(texts[0].contains(text), "{text:?} was lost");
    }
    assert_eq!(texts[0].len(), wanted);
    // A page opening the room on C (its node in the room since before) shows the whole note.
    let length = texts[0].encode_utf16().count();
    let loaded = run_page_scenario(
        "notes-load.mjs",
        json!({ "url": page_url(&c), "room": ROOM, "length": length }),
        Duration::from_secs(60),
    )
    .await;
    println!(
        "a page opening the room showed the note (1 MB and the edits) in {} ms",
        loaded["ms"]
    );
    assert_eq!(loaded["shown"], length, "{loaded}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listeners_forged_edit_is_refused_by_the_other_nodes() {
    init_tracing();
    // Account 1 speaks in the audio space, account 2 listens.
    let (chain, room) = Chain::with_room_of_kind(SPACE, RoomKind::AudioSpace).await;
    let dir = tempfile::tempdir().unwrap();
    let speaker = chain.node(&dir.path().join("speaker"), 1, &[]).await;
    let boot = [tcp_addr(&speaker).await];
    let listener = chain.node(&dir.path().join("listener"), 2, &boot).await;
    for node in [&speaker, &listener] {
        take_part(node, room).await;
    }
    until_present(&speaker, room, 2).await;
    speaker
        .edit_doc(room, "notes", Writer::new(1).append("agenda"))
        .await
        .unwrap();
    note_of_at_least(&listener, room, "agenda".len()).await;

    // The listener's own node refuses its edit.
    let refused = listener
        .edit_doc(room, "notes", Writer::new(2).append("mine"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("read"), "{refused:#}");

    // A listener node doing it anyway: a signed edit, sealed with the listener's own key
    // (members hold it: the listener is a member), straight onto the topic.
    let key = match speaker
        .net()
        .request(listener.peer_id(), SignalRequest::RoomKey { room })
        .await
        .unwrap()
    {
        SignalResponse::RoomKey(key) => key,
        other => panic!("a member is handed the listener's key: {other:?}"),
    };
    let rejected_before = speaker.stats().await.unwrap().gossip_rejected;
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let binding = chroom_registry::sign(
        &chain.key(2),
        &listener.peer_id().to_base58(),
        now_unix.as_secs() + 3600,
    )
    .unwrap();
    let edit = RoomMessageBody::DocUpdate {
        name: "notes".into(),
        update: Writer::new(2).append("forged ").into(),
    };
    // A nonce the listener's node has not used (it sealed nothing).
    let sealed = seal_with(&key, u64::MAX / 2, room, &edit).unwrap();
    let forged = encode_room_message(&RoomMessage {
        room,
        author: Some(binding),
        sent_at_unix_ms: now_unix.as_millis() as u64,
        body: RoomMessageBody::Sealed(sealed),
    });
    listener.net().publish(room, forged).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "the speaker's node rejects it",
        || async {
            let rejected = speaker.stats().await.ok()?.gossip_rejected;
            (rejected > rejected_before).then_some(())
        },
    )
    .await;
    let text = speaker.doc_text(room, "notes").await.unwrap();
    assert_eq!(text.as_deref(), Some("agenda"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_right_on_the_rooms_topic_reads_no_chat_and_no_notes() {
    init_tracing();
    // Accounts 1 and 2 are members of the conference; account 3 is a stranger to it.
    let (chain, room) = Chain::with_room(ROOM).await;
    let dir = tempfile::tempdir().unwrap();
    let speaker = chain.node(&dir.path().join("speaker"), 1, &[]).await;
    let boot = [tcp_addr(&speaker).await];
    let member = chain.node(&dir.path().join("member"), 2, &boot).await;
    // The eavesdropper: a real node acting for the stranger that checks nobody, so it takes
    // whatever it is sent, subscribed to the room's topic like any member.
    let eavesdropper = chain
        .node_with(&dir.path().join("stranger"), 3, &boot, |config| {
            config.registry = None;
            config.open_access = true;
        })
        .await;
    for node in [&speaker, &member, &eavesdropper] {
        take_part(node, room).await;
    }
    until_present(&member, room, 2).await;
    // It is in the topic's mesh: members' beats, which travel in the clear, reach it.
    until_present(&eavesdropper, room, 3).await;

    let mut chat = member.chat_messages();
    let secret = "the launch moves to Friday";
    speaker.send_chat(room, secret).await.unwrap();
    speaker
        .edit_doc(room, "notes", Writer::new(1).append("budget: 40k"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while chat.recv().await.unwrap().text != secret {}
    })
    .await
    .expect("the member reads the chat line");
    note_of_at_least(&member, room, "budget: 40k".len()).await;

    // Both reached the eavesdropper sealed; the speaker refused it its key, and after asking
    // for 10 s it dropped them unread.
    eventually(
        Duration::from_secs(30),
        "the eavesdropper drops both unread",
        || async { (eavesdropper.stats().await.ok()?.sealed_unread >= 2).then_some(()) },
    )
    .await;
    let lines = eavesdropper.chat_history(room, 100).unwrap();
    assert!(lines.iter().all(|line| line.text != secret), "{lines:?}");
    assert_eq!(eavesdropper.doc_text(room, "notes").await.unwrap(), None);
    assert!(speaker.stats().await.unwrap().requests_refused > 0);
    assert_eq!(member.stats().await.unwrap().sealed_unread, 0);
}
