#!/usr/bin/env node
// The reference client under Node: `node clients/js/node.mjs ws://host:port/`.
// Events as JSON Lines on stdout, commands ({"type":"send","hex":"7e...7e"}) as JSON Lines on
// stdin, settings from JT808_* variables (clients/CONTRACT.md). Needs the `ws` package
// (`npm ci` in clients/js).
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { optionsFromEnv, runClient } from './jt808.mjs';

const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: node node.mjs ws://host:port/\n');
  process.exit(2);
}
// Standard output gone (the harness ended the run): nothing left to report to.
process.stdout.on('error', () => process.exit(0));
const print = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const { onLine } = runClient(url, optionsFromEnv(process.env), WebSocket, print);
createInterface({ input: process.stdin }).on('line', (text) => {
  try {
    onLine(text);
  } catch (e) {
    process.stderr.write(`jt808-js: ${e.message}\n`);
  }
});
