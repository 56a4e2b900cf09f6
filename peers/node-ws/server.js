// A Node `ws` echo server as its README writes one: a peer rtbench-server is
// benchmarked beside (`suites/peers.toml`). Usage: node server.js PORT [--binary]
// With --binary it echoes as a handler that sends back the Buffer it got
// (`ws.on('message', d => ws.send(d))`) does: every message as a binary
// frame, text or not (the load generator's raw echo test).
// `ws` comes from Debian's node-ws package (/usr/share/nodejs), which a Node
// not built by Debian does not search by itself.
module.paths.push('/usr/share/nodejs');
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2]);
const binary = process.argv[3] === '--binary';
if (!Number.isInteger(port) || port <= 0 || (process.argv[3] && !binary)) {
  console.error('usage: node server.js PORT [--binary]');
  process.exit(2);
}
const wss = new WebSocketServer({ host: '127.0.0.1', port });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (binary) {
    ws.on('message', (data) => ws.send(data));
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});
wss.on('listening', () => console.error(`listening on 127.0.0.1:${port}`));
