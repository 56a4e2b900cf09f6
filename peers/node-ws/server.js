// A Node `ws` echo server as its README writes one: a peer rtbench-server is
// benchmarked beside (`suites/peers.toml`). Usage: node server.js PORT
// `ws` comes from Debian's node-ws package (/usr/share/nodejs), which a Node
// not built by Debian does not search by itself.
module.paths.push('/usr/share/nodejs');
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}
const wss = new WebSocketServer({ host: '127.0.0.1', port });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.error(`listening on 127.0.0.1:${port}`));
