// The Node side of an external client: events as JSON Lines on stdout, commands as JSON Lines on
// stdin, settings from JT808_* variables (clients/CONTRACT.md). node.mjs runs the reference
// client with it; the test fixtures (tests/fixtures/broken_clients/) run altered clients.
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { Jt808Client, optionsFromEnv, runClient } from './jt808.mjs';

/**
 * Runs `Client` (a Jt808Client or a subclass) against the URL in argv[2]. `keep(event)` may
 * filter what is printed; `hello: false` leaves the hello line out.
 */
export function runNode({ Client = Jt808Client, keep = () => true, hello = true } = {}) {
  const url = process.argv[2];
  if (!url) {
    process.stderr.write('usage: node node.mjs ws://host:port/\n');
    process.exit(2);
  }
  // Standard output gone (the harness ended the run): nothing left to report to.
  process.stdout.on('error', () => process.exit(0));
  const print = (event) => {
    if ((event.type !== 'hello' || hello) && keep(event)) process.stdout.write(JSON.stringify(event) + '\n');
  };
  const { onLine } = runClient(url, optionsFromEnv(process.env), WebSocket, print, Client);
  createInterface({ input: process.stdin }).on('line', (text) => {
    try {
      onLine(text);
    } catch (e) {
      process.stderr.write(`jt808-js: ${e.message}\n`);
    }
  });
}
