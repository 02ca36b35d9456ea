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

// One open document on the page. `send(update)` carries a local edit (base64) to the node.
export class Note {
  constructor(name, textarea, send) {
    this.name = name;
    this.textarea = textarea;
    this.send = send;
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
    const focused = document.activeElement === area;
    const at = (index) =>
      Y.createRelativePositionFromTypeIndex(this.text, Math.min(index, this.text.length), -1);
    const selection = focused ? [at(area.selectionStart), at(area.selectionEnd)] : null;
    if (update) Y.applyUpdate(this.doc, update, "node");
    this.show(this.text.toString());
    if (selection) {
      const [from, to] = selection.map((p) => Y.createAbsolutePositionFromRelativePosition(p, this.doc));
      if (from && to) area.setSelectionRange(from.index, to.index);
    }
  }

  value() {
    return this.text ? this.text.toString() : "";
  }

  close() {
    this.textarea.removeEventListener("input", this.onInput);
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
  }

  show(value) {
    this.shown = value;
    if (this.textarea.value !== value) this.textarea.value = value;
  }
}
