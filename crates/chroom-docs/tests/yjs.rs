//! Wire compatibility with the npm `yjs` package, which the page runs: updates made by yjs in
//! Node.js apply in the store and the reverse, and state vector exchanges in y-protocols
//! bytes work both ways. Needs `node` and `node_modules/yjs` (scripts/setup.sh installs it);
//! without them the tests fail, they never skip.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use chroom_docs::{Access, Documents, DocumentsConfig, SyncMessage, TEXT_NAME};
use yrs::{ClientID, Doc, GetString, OffsetKind, Options, Text, Transact};

const NOTES: &str = "notes";

/// A page: `yjs_peer.cjs` in Node.js holding one yjs document.
struct YjsPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl YjsPeer {
    fn start(client_id: u32) -> Self {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.join("../..");
        let yjs = root.join("node_modules/yjs/package.json");
        assert!(
            yjs.exists(),
            "{} is missing: the yjs wire-compatibility test needs the npm yjs package. \
             Run scripts/setup.sh (or `npm install --no-audit --no-fund --no-save` in the \
             workspace root) first.",
            yjs.display()
        );
        let mut child = Command::new("node")
            .arg(manifest.join("tests/yjs_peer.cjs"))
            .arg(&root)
            .arg(client_id.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run `node` (Node.js 20 on PATH; scripts/setup.sh): {error}")
            });
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command; the answer's fields after `ok`.
    fn ask(&mut self, command: &str) -> Vec<String> {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let mut fields = line.split_whitespace().map(str::to_owned);
        match fields.next().as_deref() {
            Some("ok") => fields.collect(),
            _ => panic!("yjs peer refused `{command}`: {line:?}"),
        }
    }

    /// Inserts text; the update yjs emitted.
    fn insert(&mut self, index: u32, text: &str) -> Vec<u8> {
        let answer = self.ask(&format!("insert {index} {}", hex(text.as_bytes())));
        unhex(&answer[0])
    }

    fn delete(&mut self, index: u32, len: u32) -> Vec<u8> {
        let answer = self.ask(&format!("delete {index} {len}"));
        unhex(&answer[0])
    }

    /// Applies an update; the text after.
    fn apply(&mut self, update: &[u8]) -> String {
        let answer = self.ask(&format!("apply {}", hex(update)));
        utf8(&answer[0])
    }

    /// The whole document (`Y.encodeStateAsUpdate`) and its text.
    fn state(&mut self) -> (Vec<u8>, String) {
        let answer = self.ask("state");
        (unhex(&answer[0]), utf8(&answer[1]))
    }

    /// y-protocols SyncStep1 bytes.
    fn step1(&mut self) -> Vec<u8> {
        unhex(&self.ask("step1")[0])
    }

    /// Hands a y-protocols message in: the reply (for a SyncStep1) and the text after.
    fn sync(&mut self, message: &[u8]) -> (Option<Vec<u8>>, String) {
        let answer = self.ask(&format!("sync {}", hex(message)));
        let reply = (answer[0] != "-").then(|| unhex(&answer[0]));
        (reply, utf8(&answer[1]))
    }
}

impl Drop for YjsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Rust author: a yrs document counting positions as yjs does (UTF-16).
struct RustPage {
    doc: Doc,
}

impl RustPage {
    fn new(client_id: u64) -> Self {
        let mut options = Options::with_client_id(ClientID::new(client_id));
        options.offset_kind = OffsetKind::Utf16;
        Self {
            doc: Doc::with_options(options),
        }
    }

    fn insert(&self, index: u32, chunk: &str) -> Vec<u8> {
        let text = self.doc.get_or_insert_text(TEXT_NAME);
        let mut txn = self.doc.transact_mut();
        text.insert(&mut txn, index, chunk);
        txn.encode_update_v1()
    }

    fn delete(&self, index: u32, len: u32) -> Vec<u8> {
        let text = self.doc.get_or_insert_text(TEXT_NAME);
        let mut txn = self.doc.transact_mut();
        text.remove_range(&mut txn, index, len);
        txn.encode_update_v1()
    }

    fn text(&self) -> String {
        let text = self.doc.get_or_insert_text(TEXT_NAME);
        text.get_string(&self.doc.transact())
    }
}

fn store() -> Documents<u32> {
    Documents::new(DocumentsConfig::default())
}

fn edit(docs: &mut Documents<u32>, update: &[u8]) {
    docs.handle_update(Instant::now(), &1, Access::Edit, NOTES, update)
        .unwrap_or_else(|error| panic!("update refused: {error}"));
}

fn text(docs: &Documents<u32>) -> String {
    docs.document(NOTES).expect("document opened").text()
}

#[test]
fn updates_made_by_yjs_apply_in_the_store() {
    let mut page = YjsPeer::start(101);
    let mut docs = store();
    // Keystroke by keystroke, as a page's editor emits them, with text outside the BMP
    // (two UTF-16 units) so positions are counted the yjs way.
    for (index, letter) in "Hello, 🌍 wide world ✓".chars().enumerate() {
        let offset: usize = "Hello, 🌍 wide world ✓"
            .chars()
            .take(index)
            .map(char::len_utf16)
            .sum();
        edit(&mut docs, &page.insert(offset as u32, &letter.to_string()));
    }
    edit(&mut docs, &page.delete(10, 5)); // " wide" (the globe is two units)
    edit(&mut docs, &page.insert(0, ">> "));
    let (whole, expected) = page.state();
    assert_eq!(expected, ">> Hello, 🌍 world ✓");
    assert_eq!(text(&docs), expected);

    // The whole document as yjs encodes it loads into a fresh store.
    let mut fresh = store();
    fresh.load(NOTES, &whole).unwrap();
    assert_eq!(text(&fresh), expected);
}

#[test]
fn updates_made_by_the_store_side_apply_in_yjs() {
    let author = RustPage::new(202);
    let mut docs = store();
    let mut page = YjsPeer::start(102);
    let edits: [&dyn Fn() -> Vec<u8>; 4] = [
        &|| author.insert(0, "Grüße aus Rust"),
        &|| author.insert(5, " 🦀"),
        &|| author.delete(0, 2),
        &|| author.insert(0, "Gr"),
    ];
    for make in edits {
        let update = make();
        edit(&mut docs, &update);
        assert_eq!(page.apply(&update), author.text());
    }
    assert_eq!(author.text(), "Grüße 🦀 aus Rust");
    assert_eq!(text(&docs), author.text());

    // The store's compacted document, as it would be kept on disk, loads in a fresh page.
    let compacted = docs.document(NOTES).unwrap().compact();
    let mut fresh = YjsPeer::start(103);
    assert_eq!(fresh.apply(&compacted), author.text());
}

#[test]
fn state_vector_exchanges_work_both_ways() {
    // Both start from a shared text, then edit apart: the page in yjs, the store (fed by a
    // Rust author) on its own, including at the same position.
    let author = RustPage::new(303);
    let mut page = YjsPeer::start(104);
    let mut docs = store();
    let start = author.insert(0, "shared: ");
    edit(&mut docs, &start);
    page.apply(&start);

    page.insert(8, "from yjs");
    page.insert(0, "[js]");
    for update in [author.insert(8, "from yrs"), author.insert(0, "[rs]")] {
        edit(&mut docs, &update);
    }
    assert_ne!(page.state().1, text(&docs));

    // The store asks the page (SyncStep1 → SyncStep2), in y-protocols bytes.
    let ask = SyncMessage::SyncStep1 {
        state_vector: docs.state_vector(NOTES).unwrap(),
    };
    let (reply, page_text) = page.sync(&ask.encode());
    let reply = SyncMessage::decode(&reply.expect("a SyncStep2")).unwrap();
    assert!(matches!(reply, SyncMessage::SyncStep2 { .. }));
    let answer = docs
        .handle_sync_message(Instant::now(), &9, Access::Edit, NOTES, &reply)
        .unwrap();
    assert!(answer.is_none());
    assert!(text(&docs).contains("from yjs"));
    assert!(!page_text.contains("from yrs"));

    // The page asks the store.
    let ask = SyncMessage::decode(&page.step1()).unwrap();
    let reply = docs
        .handle_sync_message(Instant::now(), &9, Access::Edit, NOTES, &ask)
        .unwrap()
        .expect("a SyncStep1 is answered");
    let (none, page_text) = page.sync(&reply.encode());
    assert!(none.is_none());

    assert_eq!(page_text, text(&docs));
    for part in ["[js]", "[rs]", "from yjs", "from yrs", "shared: "] {
        assert!(page_text.contains(part), "{page_text:?} lacks {part:?}");
    }
    // Once in sync, each answers the other's state vector with nothing new.
    let (reply, _) = page.sync(
        &SyncMessage::SyncStep1 {
            state_vector: docs.state_vector(NOTES).unwrap(),
        }
        .encode(),
    );
    let SyncMessage::SyncStep2 { update } = SyncMessage::decode(&reply.unwrap()).unwrap() else {
        panic!("a SyncStep2");
    };
    let applied = docs
        .handle_sync_step2(Access::Edit, NOTES, &update)
        .unwrap();
    assert!(!applied.changed);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Hex as the peer writes it (`_` for nothing).
fn unhex(text: &str) -> Vec<u8> {
    let text = if text == "_" { "" } else { text };
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex from the peer"))
        .collect()
}

fn utf8(hex_text: &str) -> String {
    String::from_utf8(unhex(hex_text)).expect("UTF-8 from the peer")
}
