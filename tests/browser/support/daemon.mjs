// SPDX-License-Identifier: Apache-2.0
// A real `na64daq serve` process for the browser tests: its own temporary
// directory with a tokens file, run database, output directory and a
// configuration of small, fast spills; an ephemeral HTTP port that a restart
// keeps.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/// Particles per spill and the spill cycle: a spill about every 0.5 s.
export const kParticlesPerSpill = 2000;
export const kSpillCycleS = 0.5;
const kStartTimeoutMs = 10000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests through ctest`);
  return value;
}

/// The embedded default configuration with small spills every kSpillCycleS.
function fastConfig(binary) {
  const text = execFileSync(binary, ['default-config'], { encoding: 'utf8' });
  const fast = text.replace(/particles_per_spill: *[0-9]+/,
    `particles_per_spill: ${kParticlesPerSpill}\n  spill_cycle_s: ${kSpillCycleS}`);
  if (fast === text || /spill_cycle_s/.test(text)) {
    throw new Error('the default configuration has no single "particles_per_spill" to replace');
  }
  return fast;
}

export class Daemon {
  /// `name` names the log files in `logDir`.
  constructor(name, logDir) {
    this.binary = required('NA64DAQ_PATH');
    this.site = required('NA64_WEB_DIST');
    this.name = name;
    this.logDir = logDir;
    this.dir = mkdtempSync(path.join(tmpdir(), 'na64-browser-'));
    this.shiftToken = `shift-${randomBytes(24).toString('hex')}`;
    this.expertToken = `expert-${randomBytes(24).toString('hex')}`;
    const tokens = path.join(this.dir, 'tokens');
    writeFileSync(tokens, `shift ${this.shiftToken}\nexpert ${this.expertToken}\n`, { mode: 0o600 });
    chmodSync(tokens, 0o600);
    writeFileSync(path.join(this.dir, 'fast.textproto'), fastConfig(this.binary));
    this.port = 0;
    this.url = '';
    this.process = null;
    this.starts = 0;
  }

  /// Starts the daemon (on the port of the last start, if any) and resolves
  /// once it listens. `configure`: load the configuration at start.
  async start({ configure = true } = {}) {
    ++this.starts;
    const args = [
      'serve',
      '--http', `127.0.0.1:${this.port}`,
      '--tokens', path.join(this.dir, 'tokens'),
      '--db', path.join(this.dir, 'runs.sqlite'),
      '--output', path.join(this.dir, 'data'),
      '--config', path.join(this.dir, 'fast.textproto'),
    ];
    // Behind the development server (see browser.mjs) the daemon need not
    // serve the site.
    if (process.env.NA64_BROWSER_DEV_SERVER !== '1') args.push('--web', this.site);
    if (configure) args.push('--configure');
    const log = createWriteStream(path.join(this.logDir, `${this.name}-daemon-${this.starts}.log`));
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let output = '';
    const listening = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `na64daq serve did not listen within ${kStartTimeoutMs} ms:\n${output}`)), kStartTimeoutMs);
      const read = (chunk) => {
        output += chunk;
        log.write(chunk);
        const m = /na64daq: http:\/\/127\.0\.0\.1:([0-9]+)\//.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout.setEncoding('utf8').on('data', read);
      child.stderr.setEncoding('utf8').on('data', read);
      this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`na64daq serve exited (code ${code}, signal ${signal}) before listening:\n${output}`));
      });
    });
    const port = await listening;
    if (this.port !== 0 && port !== this.port) throw new Error(`the daemon came back on port ${port}, not ${this.port}`);
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  /// Ends the process with `signal` and waits for it.
  async kill(signal = 'SIGKILL') {
    if (!this.process) return;
    const child = this.process;
    this.process = null;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await this.exited;
  }

  async dispose() {
    await this.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /// A request to the daemon's API; resolves to {status, body}.
  async api(method, apiPath, { token = '', body = undefined } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(`${this.url}${apiPath}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  /// The daemon's status object, whether or not it comes wrapped in a reply.
  async status() {
    const { status, body } = await this.api('GET', '/api/status');
    if (status !== 200) throw new Error(`GET /api/status: HTTP ${status}`);
    return body.status ?? body;
  }

  /// Polls the status until `predicate` holds; rejects after `timeoutMs`.
  async waitFor(predicate, timeoutMs, what) {
    const t0 = Date.now();
    let last = null;
    while (Date.now() - t0 < timeoutMs) {
      last = await this.status();
      if (predicate(last)) return last;
      await sleep(25);
    }
    throw new Error(`the daemon did not reach ${what} within ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
  }

  /// The run's spills as GET /api/spills lists them.
  async spills(last = 1000) {
    const { status, body } = await this.api('GET', `/api/spills?last=${last}`);
    if (status !== 200) throw new Error(`GET /api/spills: HTTP ${status}`);
    return Array.isArray(body) ? body : body.spills;
  }
}
