// SPDX-License-Identifier: Apache-2.0
// Headless Debian Chromium driven by playwright-core (from the dashboard's
// npm install in the build tree), and what a test watches on a page.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests through ctest`);
  return value;
}

export function artifactsDir() {
  const dir = required('NA64_BROWSER_ARTIFACTS');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function launchChromium() {
  const require = createRequire(path.join(required('NA64_NODE_MODULES'), 'package.json'));
  const { chromium } = require('playwright-core');
  return chromium.launch({ executablePath: required('NA64_CHROMIUM'), args: ['--no-sandbox'] });
}

/// A page in a fresh context (no stored token or role), with every console
/// error and uncaught exception collected in `errors` as {at, text}.
export async function openPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push({ at: Date.now(), text: m.text() });
  });
  page.on('pageerror', (e) => errors.push({ at: Date.now(), text: `uncaught: ${e.message}` }));
  return { context, page, errors };
}

/// Where the browser loads the dashboard from: the daemon itself, or, with
/// NA64_BROWSER_DEV_SERVER=1, the dashboard's development server in front of
/// it (monitoring/web/tools/dev_server.mjs: the built site, the API passed
/// on), for a daemon that does not serve the site.
export async function frontFor(daemon, logDir) {
  if (process.env.NA64_BROWSER_DEV_SERVER !== '1') return { url: `${daemon.url}/`, close: async () => {} };
  const script = fileURLToPath(new URL('../../../monitoring/web/tools/dev_server.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--site', daemon.site, '--daemon', daemon.url],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      const m = /dev server: (http:\/\/[^ ]+\/)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`dev_server.mjs exited with ${code}: ${out} (logs in ${logDir})`)));
  });
  return {
    url,
    close: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
