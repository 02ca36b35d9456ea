//! `chroom bench docs`: shared notes between nodes on loopback — a keystroke's way from one
//! node to another, its size on the wire, a newcomer catching up on a large note, and what an
//! open note costs in memory.

use chroom_docs::{Documents, DocumentsConfig};
use chroom_proto::{RoomMessage, RoomMessageBody, encode_room_message};
use chroom_room::sealing::Sealing;
use chroom_types::{Account, IdentityBinding, RoomId};
use yrs::{Doc, Text, Transact};

use super::*;

/// A writer of the note: each keystroke comes out as the Yjs update a page sends.
struct Typist {
    doc: Doc,
}

impl Typist {
    fn new(client: u64) -> Self {
        Self {
            doc: Doc::with_client_id(client),
        }
    }

    fn key(&self, text: &str) -> Vec<u8> {
        let shared = self.doc.get_or_insert_text(chroom_docs::TEXT_NAME);
        let mut txn = self.doc.transact_mut();
        let end = shared.len(&txn);
        shared.insert(&mut txn, end, text);
        txn.encode_update_v1()
    }
}

/// A note of about `bytes` bytes of text, as one update.
fn note_of(bytes: usize) -> Vec<u8> {
    let line = "a line of the long-running meeting notes, kept for months by the team\n";
    Typist::new(7).key(&line.repeat(bytes / line.len() + 1))
}

/// `members` nodes in one room, each seeing the others.
async fn room_of(dir: &Path, room: RoomId, members: usize) -> anyhow::Result<Vec<RunningNode>> {
    let mut nodes: Vec<RunningNode> = Vec::new();
    for i in 0..members {
        let mut config = open_loopback(dir.join(format!("member-{i}")));
        if let Some(first) = nodes.first() {
            config.net.bootstrap = first.listen_addrs().await?;
        }
        nodes.push(RunningNode::start(config).await?);
    }
    for node in &nodes {
        node.join(room, Participation::Receive(vec![MediaKind::Audio]))
            .await?;
    }
    let everyone = async {
        for node in &nodes {
            while node.participants(room).await?.len() < members {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), everyone)
        .await
        .context("members did not see each other within 30 s")??;
    Ok(nodes)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at]
}

/// The resident set of this process, in bytes.
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// Keystrokes typed on one page and shown on another, each page on its own `chroom node`
/// process (driven by `tests/web/bench-notes.mjs` in Chromium); `keys` keys `gap` apart.
async fn page_to_page(keys: usize, gap: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_nodes, urls) = page_nodes(dir.path(), 2, None).await?;
    let input = serde_json::json!({
        "urls": urls,
        "room": "bench-notes",
        "keys": keys,
        "gap_ms": gap.as_millis() as u64,
    });
    let output = Command::new("node")
        .arg("tests/web/bench-notes.mjs")
        .arg(input.to_string())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("starting node (Node.js) with tests/web/bench-notes.mjs: run from the repository after scripts/setup.sh")?;
    anyhow::ensure!(output.status.success(), "the page scenario failed");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut shown: Vec<f64> = result["keystroke_ms"]
        .as_array()
        .map(|list| list.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    shown.sort_by(f64::total_cmp);
    anyhow::ensure!(!shown.is_empty(), "no keystroke was timed: {result}");
    let at = |p: f64| shown[((shown.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "keystroke, page to page (Chromium, each page on its own node process): p50 {:.0} ms, p99 {:.0} ms over {} keys ({} lost)",
        at(0.5),
        at(0.99),
        shown.len(),
        keys - shown.len()
    );
    Ok(())
}

pub(crate) async fn docs(
    keys: usize,
    note_bytes: usize,
    runs: usize,
    pages: bool,
) -> anyhow::Result<()> {
    if pages {
        page_to_page(keys, Duration::from_millis(80)).await?;
    }
    let dir = tempfile::tempdir()?;
    let room: RoomName = "bench-docs".parse()?;
    let room = room.id();

    // 1. Memory: open notes held by one node's documents core, measured first and all kept
    //    until the end, so the allocator has no freed memory to hand out again.
    let mut held = Vec::new();
    for size in [10_000, 100_000, note_bytes] {
        let count = (50_000_000 / size).clamp(4, 200);
        let before = rss_bytes()?;
        let mut rooms = Vec::with_capacity(count);
        let update = note_of(size);
        for _ in 0..count {
            let mut docs: Documents<u32> = Documents::new(DocumentsConfig::default());
            docs.load("notes", &update)?;
            rooms.push(docs);
        }
        let grown = rss_bytes()?.saturating_sub(before);
        println!(
            "memory per open note of {} KB of text: {} KB ({count} notes held)",
            size / 1000,
            grown / count as u64 / 1024
        );
        held.push(rooms);
    }
    // 2. Keystrokes typed on one node, seen on another: from the edit handed to the writer's
    //    node to the update arriving at the reader's (what its page is sent next).
    let nodes = room_of(&dir.path().join("typing"), room, 2).await?;
    let (writer, reader) = (&nodes[0], &nodes[1]);
    let typist = Typist::new(1);
    let mut seen = reader.doc_events();
    let mut latencies = Vec::with_capacity(keys);
    let mut update_bytes = 0;
    for i in 0..keys {
        let key = if i % 12 == 11 { " " } else { "k" };
        let update = typist.key(key);
        update_bytes += update.len();
        let started = Instant::now();
        writer.edit_doc(room, "notes", update).await?;
        let arrived = async {
            while !matches!(seen.recv().await?, chroom_node::node::DocEvent::Edit(_)) {}
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(10), arrived)
            .await
            .context("a keystroke did not arrive within 10 s")??;
        latencies.push(started.elapsed());
        // A fast typist: 12 keys a second.
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let lost = keys - latencies.len();
    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    println!(
        "keystroke, node to node: p50 {:.2} ms, p99 {:.2} ms over {keys} keys ({lost} lost)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    // The room message a keystroke travels in, sealed and with its signed binding (the size
    // a node with an account sends; gossipsub adds its own framing and signature).
    let binding = IdentityBinding {
        account: Account::from_bytes([0x11; 20]),
        expires_at_unix: 1_800_000_000,
        signature: [0x22; 65],
    };
    let keystroke = RoomMessageBody::DocUpdate {
        name: "notes".into(),
        update: Typist::new(1).key("k").into(),
    };
    let sealed = Sealing::<u8>::default()
        .seal(room, &keystroke)
        .context("a keystroke seals")?;
    let message = encode_room_message(&RoomMessage {
        room,
        author: Some(binding),
        sent_at_unix_ms: 1_800_000_000_000,
        body: RoomMessageBody::Sealed(sealed),
    });
    println!(
        "bytes per keystroke: Yjs update {:.1} (mean over the run), room message {}",
        update_bytes as f64 / keys as f64,
        message.len()
    );
    for node in nodes {
        node.shutdown().await;
    }

    // 3. A member joining a room whose note is `note_bytes` long, `runs` times.
    let note = note_of(note_bytes);
    let mut catch_up = Vec::new();
    for run in 0..runs {
        let base = dir.path().join(format!("catch-up-{run}"));
        let holder_dir = base.join("holder");
        std::fs::create_dir_all(&holder_dir)?;
        {
            let (store, _) = chroom_store::Store::open(holder_dir.join("chroom.redb"), "seed", 1)?;
            store.put_doc(room, "notes", &note)?;
        }
        let holder = RunningNode::start(open_loopback(holder_dir)).await?;
        holder
            .join(room, Participation::Receive(vec![MediaKind::Audio]))
            .await?;
        let full = holder
            .doc_text(room, "notes")
            .await?
            .unwrap_or_default()
            .len();
        let mut config = open_loopback(base.join("newcomer"));
        config.net.bootstrap = holder.listen_addrs().await?;
        let newcomer = RunningNode::start(config).await?;
        let started = Instant::now();
        newcomer
            .join(room, Participation::Receive(vec![MediaKind::Audio]))
            .await?;
        let caught_up = async {
            loop {
                let held = newcomer.doc_text(room, "notes").await?.unwrap_or_default();
                if held.len() >= full {
                    return anyhow::Ok(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let took = tokio::time::timeout(Duration::from_secs(60), caught_up)
            .await
            .context("the newcomer did not catch up within 60 s")??;
        println!(
            "run {run}: joined and caught up on a {} KB note in {} ms",
            full / 1000,
            took.as_millis()
        );
        catch_up.push(took);
        newcomer.shutdown().await;
        holder.shutdown().await;
    }
    report("join → note caught up", &mut catch_up);
    drop(held);

    Ok(())
}
