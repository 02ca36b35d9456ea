// The page of a Chroom node. It talks to its own node only, over /api/ws (JSON messages tagged
// by `type`); the node checks everything against the registry and the room's peers.

import { Note } from "/notes.js";
import { Program } from "/program.js";

const $ = (id) => document.getElementById(id);

// The document a page opens first in a room.
const FIRST_NOTE = "notes";

const state = {
  socket: null,
  self: null, // { peerId, account }
  room: null,
  visit: 0, // counts joins and leaves: work begun for an earlier one is dropped
  kind: null, // "conference", "audio_space" or "broadcast"
  role: null, // this node's role in the room, from the registry
  live: false, // broadcasting this page's camera and microphone to a broadcast room
  guest: false, // on a broadcast's stage: in the broadcaster's studio
  program: null, // live with guests on stage: what the audience gets (program.js)
  participants: [],
  local: null, // this page's camera and microphone (MediaStream)
  publishPc: null, // the RTCPeerConnection sending them to the node
  playbackPc: null, // the RTCPeerConnection the node shows the others on
  playbackPrepared: false, // asked the node for a playback link that outlives rooms
  removed: false, // a host put this page out of its room, and the user has not acted since
  slots: [], // per slot: { audioMid, videoMid }
  slotPeers: [], // per slot: the PeerId shown, or null
  tracks: new Map(), // mid -> MediaStreamTrack
  screenMid: null, // the playback m-line showing a member's shared screen
  screenPeer: null, // whose screen it shows, or null
  screen: null, // this page's shared screen (MediaStream)
  screenPc: null, // the RTCPeerConnection sending it to the node
  files: new Map(), // hash -> the node's latest word on a shared file
  walletAccount: null, // the account the browser wallet offered, while signing in
  note: null, // the shared document open in the Notes panel (a Note)
};

function short(text) {
  if (!text) return "";
  return text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-4)}` : text;
}

// A member's name as pages show it: the name its user set (its node checks it is no address)
// beside the account its binding proves, so a name never passes for another account.
function displayName(p) {
  const id = p.account ? short(p.account) : `node ${short(p.peer_id)}`;
  return p.display_name ? `${p.display_name} · ${id}` : id;
}

function showError(message) {
  const banner = $("error");
  banner.textContent = message;
  banner.hidden = !message;
}

function send(message) {
  if (state.socket?.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(message));
  }
}

function roomFromLocation() {
  const match = location.pathname.match(/^\/r\/(.+)$/);
  if (match) return decodeURIComponent(match[1]);
  return new URLSearchParams(location.search).get("room");
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`;
  const socket = new WebSocket(url);
  state.socket = socket;
  socket.addEventListener("open", () => {
    const name = localStorage.getItem("chroom.name");
    if (name) send({ type: "set_name", name });
    const room = roomFromLocation();
    if (room) {
      join(room);
    } else {
      // In the lobby: have the link that shows the others set up while the user picks a
      // room, so joining waits only for the members' media. It outlives rooms (but audio
      // spaces, which get a link without video).
      state.playbackPrepared = true;
      send({ type: "prepare_playback" });
    }
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    handle(message);
  });
  socket.addEventListener("close", () => {
    $("who").textContent = "disconnected from the node: retrying…";
    state.socket = null;
    setTimeout(connect, 1000);
  });
}

/** What the node says is wrong in the room (the registry not answering, say), above the call. */
function renderNotices(notices) {
  const box = $("notices");
  box.replaceChildren(...notices.map((text) => {
    const line = document.createElement("p");
    line.textContent = text;
    return line;
  }));
  box.hidden = notices.length === 0;
}

function handle(message) {
  switch (message.type) {
    case "hello": {
      state.self = { peerId: message.peer_id, account: message.account, walletUntil: message.wallet_until_unix ?? null };
      const until = state.self.walletUntil
        ? ` · signed by your wallet until ${new Date(state.self.walletUntil * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`
        : "";
      $("who").textContent = message.account ? `acting as ${message.account}${until}` : `node ${short(message.peer_id)} (no account)`;
      $("wallet-button").hidden = !window.ethereum || Boolean(state.room);
      scheduleRenewal(state.self.walletUntil);
      break;
    }
    case "sign_in_text":
      signBinding(message);
      break;
    case "joined":
      state.visit += 1;
      showError("");
      // Joined again (going live or back to watching): what was sent before has stopped.
      stopPublishing();
      enterCall(message);
      if (message.may_publish) startPublishing(message.kind === "audio_space");
      $("share-screen").hidden = !message.may_publish || message.kind !== "conference";
      // Viewers of a broadcast raise hands too: a host may bring them on stage.
      $("raise-hand").hidden = Boolean(message.live);
      // Webinars and audio spaces: ask the hosts, apart from the chat.
      $("ask-hosts").hidden = message.kind === "conference";
      // Joined again (on stage, say): what the page may do with the document may differ.
      openNote(state.note?.name ?? FIRST_NOTE);
      break;
    case "doc":
      if (message.room === state.room && message.name === state.note?.name) {
        state.note.load(message.state, message.editable);
        renderNoteList(message.names);
        $("note-status").textContent = message.editable
          ? ""
          : "Read only: your role in this room lets you read along.";
      }
      break;
    case "doc_update":
      if (message.room !== state.room) break;
      if (message.name === state.note?.name) state.note.apply(message.update);
      else renderNoteList([message.name]);
      break;
    case "doc_cursor":
      if (message.room === state.room && message.name === state.note?.name) {
        state.note.caret(message.peer_id, message.anchor, message.head);
      }
      break;
    case "doc_refused":
      if (message.name === state.note?.name) state.note.refused();
      showError(`Your edit of “${message.name}” was not taken: ${message.message}`);
      break;
    case "playback_offer":
      startPlayback(message).catch((e) => showError(`cannot show the others: ${e.message}`));
      break;
    case "slots":
      state.slotPeers = message.peers;
      state.screenPeer = message.screen ?? null;
      renderGrid();
      break;
    case "publish_answer":
      state.publishPc?.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch((e) => {
        showError(`the node's answer was refused: ${e.message}`);
      });
      break;
    case "screen_refused":
      // Someone else presents (this page is in line now), or a host must let it: stop the
      // capture the page started.
      stopScreenShare({ tellNode: false });
      showError(message.message);
      break;
    case "program_answer":
      state.program?.pc?.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch((e) => {
        showError(`the node's answer to the program was refused: ${e.message}`);
      });
      break;
    case "screen_answer":
      state.screenPc?.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch((e) => {
        showError(`the node's answer to the screen share was refused: ${e.message}`);
      });
      break;
    case "left":
      leaveCall();
      break;
    case "participants": {
      state.participants = message.participants;
      renderParticipants();
      state.note?.keepCarets(new Set(state.participants.map((p) => p.peer_id)));
      // Invited on stage (or taken off it): take part again the new way, which the node
      // decides from the stage (speaking, or listening only).
      const onStage = Boolean(state.participants.find((p) => p.is_self)?.on_stage);
      const stages = state.kind === "audio_space" || (state.kind === "broadcast" && !state.live);
      if (stages && state.room && onStage !== state.onStage) {
        if (state.onStage !== undefined) send({ type: "join", room: state.room });
        state.onStage = onStage;
      }
      break;
    }
    case "notices":
      renderNotices(message.notices);
      break;
    case "chat":
      addChat(message);
      break;
    case "file":
      state.files.set(message.hash, message);
      renderFile(message);
      break;
    case "moderated":
      moderated(message);
      break;
    case "error":
      // Put out of the room by a host: what the page asked of that call just before (its
      // media, its playback answer) is refused now, and must not hide why it is out.
      if (state.removed) {
        console.warn(`after the removal: ${message.message}`);
        break;
      }
      showError(message.message);
      break;
  }
}

// Opens a shared document of the room in the Notes panel; the node sends its state.
function openNote(name) {
  state.note?.close();
  state.note = new Note(name, $("note-text"), {
    send: (update) => send({ type: "edit_doc", name, update }),
    sendCaret: (anchor, head) => send({ type: "doc_cursor", name, anchor, head }),
    showCarets,
  });
  renderNoteList([name]);
  send({ type: "open_doc", name });
}

// A member's colour in the notes: the same on every page.
function caretColor(peerId) {
  let hash = 0;
  for (const c of peerId) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 80% 62%)`;
}

// Who edits the open note, and their carets drawn over the text (a copy of the text laid
// out as the textarea lays it out, transparent but for the carets).
function showCarets(carets) {
  const people = new Map(state.participants.map((p) => [p.peer_id, p]));
  $("note-editors").replaceChildren(
    ...carets.map(({ peerId, line }) => {
      const item = document.createElement("li");
      const who = people.get(peerId);
      item.style.setProperty("--caret", caretColor(peerId));
      item.textContent = `${who ? displayName(who) : `node ${short(peerId)}`} · line ${line}`;
      return item;
    }),
  );
  const area = $("note-text");
  const text = area.value;
  const parts = [];
  let from = 0;
  for (const { peerId, index } of [...carets].sort((a, b) => a.index - b.index)) {
    parts.push(document.createTextNode(text.slice(from, index)));
    const mark = document.createElement("span");
    mark.className = "caret";
    mark.style.setProperty("--caret", caretColor(peerId));
    parts.push(mark);
    from = index;
  }
  parts.push(document.createTextNode(`${text.slice(from)}\n`));
  $("note-carets").replaceChildren(...parts);
  $("note-carets").scrollTop = area.scrollTop;
}

// Adds `names` to the list of the room's documents, the open one selected.
function renderNoteList(names) {
  const select = $("note-select");
  const known = new Set([...select.options].map((o) => o.value));
  for (const name of names) {
    if (known.has(name)) continue;
    known.add(name);
    const option = document.createElement("option");
    option.value = option.textContent = name;
    select.append(option);
  }
  if (state.note) select.value = state.note.name;
}

function join(room) {
  state.removed = false;
  showError("");
  $("room-input").value = room;
  $("join-button").disabled = true;
  send({ type: "join", room });
  setTimeout(() => ($("join-button").disabled = false), 1000);
}

function enterCall({ room, kind, role, may_publish, live, may_go_live }) {
  state.room = room;
  state.kind = kind ?? null;
  state.role = role ?? null;
  state.live = Boolean(live);
  // On a broadcast's stage: in the broadcaster's studio, seen and heard by it.
  state.guest = kind === "broadcast" && may_publish && !live;
  $("go-live").hidden = !may_go_live || state.guest;
  $("go-live").textContent = state.live ? "End live" : "Go live";
  document.body.dataset.kind = state.kind ?? "";
  $("room-title").textContent = room;
  $("room-kind").textContent = kind ? kind.replace("_", " ") : "";
  $("my-role").textContent = role ?? "";
  $("messages").replaceChildren();
  $("lobby").hidden = true;
  $("call").hidden = false;
  $("wallet-button").hidden = true;
  const path = `/r/${encodeURIComponent(room)}`;
  if (location.pathname !== path) history.replaceState(null, "", path);
  $("chat-input").focus();
}

// Sends the camera and microphone to this page's own node, which sends them on to the room.
async function startPublishing(audioOnly) {
  const visit = state.visit;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: audioOnly ? false : { width: 640, height: 360, frameRate: 30 },
    });
    // Out of the room while the camera started (a host removed this page's node, say), or
    // in it another way (back to watching): nothing to send, and the node's refusal would
    // hide why.
    if (state.visit !== visit) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    state.local = stream;
    $("toggle-mic").hidden = stream.getAudioTracks().length === 0;
    $("toggle-camera").hidden = stream.getVideoTracks().length === 0;
    renderGrid();
    const pc = new RTCPeerConnection();
    state.publishPc = pc;
    for (const track of stream.getTracks()) {
      addSendTransceiver(pc, track, stream, track.kind === "video" ? cameraLayers(track) : undefined);
    }
    // No waiting for ICE gathering: the node offers its own addresses and takes this
    // browser's from its first connectivity check (its host addresses are mDNS names the
    // node could not use anyway), which saves the gathering time on every join.
    await pc.setLocalDescription(await pc.createOffer());
    if (state.visit !== visit) return;
    send({ type: "publish", sdp: pc.localDescription.sdp });
  } catch (error) {
    showError(`camera or microphone unavailable: ${error.message}`);
  }
}

// The camera goes to the node as simulcast layers, lowest first, named as the node expects
// (quarter, half and full size). The node sends each member the largest layer its link to
// that member carries; three temporal layers (L1T3) let it halve or quarter a layer's frame
// rate at once while it waits for a smaller layer's keyframe. libwebrtc drops the top layers
// of a camera too small for them (two layers below 960×540, one below 480×270), so a smaller
// camera sends fewer layers: its own size and the ones below.
const CAMERA_LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4 },
  { rid: "h", scaleResolutionDownBy: 2 },
  { rid: "f", scaleResolutionDownBy: 1 },
];
// A layer's bitrate cap: 0.08 bits per pixel per frame at 30 fps (VP8 at a good quality for
// a face; 550 kbit/s at 640×360, 2.2 Mbit/s at 1280×720), and at least 50 kbit/s.
const BITS_PER_PIXEL = 0.08;

function cameraLayers(track) {
  const { width = 0, height = 0 } = track.getSettings();
  const layers = height >= 540 ? CAMERA_LAYERS : height >= 270 ? CAMERA_LAYERS.slice(1) : [];
  if (layers.length === 0) return undefined;
  return layers.map((layer) => {
    const pixels = (width / layer.scaleResolutionDownBy) * (height / layer.scaleResolutionDownBy);
    return { ...layer, maxBitrate: Math.max(50_000, Math.round(pixels * 30 * BITS_PER_PIXEL)) };
  });
}

// Adds a send-only transceiver for `track`, with simulcast `layers` if given. Temporal layers
// are asked for where the browser takes `scalabilityMode`, and left out where it does not.
function addSendTransceiver(pc, track, stream, layers) {
  if (!layers) return pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  const temporal = layers.map((layer) => ({ ...layer, scalabilityMode: "L1T3" }));
  try {
    return pc.addTransceiver(track, { direction: "sendonly", streams: [stream], sendEncodings: temporal });
  } catch {
    return pc.addTransceiver(track, { direction: "sendonly", streams: [stream], sendEncodings: layers });
  }
}

// Shares a screen or window with the room: a second link to the node, video only. The
// browser's own "stop sharing" ends it too.
async function startScreenShare() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  } catch (error) {
    if (error.name !== "NotAllowedError") showError(`cannot share the screen: ${error.message}`);
    return;
  }
  const [track] = stream.getVideoTracks();
  // Text must stay legible: lower the frame rate, never the resolution.
  track.contentHint = "detail";
  track.addEventListener("ended", () => stopScreenShare());
  state.screen = stream;
  const pc = new RTCPeerConnection();
  state.screenPc = pc;
  pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  setPressed($("share-screen"), true, "Stop sharing");
  renderGrid();
  try {
    // No waiting for ICE gathering: the node offers its own addresses and takes this
    // browser's from its first connectivity check (its host addresses are mDNS names the
    // node could not use anyway), which saves the gathering time on every join.
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "share_screen", sdp: pc.localDescription.sdp });
  } catch (error) {
    showError(`cannot share the screen: ${error.message}`);
    stopScreenShare();
  }
}

// Stops sharing; tells the node unless the call is over anyway.
function stopScreenShare({ tellNode = true } = {}) {
  if (!state.screen) return;
  state.screenPc?.close();
  state.screenPc = null;
  state.screen.getTracks().forEach((track) => track.stop());
  state.screen = null;
  if (tellNode) send({ type: "stop_screen" });
  setPressed($("share-screen"), false, "Share screen");
  renderGrid();
}

function setPressed(button, pressed, label) {
  button.setAttribute("aria-pressed", String(pressed));
  button.textContent = label;
}

// Sign-in with a browser wallet (EIP-1193): the wallet signs the node's binding text, and the
// node acts for the wallet's account from then on.
async function signInWithWallet() {
  try {
    const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
    state.walletAccount = account;
    send({ type: "sign_in_text" });
  } catch (error) {
    showError(`the wallet did not connect: ${error.message}`);
  }
}

// A wallet's signature lasts WALLET_BINDING_TTL (12 h): an hour before it ends, the wallet is
// asked again (the node takes a renewal for the same account while in a room).
let renewal = null;
function scheduleRenewal(until) {
  clearTimeout(renewal);
  if (!until || !window.ethereum || !state.walletAccount) return;
  const wait = Math.max(0, (until - 3600) * 1000 - Date.now());
  renewal = setTimeout(() => send({ type: "sign_in_text" }), wait);
}

async function signBinding({ text, expires_at_unix }) {
  const account = state.walletAccount;
  if (!account) return;
  const hex = `0x${[...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  try {
    const signature = await window.ethereum.request({ method: "personal_sign", params: [hex, account] });
    send({ type: "sign_in", account, expires_at_unix, signature });
  } catch (error) {
    showError(`the wallet did not sign: ${error.message}`);
  }
}

// The node offers one audio and one video m-line per slot; each slot shows one member.
async function startPlayback({ offer, sdp, slots, screen_mid }) {
  state.playbackPc?.close();
  state.tracks.clear();
  state.slots = slots.map((s) => ({ audioMid: s.audio_mid, videoMid: s.video_mid ?? null }));
  state.screenMid = screen_mid ?? null;
  state.screenPeer = null;
  const pc = new RTCPeerConnection();
  state.playbackPc = pc;
  pc.addEventListener("track", (event) => {
    state.tracks.set(event.transceiver.mid, event.track);
    renderGrid();
  });
  try {
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
  } catch (error) {
    // A newer offer replaced this one while it was set up (it is closed): nothing to say.
    if (state.playbackPc !== pc) return;
    throw error;
  }
  if (state.playbackPc !== pc) return;
  send({ type: "playback_answer", offer, sdp: pc.localDescription.sdp });
}

// A member whose video stopped while its audio goes on is on a poor connection: a node on the
// way paused the video because the link carries no layer of it (its own uplink, or this
// node's downlink). Its tile says so until frames come again.
const POOR_AFTER_MS = 1500;
const lastDecoded = new Map(); // peer -> { frames, packets, since }

async function markPoorConnections() {
  const pc = state.playbackPc;
  if (!pc) return;
  const stats = await pc.getStats();
  const byMid = new Map();
  stats.forEach((r) => {
    if (r.type === "inbound-rtp" && r.mid != null) byMid.set(r.mid, r);
  });
  const now = Date.now();
  state.slotPeers.forEach((peer, slot) => {
    const mids = state.slots[slot];
    if (!peer || !mids?.videoMid) return;
    const frames = byMid.get(mids.videoMid)?.framesDecoded ?? 0;
    const packets = byMid.get(mids.audioMid)?.packetsReceived ?? 0;
    const last = lastDecoded.get(peer);
    const stalled = last !== undefined && frames === last.frames;
    const since = stalled ? last.since : now;
    lastDecoded.set(peer, { frames, packets, since });
    const audioGoesOn = last !== undefined && packets > last.packets;
    const poor = frames > 0 && stalled && audioGoesOn && now - since >= POOR_AFTER_MS;
    $("grid").querySelector(`[data-peer="${CSS.escape(peer)}"]`)?.classList.toggle("poor-connection", poor);
  });
}

// The active speaker: the loudest member heard (its decoded audio level), held at least
// SPEAKER_HOLD_MS so the highlight does not flicker between two people talking at once. Its
// tile and its line in the participant list are highlighted.
const SPEAKING_LEVEL = 0.05; // about -26 dBov
const SPEAKER_HOLD_MS = 800;
let speakerSince = 0;
state.activeSpeaker = null;
state.speakersSeen = new Set();

async function markActiveSpeaker() {
  const pc = state.playbackPc;
  if (!pc) return;
  const levels = new Map();
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio" && r.mid != null) levels.set(r.mid, r.audioLevel ?? 0);
  });
  let loudest = null;
  let loudestLevel = SPEAKING_LEVEL;
  state.slotPeers.forEach((peer, slot) => {
    const level = levels.get(state.slots[slot]?.audioMid) ?? 0;
    if (peer && level > loudestLevel) {
      loudest = peer;
      loudestLevel = level;
    }
  });
  const now = Date.now();
  if (loudest !== state.activeSpeaker && now - speakerSince >= SPEAKER_HOLD_MS) {
    state.activeSpeaker = loudest;
    speakerSince = now;
    if (loudest) state.speakersSeen.add(loudest);
  }
  document.querySelectorAll("#grid .tile, #participants li").forEach((element) => {
    element.classList.toggle("speaking", state.activeSpeaker !== null && element.dataset.peer === state.activeSpeaker);
  });
}

// Tells the node how tall each member's camera is shown, in device pixels, so each member's
// node sends no taller layer than that needs (a small tile gets a small layer). A tile covers
// its box, cropping the picture: a box wider than 16:9 needs the picture as tall as its width
// makes it. Sent when a size moves by a quarter or more.
let sentHeights = { room: null, heights: new Map() };

function reportVideoSizes() {
  if (!state.room) return;
  if (sentHeights.room !== state.room) sentHeights = { room: state.room, heights: new Map() };
  const sizes = [];
  for (const video of $("grid").querySelectorAll("video[data-slot]")) {
    const peer = state.slotPeers[Number(video.dataset.slot)];
    if (!peer) continue;
    const shown = Math.max(video.clientHeight, (video.clientWidth * 9) / 16);
    const height = Math.round(shown * devicePixelRatio);
    const last = sentHeights.heights.get(peer);
    if (height > 0 && (last === undefined || Math.abs(height - last) >= last / 4)) {
      sizes.push({ peer_id: peer, height });
      sentHeights.heights.set(peer, height);
    }
  }
  if (sizes.length > 0) send({ type: "video_sizes", sizes });
}

// The tracks showing `peerId`, if a slot shows it.
function remoteTracks(peerId) {
  const slot = state.slotPeers.indexOf(peerId);
  if (slot < 0 || !state.slots[slot]) return null;
  const { audioMid, videoMid } = state.slots[slot];
  const tracks = [state.tracks.get(videoMid), state.tracks.get(audioMid)].filter(Boolean);
  return tracks.length ? { slot, tracks } : null;
}

function stopPlayback() {
  state.playbackPc?.close();
  state.playbackPc = null;
  state.tracks.clear();
  state.slotPeers = [];
  state.screenPeer = null;
}

// Mutes or unmutes the page's tracks of `kind`: a disabled track sends silence or black, so
// the links stay up and unmuting is instant.
function toggle(kind, button, [onLabel, offLabel]) {
  const tracks = kind === "audio" ? state.local?.getAudioTracks() : state.local?.getVideoTracks();
  if (!tracks?.length) return;
  const enabled = !tracks[0].enabled;
  tracks.forEach((track) => (track.enabled = enabled));
  setPressed(button, !enabled, enabled ? onLabel : offLabel);
}

function stopPublishing() {
  stopScreenShare({ tellNode: false });
  stopProgram({ tellNode: false });
  $("toggle-mic").hidden = true;
  $("toggle-camera").hidden = true;
  $("share-screen").hidden = true;
  state.publishPc?.close();
  state.publishPc = null;
  state.local?.getTracks().forEach((track) => track.stop());
  state.local = null;
}

function leaveCall() {
  state.visit += 1;
  stopPublishing();
  state.onStage = undefined;
  // The node keeps a prepared playback link that shows video; it closes any other.
  if (state.playbackPrepared && state.kind !== "audio_space") {
    state.slotPeers = [];
    state.screenPeer = null;
  } else {
    stopPlayback();
  }
  state.room = null;
  state.note?.close();
  state.note = null;
  $("note-text").value = "";
  $("note-select").replaceChildren();
  state.participants = [];
  renderParticipants();
  renderNotices([]);
  $("messages").replaceChildren();
  state.files.clear();
  $("call").hidden = true;
  $("lobby").hidden = false;
  $("wallet-button").hidden = !window.ethereum;
  history.replaceState(null, "", "/");
}

function renderParticipants() {
  const list = $("participants");
  // Whoever hosts now: by an on-chain role, or as the acting host the room's policy names
  // while no on-chain host is present (every node computes the same).
  const hosting = Boolean(state.participants.find((p) => p.is_self)?.hosting);
  list.replaceChildren(
    ...state.participants.map((p) => {
      const item = document.createElement("li");
      item.dataset.peer = p.peer_id;
      item.classList.toggle("muted-by-host", p.muted_by_host);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = displayName(p) + (p.is_self ? " (you)" : "") + (p.muted_by_host ? " · muted by a host" : "");
      name.title = p.account ?? p.peer_id;
      const role = document.createElement("span");
      role.className = "role";
      role.textContent = p.acting_host ? "host (acting)" : (p.role ?? "");
      item.classList.toggle("hosting", p.hosting);
      item.append(name, role);
      // Raised hands in the order every node shows them; who is on stage or presents.
      const marks = document.createElement("span");
      marks.className = "marks";
      marks.textContent = [
        p.hand != null ? `✋ ${p.hand + 1}` : "",
        p.asking_to_present ? "asks to present" : "",
        p.on_stage ? "on stage" : "",
        p.presenting ? "presenting" : "",
      ].filter(Boolean).join(" · ");
      item.append(marks);
      // Hosts ask; every node checks the registry before it mutes or removes anyone.
      if (hosting && !p.is_self) {
        const actions = document.createElement("span");
        actions.className = "host-actions";
        const mute = document.createElement("button");
        mute.type = "button";
        mute.className = "ghost small";
        mute.dataset.action = p.muted_by_host ? "unmute" : "mute";
        mute.textContent = p.muted_by_host ? "Unmute" : "Mute";
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "ghost small danger-text";
        remove.dataset.action = "remove";
        remove.textContent = "Remove";
        for (const button of [mute, remove]) {
          button.addEventListener("click", () =>
            send({ type: "moderate", peer_id: p.peer_id, action: button.dataset.action }),
          );
        }
        actions.append(mute, remove);
        const cue = (label, kind) => {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "ghost small";
          button.dataset.cue = kind;
          button.textContent = label;
          button.addEventListener("click", () => send({ type: "cue", cue: kind, peer_id: p.peer_id }));
          actions.append(button);
        };
        if (p.hand != null) {
          cue("Invite on stage", "invite_to_stage");
          cue("Lower hand", "lower_hand");
        }
        if (p.on_stage) cue("Off stage", "remove_from_stage");
        if (p.asking_to_present) cue("Let present", "pass_presentation");
        item.append(actions);
      }
      return item;
    }),
  );
  $("participant-count").textContent = String(state.participants.length);
  const self = state.participants.find((p) => p.is_self);
  setPressed($("raise-hand"), self?.hand != null, self?.hand != null ? "Lower hand" : "Raise hand");
  // The presentation went to someone else: stop sharing. Waiting for a turn: say so.
  if (state.screen && self && !self.presenting && state.wasPresenting) stopScreenShare();
  state.wasPresenting = Boolean(self?.presenting);
  if (!state.screen) {
    setPressed($("share-screen"), Boolean(self?.asking_to_present), self?.asking_to_present ? "In line to present" : "Share screen");
  }
  const mic = $("toggle-mic");
  mic.disabled = Boolean(self?.muted_by_host);
  mic.title = self?.muted_by_host ? "A host muted you: your node does not send your microphone" : "";
  renderGrid();
}

// A host's decision, as a line in the chat; removal from the room ends the call here.
function moderated({ peer_id, account, action, by_peer_id, by_account, is_self }) {
  const host = by_account ? short(by_account) : `node ${short(by_peer_id)}`;
  const who = is_self ? "you" : displayName({ peer_id, account });
  const done = { mute: "muted", unmute: "unmuted", remove: "removed" }[action] ?? action;
  const item = document.createElement("li");
  item.className = "notice";
  item.textContent = `${host} ${done} ${who}`;
  $("messages").append(item);
  if (is_self && action === "remove") {
    const room = state.room;
    leaveCall();
    state.removed = true;
    showError(`A host (${host}) removed you from ${room}.`);
  }
}

const SPEAKING_ROLES = ["speaker", "host", "admin", "owner"];

function renderGrid() {
  const grid = $("grid");
  const audioSpace = state.kind === "audio_space";
  const broadcast = state.kind === "broadcast";
  let people = state.participants;
  if (audioSpace) {
    people = [...people].sort((a, b) => SPEAKING_ROLES.includes(b.role) - SPEAKING_ROLES.includes(a.role));
    const speakers = people.filter((p) => SPEAKING_ROLES.includes(p.role)).length;
    $("audience").textContent = `${speakers} speaking · ${people.length - speakers} listening`;
  }
  if (broadcast) {
    // Shown: whoever broadcasts, and in the studio the guests on stage with them; everyone
    // else watches.
    people = people.filter((p) => (p.is_self ? state.live || state.guest : remoteTracks(p.peer_id)));
    const watching = state.participants.length - people.length;
    $("audience").textContent = state.guest
      ? "on stage · the broadcaster sees and hears you"
      : people.length ? `live · ${watching} watching` : "waiting for the broadcast to start";
  }
  $("audience").hidden = !audioSpace && !broadcast;
  const tiles = people.map((p) => {
    let tile = grid.querySelector(`[data-peer="${CSS.escape(p.peer_id)}"]`);
    if (!tile) {
      tile = document.createElement("div");
      tile.className = "tile";
      tile.dataset.peer = p.peer_id;
      const avatar = document.createElement("div");
      avatar.className = "avatar";
      avatar.textContent = (p.account ?? p.peer_id).slice(-2).toUpperCase();
      const label = document.createElement("div");
      label.className = "label";
      tile.append(avatar, label);
    }
    tile.querySelector(".label").textContent = displayName(p) + (p.is_self ? " (you)" : "");
    tile.dataset.role = p.role ?? "";
    tile.classList.toggle("listener", audioSpace && !SPEAKING_ROLES.includes(p.role));
    if (p.is_self && state.local) {
      showVideo(tile, state.local, { local: true });
    } else if (!p.is_self) {
      const remote = remoteTracks(p.peer_id);
      if (remote) {
        showVideo(tile, new MediaStream(remote.tracks), { slot: remote.slot });
      }
    }
    return tile;
  });
  grid.replaceChildren(...tiles);
  grid.dataset.count = String(tiles.length);
  renderPresentation();
  updateProgram();
}

// Live with guests on stage, the audience gets a program: this page's camera and its guests'
// in one picture, their sounds mixed (program.js). Without guests, the page's own tracks.
function updateProgram() {
  const guests = state.live ? state.slotPeers.filter(Boolean).map(remoteTracks).filter(Boolean) : [];
  if (guests.length === 0 || !state.local) {
    stopProgram();
    return;
  }
  const own = { video: state.local.getVideoTracks()[0], audio: state.local.getAudioTracks()[0] };
  const members = [own, ...guests.map(({ tracks }) => ({
    video: tracks.find((t) => t.kind === "video"),
    audio: tracks.find((t) => t.kind === "audio"),
  }))];
  if (!state.program) startProgram();
  state.program.show(members);
}

function startProgram() {
  const program = new Program();
  state.program = program;
  const pc = new RTCPeerConnection();
  program.pc = pc;
  for (const track of program.tracks()) pc.addTransceiver(track, { direction: "sendonly" });
  // The audience sees a layout: short of bandwidth, the frame rate gives way, not the size.
  const video = pc.getSenders().find((sender) => sender.track?.kind === "video");
  const parameters = video.getParameters();
  video.setParameters({ ...parameters, degradationPreference: "maintain-resolution" }).catch(() => {});
  pc.createOffer()
    .then((offer) => pc.setLocalDescription(offer))
    .then(() => {
      if (state.program === program) send({ type: "program", sdp: pc.localDescription.sdp });
    })
    .catch((error) => showError(`cannot send the program: ${error.message}`));
}

// Ends the program; tells the node unless the broadcast is over anyway.
function stopProgram({ tellNode = true } = {}) {
  if (!state.program) return;
  state.program.close();
  state.program = null;
  if (tellNode) send({ type: "stop_program" });
}

// A shared screen takes the stage: another member's if one is shown, else this page's own.
function renderPresentation() {
  const remote = state.screenPeer && state.tracks.get(state.screenMid);
  const stream = remote ? new MediaStream([remote]) : state.screen;
  const figure = $("presentation");
  const video = $("presentation-video");
  figure.hidden = !stream;
  $("call").querySelector(".stage").classList.toggle("presenting", Boolean(stream));
  if (!stream) {
    video.srcObject = null;
    delete video.dataset.tracks;
    delete figure.dataset.peer;
    return;
  }
  const presenter = remote ? state.participants.find((p) => p.peer_id === state.screenPeer) : null;
  $("presentation-label").textContent = remote
    ? `${presenter ? displayName(presenter) : `node ${short(state.screenPeer)}`} is presenting`
    : "You are presenting";
  figure.dataset.peer = remote ? state.screenPeer : (state.self?.peerId ?? "");
  const key = stream.getTracks().map((t) => t.id).join(",");
  if (video.dataset.tracks !== key) {
    video.dataset.tracks = key;
    video.srcObject = stream;
  }
}

// Puts `stream` in the tile's video element (made once; replaced when the stream changes), or
// for a stream without video (audio-only rooms) in an audio element beside the avatar.
function showVideo(tile, stream, { local = false, slot = null } = {}) {
  const key = stream.getTracks().map((t) => t.id).join(",");
  if (stream.getVideoTracks().length === 0) {
    if (local) return; // one's own microphone is never played back
    let audio = tile.querySelector("audio");
    if (audio?.dataset.tracks === key) return;
    if (!audio) {
      audio = document.createElement("audio");
      audio.autoplay = true;
      tile.append(audio);
    }
    if (slot !== null) audio.dataset.slot = String(slot);
    audio.dataset.tracks = key;
    audio.srcObject = stream;
    play(audio);
    return;
  }
  let video = tile.querySelector("video");
  if (video && video.dataset.tracks === key) return;
  if (!video) {
    video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    tile.prepend(video);
    tile.querySelector(".avatar")?.remove();
  }
  video.muted = local; // never play one's own microphone back
  video.classList.toggle("local", local);
  if (slot !== null) video.dataset.slot = String(slot);
  video.dataset.tracks = key;
  video.srcObject = stream;
  play(video);
}

// Browsers play sound only once the user has interacted with the page. A page opened by a link
// joins on its own, so its first sounds may be refused: one click then starts them all.
function play(element) {
  element.play().catch((error) => {
    if (error.name !== "NotAllowedError") return;
    if ($("sound-prompt").hidden) console.info("chroom: the browser holds sound back until a click");
    $("sound-prompt").hidden = false;
  });
}

// The "who · when" line above a chat line or a file.
function byline({ peer_id, account, sent_at_unix_ms, own }) {
  const from = document.createElement("span");
  from.className = "from";
  const time = new Date(sent_at_unix_ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  from.textContent = `${own ? "you" : account ? short(account) : `node ${short(peer_id)}`} · ${time}`;
  return from;
}

// A chat line, or a question to the hosts: those show on hosts' pages (and the asker's own),
// for a host to answer in the chat or to invite the asker on stage.
function addChat(line) {
  const hosting = Boolean(state.participants.find((p) => p.is_self)?.hosting);
  if (line.question && !hosting && !line.own) return;
  const item = document.createElement("li");
  if (line.own) item.classList.add("own");
  if (line.question) item.classList.add("question");
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = line.text;
  item.append(byline(line), body);
  const list = $("messages");
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function megabytes(bytes) {
  return bytes >= 100_000 ? `${(bytes / 1_000_000).toFixed(1)} MB` : `${Math.ceil(bytes / 1000)} kB`;
}

// A shared file in the chat: its progress while this node fetches it, a download link once
// the node holds it whole and checked against its hash. A file too large for the node to fetch
// by itself gets a button that asks it to; one that would not fit the node's file space says so.
function renderFile(file) {
  const list = $("messages");
  let item = list.querySelector(`li.file[data-hash="${file.hash}"]`);
  if (!item) {
    item = fileItem("file");
    item.dataset.hash = file.hash;
    item.prepend(byline(file));
    list.querySelector(`li.upload[data-name="${CSS.escape(file.name)}"]`)?.remove();
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }
  const fetching = file.fetch === "fetching";
  item.classList.toggle("own", file.own);
  item.classList.toggle("complete", file.complete);
  item.classList.toggle("on-request", file.fetch === "on_request");
  item.classList.toggle("refused", file.fetch === "refused");
  const name = item.querySelector(".name");
  if (file.complete) {
    const link = document.createElement("a");
    link.href = `/api/files/${file.hash}`;
    link.download = file.name;
    link.textContent = file.name;
    name.replaceChildren(link);
  } else {
    name.textContent = file.name;
  }
  const bar = item.querySelector("progress");
  bar.max = file.size;
  bar.value = file.received;
  bar.hidden = file.complete || !fetching;
  let button = item.querySelector("button.fetch");
  if (file.fetch === "on_request" && !file.complete) {
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "fetch";
      button.addEventListener("click", () => {
        button.disabled = true;
        send({ type: "fetch_file", hash: file.hash });
      });
      item.querySelector(".status").before(button);
    }
    button.disabled = false;
    button.textContent = `Download (${megabytes(file.size)})`;
  } else {
    button?.remove();
  }
  item.querySelector(".status").textContent = file.complete
    ? `${megabytes(file.size)} · checked (BLAKE3)${file.own ? " · shared with the room" : ""}`
    : file.fetch === "on_request"
      ? "larger than your node downloads by itself"
      : file.fetch === "refused"
        ? `${megabytes(file.size)} · ${file.problem}`
        : `${megabytes(file.received)} of ${megabytes(file.size)}${file.problem ? ` · ${file.problem}` : ""}`;
}

// A file's place in the chat: its name, a progress bar and a status line.
function fileItem(className) {
  const item = document.createElement("li");
  item.className = className;
  const name = document.createElement("span");
  name.className = "name";
  const bar = document.createElement("progress");
  const status = document.createElement("span");
  status.className = "status";
  item.append(name, bar, status);
  return item;
}

// Sends a file to this page's node, which shares it with the room; shows the upload's
// progress until the node announces the file.
function shareFile(file) {
  if (!state.room) return;
  const item = fileItem("file upload own");
  item.dataset.name = file.name;
  const [bar, status] = [item.querySelector("progress"), item.querySelector(".status")];
  item.querySelector(".name").textContent = file.name;
  bar.max = file.size;
  bar.value = 0;
  status.textContent = `sending ${megabytes(file.size)} to your node…`;
  $("messages").append(item);
  const query = new URLSearchParams({ room: state.room, name: file.name });
  const request = new XMLHttpRequest();
  request.open("POST", `/api/files?${query}`);
  request.upload.addEventListener("progress", (event) => {
    bar.value = event.loaded;
    status.textContent = `${megabytes(event.loaded)} of ${megabytes(file.size)} to your node`;
  });
  request.addEventListener("load", () => {
    if (request.status !== 200) {
      item.remove();
      showError(request.responseText || `sharing ${file.name} failed (${request.status})`);
    }
  });
  request.addEventListener("error", () => {
    item.remove();
    showError(`sharing ${file.name} failed: the node cannot be reached`);
  });
  request.send(file);
}

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name-input").value.trim();
  if (name !== (localStorage.getItem("chroom.name") ?? "")) {
    if (name) localStorage.setItem("chroom.name", name);
    else localStorage.removeItem("chroom.name");
    send({ type: "set_name", name });
  }
  const room = $("room-input").value.trim();
  if (room) join(room);
});
$("name-input").value = localStorage.getItem("chroom.name") ?? "";

$("ask-hosts").addEventListener("click", () => {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  send({ type: "ask", text });
  input.value = "";
});

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  send({ type: "chat", text });
  input.value = "";
});

$("note-select").addEventListener("change", (event) => openNote(event.target.value));
$("note-text").addEventListener("scroll", (event) => {
  $("note-carets").scrollTop = event.target.scrollTop;
});
$("new-note").addEventListener("click", () => {
  const name = prompt("Name of the new shared document (up to 64 characters)")?.trim();
  if (name) openNote(name.slice(0, 64));
});

$("file-input").addEventListener("change", (event) => {
  for (const file of event.target.files) shareFile(file);
  event.target.value = "";
});

$("wallet-button").addEventListener("click", signInWithWallet);
$("go-live").addEventListener("click", () => send({ type: "join", room: state.room, live: !state.live }));
$("sound-prompt").addEventListener("click", () => {
  $("sound-prompt").hidden = true;
  document.querySelectorAll("#call video, #call audio").forEach(play);
});

$("leave-button").addEventListener("click", () => send({ type: "leave" }));
$("toggle-mic").addEventListener("click", (e) => toggle("audio", e.currentTarget, ["Mute", "Unmute"]));
$("toggle-camera").addEventListener("click", (e) =>
  toggle("video", e.currentTarget, ["Stop video", "Start video"]),
);

// One member presents at a time: while another does, the button asks for a turn (or withdraws
// the ask) instead of capturing the screen.
$("share-screen").addEventListener("click", () => {
  const self = state.participants.find((p) => p.is_self);
  const presenter = state.participants.find((p) => p.presenting && !p.is_self);
  if (state.screen) stopScreenShare();
  else if (self?.asking_to_present) send({ type: "cue", cue: "stop_presenting" });
  else if (presenter) send({ type: "cue", cue: "present" });
  else startScreenShare();
});
$("raise-hand").addEventListener("click", () => {
  const self = state.participants.find((p) => p.is_self);
  send({ type: "cue", cue: self?.hand != null ? "lower_hand" : "raise_hand" });
});

$("copy-link").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(location.href);
  } catch {
    // Clipboard access needs a secure context or permission; the address bar has the link.
  }
});

connect();
setInterval(markPoorConnections, 500);
setInterval(markActiveSpeaker, 300);
setInterval(reportVideoSizes, 1000);

// For tests and the curious: the page's state, read-only by convention.
window.chroom = state;
