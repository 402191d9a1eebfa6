#!/usr/bin/env node
// The reference client under Node: `node clients/js/node.mjs ws://host:port/`.
// Events as JSON Lines on stdout, commands ({"type":"send","hex":"7e...7e"}) as JSON Lines on
// stdin, settings from JT808_* variables (clients/CONTRACT.md). Needs the `ws` package
// (`npm ci` in clients/js).
import { runNode } from './node-driver.mjs';

runNode();
