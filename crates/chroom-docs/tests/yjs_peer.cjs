// A page's side of a shared document, run by tests/yjs.rs: the npm `yjs` package holding one
// Y.Doc, driven one command per line on stdin, answering one line on stdout.
//
// usage: node yjs_peer.cjs WORKSPACE_ROOT CLIENT_ID
//
// Commands (binary data and text as hex, `_` when empty):
//   insert INDEX TEXT   -> ok UPDATE TEXT      the update is what the doc's 'update' event gave
//   delete INDEX LEN    -> ok UPDATE TEXT
//   apply UPDATE        -> ok TEXT             Y.applyUpdate
//   state               -> ok UPDATE TEXT      Y.encodeStateAsUpdate (the whole document)
//   step1               -> ok MESSAGE          y-protocols SyncStep1 of this doc
//   sync MESSAGE        -> ok REPLY|- TEXT     y-protocols readSyncMessage: a SyncStep1 is
//                                              answered with a SyncStep2, the others applied
// Errors answer `error MESSAGE`.
'use strict';

const path = require('node:path');
const readline = require('node:readline');
const { createRequire } = require('node:module');

const [root, clientId] = process.argv.slice(2);
// Resolve from the workspace's node_modules, as the page's bundler would.
const workspaceRequire = createRequire(path.join(root, 'package.json'));
const Y = workspaceRequire('yjs');
const encoding = workspaceRequire('lib0/encoding');
const decoding = workspaceRequire('lib0/decoding');

// y-protocols/sync.js and y-websocket's framing, written out with lib0 as they do.
const messageSync = 0;
const messageYjsSyncStep1 = 0;
const messageYjsSyncStep2 = 1;
const messageYjsUpdate = 2;

const doc = new Y.Doc();
doc.clientID = Number(clientId);
const text = doc.getText('text');

const hex = (bytes) => Buffer.from(bytes).toString('hex') || '_';
const unhex = (string) => new Uint8Array(Buffer.from(string === '_' ? '' : string, 'hex'));
const textHex = () => hex(Buffer.from(text.toString(), 'utf8'));

function syncMessage(step, payload) {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, messageSync);
    encoding.writeVarUint(encoder, step);
    encoding.writeVarUint8Array(encoder, payload);
    return encoding.toUint8Array(encoder);
}

// Runs a local edit and returns the update the doc emitted for it.
function edit(change) {
    let emitted = null;
    const listen = (update) => {
        emitted = update;
    };
    doc.on('update', listen);
    change();
    doc.off('update', listen);
    if (emitted === null) throw new Error('the edit changed nothing');
    return emitted;
}

function handle(line) {
    const [op, ...args] = line.trim().split(' ');
    switch (op) {
        case 'insert': {
            const inserted = Buffer.from(args[1] ?? '', 'hex').toString('utf8');
            const update = edit(() => text.insert(Number(args[0]), inserted));
            return `ok ${hex(update)} ${textHex()}`;
        }
        case 'delete': {
            const update = edit(() => text.delete(Number(args[0]), Number(args[1])));
            return `ok ${hex(update)} ${textHex()}`;
        }
        case 'apply':
            Y.applyUpdate(doc, unhex(args[0] ?? ''), 'remote');
            return `ok ${textHex()}`;
        case 'state':
            return `ok ${hex(Y.encodeStateAsUpdate(doc))} ${textHex()}`;
        case 'step1':
            return `ok ${hex(syncMessage(messageYjsSyncStep1, Y.encodeStateVector(doc)))}`;
        case 'sync': {
            const decoder = decoding.createDecoder(unhex(args[0] ?? ''));
            if (decoding.readVarUint(decoder) !== messageSync) throw new Error('not a sync message');
            const step = decoding.readVarUint(decoder);
            const payload = decoding.readVarUint8Array(decoder);
            let reply = '-';
            if (step === messageYjsSyncStep1) {
                reply = hex(syncMessage(messageYjsSyncStep2, Y.encodeStateAsUpdate(doc, payload)));
            } else if (step === messageYjsSyncStep2 || step === messageYjsUpdate) {
                Y.applyUpdate(doc, payload, 'remote');
            } else {
                throw new Error(`unknown sync step ${step}`);
            }
            return `ok ${reply} ${textHex()}`;
        }
        default:
            throw new Error(`unknown command ${op}`);
    }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
    let answer;
    try {
        answer = handle(line);
    } catch (error) {
        answer = `error ${String(error.message).replace(/\s+/g, '_')}`;
    }
    process.stdout.write(`${answer}\n`);
});
