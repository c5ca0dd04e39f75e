// SPDX-License-Identifier: Apache-2.0
// For working on the dashboard: serves a site directory (the sources' dist
// copy, or monitoring/web/src with the vendor files beside it) and passes
// /api/*, /metrics and the /ws WebSocket on to a running na64daq serve, so
// that a change to a page needs a reload, not a daemon rebuild.
//
//   node monitoring/web/tools/dev_server.mjs --site build/ci/monitoring/web/dist \
//       --daemon http://127.0.0.1:8080 [--listen 127.0.0.1:8081]
//
// Prints "dev server: http://HOST:PORT/" once it listens. Node built-ins only.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import process from 'node:process';

const kTypes = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

function parseArgs(argv) {
  const args = { site: '', daemon: '', listen: '127.0.0.1:0' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in args) || i + 1 >= argv.length) {
      throw new Error(`usage: dev_server.mjs --site DIR --daemon URL [--listen HOST:PORT] (at "${argv[i]}")`);
    }
    args[name] = argv[i + 1];
  }
  if (!args.site || !args.daemon) throw new Error('dev_server.mjs: --site and --daemon are required');
  return args;
}

function isDaemonPath(pathname) {
  return pathname.startsWith('/api/') || pathname === '/metrics' || pathname === '/ws';
}

async function serveFile(site, pathname, res) {
  const relative = decodeURIComponent(pathname === '/' ? '/index.html' : pathname);
  const file = path.resolve(site, `.${relative}`);
  if (!file.startsWith(path.resolve(site) + path.sep)) {
    res.writeHead(403).end();
    return;
  }
  try {
    if (!(await stat(file)).isFile()) throw new Error('not a file');
  } catch {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`no such file: ${pathname}\n`);
    return;
  }
  res.writeHead(200, {
    'Content-Type': kTypes[path.extname(file)] ?? 'application/octet-stream',
    'Cache-Control': 'no-store',
  });
  createReadStream(file).pipe(res);
}

function proxyRequest(daemon, req, res) {
  const upstream = http.request({
    host: daemon.hostname,
    port: daemon.port,
    method: req.method,
    path: req.url,
    headers: { ...req.headers, host: daemon.host },
  }, (reply) => {
    res.writeHead(reply.statusCode ?? 502, reply.headers);
    reply.pipe(res);
  });
  upstream.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
    res.end(`the daemon at ${daemon.host} does not answer: ${e.message}\n`);
  });
  req.pipe(upstream);
}

/// A WebSocket upgrade: the request head goes to the daemon as it came, then
/// bytes are passed both ways untouched.
function proxyUpgrade(daemon, req, socket, head) {
  const upstream = net.connect(Number(daemon.port), daemon.hostname, () => {
    const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i];
      lines.push(`${name}: ${name.toLowerCase() === 'host' ? daemon.host : req.rawHeaders[i + 1]}`);
    }
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on('error', () => socket.destroy());
  socket.on('error', () => upstream.destroy());
  upstream.on('close', () => socket.destroy());
  socket.on('close', () => upstream.destroy());
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const daemon = new URL(args.daemon);
  const [host, port] = args.listen.split(':');
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://dashboard');
    if (isDaemonPath(pathname)) {
      proxyRequest(daemon, req, res);
    } else if (req.method === 'GET' || req.method === 'HEAD') {
      serveFile(args.site, pathname, res);
    } else {
      res.writeHead(405, { Allow: 'GET' }).end();
    }
  });
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url, 'http://dashboard').pathname === '/ws') {
      proxyUpgrade(daemon, req, socket, head);
    } else {
      socket.destroy();
    }
  });
  server.listen(Number(port), host, () => {
    const address = server.address();
    console.log(`dev server: http://${address.address}:${address.port}/ (daemon ${daemon.origin})`);
  });
}

main();
