#!/usr/bin/env node
// The reference client as a page in headless Chromium: `node clients/js/browser.mjs ws://host:port/`.
//
// A driver like node.mjs for the harness (events on stdout, commands on stdin, JT808_* settings),
// but the client runs in the browser: this process serves page.html and jt808.mjs on a loopback
// port, starts Chromium on the page, and relays over one WebSocket (the `ws` package): page events
// to stdout as lines, stdin lines to the page. The page itself opens the gateway connection with
// the browser's WebSocket. Chromium is started with --remote-debugging-pipe so it exits when this
// process dies (the pipe closes), and the harness kills the whole process group anyway.
// CHROMIUM names the browser binary (default: chromium, then chromium-browser, google-chrome).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { optionsFromEnv } from './jt808.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: node browser.mjs ws://host:port/\n');
  process.exit(2);
}

/** The browser binary: $CHROMIUM, else the first of the usual names on PATH. */
export function findChromium() {
  const names = process.env.CHROMIUM ? [process.env.CHROMIUM] : ['chromium', 'chromium-browser', 'google-chrome'];
  return names.find((n) => spawnSync(n, ['--version'], { stdio: 'ignore' }).status === 0) ?? null;
}

const FILES = { '/page.html': 'text/html', '/jt808.mjs': 'text/javascript', '/frame.mjs': 'text/javascript' };
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (!FILES[path]) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': FILES[path] }).end(readFileSync(join(here, path.slice(1))));
});
const relay = new WebSocketServer({ server, path: '/relay' });
process.stdout.on('error', () => process.exit(0));

const commands = [];
let page = null;
relay.on('connection', (ws) => {
  if (page) {
    ws.close(1008, 'one page only');
    return;
  }
  page = ws;
  for (const c of commands.splice(0)) ws.send(c);
  ws.on('message', (data) => process.stdout.write(String(data) + '\n'));
  ws.on('close', () => process.exit(3));
});
createInterface({ input: process.stdin }).on('line', (line) => {
  if (page) page.send(line);
  else commands.push(line);
});

server.listen(0, '127.0.0.1', () => {
  const chromium = findChromium();
  if (!chromium) {
    process.stderr.write('jt808-js browser: no chromium found (set CHROMIUM, or apt-get install chromium)\n');
    process.exit(4);
  }
  const { port } = server.address();
  const q = new URLSearchParams({
    url,
    relay: `ws://127.0.0.1:${port}/relay`,
    opts: JSON.stringify(optionsFromEnv(process.env)),
  });
  const profile = mkdtempSync(join(tmpdir(), 'jt808-chromium-'));
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
    '--disable-extensions', '--disable-background-networking', '--remote-debugging-pipe',
    `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/page.html?${q}`,
  ];
  // fds 3 and 4 are the DevTools pipe: when this process dies they close and Chromium exits.
  const child = spawn(chromium, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  child.stderr.on('data', (d) => process.stderr.write(d));
  const cleanup = () => {
    child.kill('SIGKILL');
    rmSync(profile, { recursive: true, force: true });
  };
  child.on('exit', (code) => {
    process.stderr.write(`jt808-js browser: chromium exited (${code})\n`);
    rmSync(profile, { recursive: true, force: true });
    process.exit(5);
  });
  for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { cleanup(); process.exit(0); });
});
