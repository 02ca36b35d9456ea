// The Notes panel's shared documents: a Yjs document per open note, bound to a textarea.
// Bundled with yjs into ../notes.js by scripts/page-bundle.sh (the node serves that file; the
// page fetches nothing from elsewhere). The node checks and relays every edit; this module
// only keeps the page's copy and the textarea in step.

import * as Y from "yjs";

// The shared text's name inside each document: the nodes' copies use the same (chroom-docs).
const TEXT_NAME = "text";

// Longest run of characters one edit carries: a Yjs update must fit one room message (12 KiB),
// and a character takes up to 3 bytes of UTF-8 (4 for a surrogate pair, which counts as 2).
const MAX_CHARS_PER_EDIT = 3000;

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// The change the user made turning `before` into `after`, with the caret at `caret` after
// it: where it starts, how much of `before` it removes, what it inserts. The text after the
// caret is kept whole first: a space typed beside another space (or any repeated letter) is
// placed where the caret put it, not at the first place the two texts differ, so it follows
// the user's own last key and not a neighbour another member wrote.
function difference(before, after, caret) {
  const shorter = Math.min(before.length, after.length);
  let end = 0;
  const endLimit = Math.min(shorter, after.length - caret);
  while (end < endLimit && before[before.length - 1 - end] === after[after.length - 1 - end]) {
    end++;
  }
  let start = 0;
  while (start < shorter - end && before[start] === after[start]) start++;
  return {
    at: start,
    removed: before.length - start - end,
    inserted: after.slice(start, after.length - end),
  };
}

// How often the page tells the others where its caret is, at most.
const CARET_TOLD_EVERY_MS = 250;

// A member whose caret was not heard of for this long is not shown editing any more.
const CARET_FORGOTTEN_MS = 60_000;

// One open document on the page. `send(update)` carries a local edit (base64) to the node;
// `sendCaret(anchor, head)` the page's selection (base64 relative positions); `showCarets`
// gets the other members' carets ([{ peerId, index, line }]) whenever they may have moved.
export class Note {
  constructor(name, textarea, { send, sendCaret, showCarets }) {
    this.name = name;
    this.textarea = textarea;
    this.send = send;
    this.sendCaret = sendCaret;
    this.showCarets = showCarets;
    this.carets = new Map(); // peerId -> { anchor, head, heard }
    this.caretTimer = null;
    this.onSelect = () => this.tellCaret();
    for (const kind of ["keyup", "mouseup", "select", "focus"]) {
      textarea.addEventListener(kind, this.onSelect);
    }
    this.doc = null;
    this.text = null;
    this.shown = "";
    this.discard = false;
    this.onInput = () => this.takeInput();
    textarea.addEventListener("input", this.onInput);
    // Nothing to edit until the node's copy arrives.
    textarea.readOnly = true;
    this.show("");
  }

  // The document as the node holds it (base64; empty for a new one). Edits the page made
  // meanwhile are kept: the node took them, though its copy may have been taken before. After
  // the node refused one of the page's edits (`refused`), the page starts over from its copy.
  load(state, editable) {
    if (!this.doc || this.discard) {
      this.doc?.destroy();
      this.doc = new Y.Doc();
      this.text = this.doc.getText(TEXT_NAME);
      this.doc.on("update", (update, origin) => {
        if (origin === this) this.send(toBase64(update));
      });
      this.discard = false;
    }
    this.textarea.readOnly = !editable;
    this.merge(state ? fromBase64(state) : null);
  }

  // A member's edit (base64), relayed by the node.
  apply(update) {
    if (this.doc) this.merge(fromBase64(update));
  }

  // The node refused an edit of the page: its next copy replaces the page's.
  refused() {
    this.discard = true;
  }

  // Applies `update` (if any) and shows the text with the caret and selection where they were
  // relative to the text around them. The caret keeps to the character before it, so what
  // another member types at the same spot lands after it and the user's own next key still
  // follows the user's last one: two people typing at one spot make two runs of text, not one
  // run of both their letters mixed.
  merge(update) {
    const area = this.textarea;
    const at = (index) =>
      Y.createRelativePositionFromTypeIndex(this.text, Math.min(index, this.text.length), -1);
    // Kept focused or not: a new value puts the caret at its end, and a page that gets its
    // focus back (or that Firefox's automation does not report focused) would type there.
    const selection = [at(area.selectionStart), at(area.selectionEnd)];
    if (update) Y.applyUpdate(this.doc, update, "node");
    this.show(this.text.toString());
    this.renderCarets();
    // Members' edits shown: for whoever watches the page (the benchmarks time keystrokes by it).
    this.textarea.dispatchEvent(new CustomEvent("members-edit"));
    const [from, to] = selection.map((p) => Y.createAbsolutePositionFromRelativePosition(p, this.doc));
    if (from && to) area.setSelectionRange(from.index, to.index);
  }

  value() {
    return this.text ? this.text.toString() : "";
  }

  // Another member's caret (base64 relative positions; both empty: it left the document).
  caret(peerId, anchor, head) {
    if (!anchor && !head) this.carets.delete(peerId);
    else {
      this.carets.set(peerId, {
        anchor: Y.decodeRelativePosition(fromBase64(anchor)),
        head: Y.decodeRelativePosition(fromBase64(head)),
        heard: Date.now(),
      });
    }
    this.renderCarets();
  }

  // Forgets the carets of members no longer in the room.
  keepCarets(peerIds) {
    for (const peerId of [...this.carets.keys()]) {
      if (!peerIds.has(peerId)) this.carets.delete(peerId);
    }
    this.renderCarets();
  }

  renderCarets() {
    if (!this.doc) return;
    const now = Date.now();
    const shown = [];
    for (const [peerId, caret] of this.carets) {
      if (now - caret.heard > CARET_FORGOTTEN_MS) continue;
      const at = Y.createAbsolutePositionFromRelativePosition(caret.head, this.doc);
      if (!at) continue;
      const line = this.shown.slice(0, at.index).split("\n").length;
      shown.push({ peerId, index: at.index, line });
    }
    this.showCarets(shown);
  }

  // Tells the others where the caret is now, at most every CARET_TOLD_EVERY_MS.
  tellCaret() {
    if (!this.doc || this.textarea.readOnly || this.caretTimer) return;
    this.caretTimer = setTimeout(() => {
      this.caretTimer = null;
      if (!this.doc) return;
      const area = this.textarea;
      const at = (index) =>
        toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(this.text, index, -1)));
      this.sendCaret(at(area.selectionStart), at(area.selectionEnd));
    }, CARET_TOLD_EVERY_MS);
  }

  close() {
    this.textarea.removeEventListener("input", this.onInput);
    for (const kind of ["keyup", "mouseup", "select", "focus"]) {
      this.textarea.removeEventListener(kind, this.onSelect);
    }
    clearTimeout(this.caretTimer);
    if (this.doc && !this.textarea.readOnly) this.sendCaret("", "");
    this.showCarets([]);
    this.doc?.destroy();
    this.doc = null;
  }

  // The user typed: the difference from what was shown becomes edits, each small enough for
  // one room message.
  takeInput() {
    if (!this.doc) return;
    const change = difference(this.shown, this.textarea.value, this.textarea.selectionEnd);
    this.shown = this.textarea.value;
    if (change.removed > 0) {
      this.doc.transact(() => this.text.delete(change.at, change.removed), this);
    }
    for (let i = 0; i < change.inserted.length; i += MAX_CHARS_PER_EDIT) {
      const chunk = change.inserted.slice(i, i + MAX_CHARS_PER_EDIT);
      this.doc.transact(() => this.text.insert(change.at + i, chunk), this);
    }
    this.renderCarets();
    this.tellCaret();
  }

  show(value) {
    this.shown = value;
    if (this.textarea.value !== value) this.textarea.value = value;
  }
}
