// SPDX-License-Identifier: Apache-2.0
// The dashboard: loads what the daemon knows over HTTP, follows it over the
// WebSocket, and shows one page at a time (#status, #trigger, #dqm, #event).
import * as api from './api.js';
import { byId, formatCount, setText } from './dom.js';
import { DqmPage } from './dqm_page.js';
import { EventPage } from './event_page.js';
import { LiveConnection } from './live.js';
import { DashboardState } from './state.js';
import { StatusPage } from './status_page.js';
import { TriggerPage } from './trigger_page.js';

/// Spills asked for when (re)loading: a whole run for the trigger charts.
const kSpillsLoaded = 1000;

const state = new DashboardState();
const pages = {
  status: new StatusPage(state),
  trigger: new TriggerPage(state),
  dqm: new DqmPage(state),
  event: new EventPage(state),
};
let currentPage = null;

function pageFromHash() {
  const name = location.hash.replace(/^#/, '');
  return Object.hasOwn(pages, name) ? name : 'status';
}

function showPage() {
  const name = pageFromHash();
  if (name === currentPage) return;
  for (const section of document.querySelectorAll('main > .page')) {
    section.hidden = section.dataset.page !== name;
  }
  for (const tab of document.querySelectorAll('nav.tabs a')) {
    if (tab.dataset.page === name) {
      tab.setAttribute('aria-current', 'page');
    } else {
      tab.removeAttribute('aria-current');
    }
  }
  if (currentPage) pages[currentPage].hide();
  currentPage = name;
  pages[name].show();
}

function warn(what, error) {
  console.warn(`dashboard: ${what}: ${error.message}`);
}

/// A status, with the threshold state when it carries one; otherwise the sets
/// are fetched when a spill names others than those known.
function applyStatus(status, thresholds) {
  state.setStatus(status);
  if (thresholds) state.setThresholds(thresholds);
}

async function loadStatus() {
  try {
    const { status, thresholds } = await api.fetchStatus();
    applyStatus(status, thresholds);
  } catch (e) {
    warn('status', e);
  }
}

async function loadThresholds() {
  try {
    state.setThresholds(await api.fetchThresholds());
  } catch (e) {
    warn('thresholds', e);
  }
}

/// Everything the pages show, from scratch: at load and after each reconnect,
/// when pushes may have been missed. The status goes first, since a new run
/// empties the spill list.
async function resync() {
  await loadStatus();
  await Promise.all([
    api.fetchSpills(kSpillsLoaded).then((s) => state.setSpills(s), (e) => warn('spills', e)),
    api.fetchAlarms().then((a) => state.setAlarms(a), (e) => warn('alarms', e)),
    loadThresholds(),
  ]);
}

function onLiveMessage(message) {
  // {"type": T, ...fields}, or the fields under the key T.
  const inner = message[message.type];
  const body = inner !== null && typeof inner === 'object' && !Array.isArray(inner) ? inner : message;
  switch (message.type) {
    case 'status':
      applyStatus(api.normalizeStatus(body), api.statusThresholds(body));
      break;
    case 'spill': {
      const spill = api.normalizeSpill(body);
      state.addSpill(spill);
      const t = state.thresholds;
      if (!t || (spill.thresholdSet !== null && spill.thresholdSet !== t.activeId) ||
          (spill.shadowSet !== null && spill.shadowSet !== t.shadowId)) {
        loadThresholds();
      }
      break;
    }
    case 'alarm':
      state.upsertAlarm(api.normalizeAlarm(body));
      break;
    default:
      break;
  }
}

function renderHeader() {
  const s = state.status;
  const badge = byId('header-state');
  badge.dataset.state = s ? s.state : 'UNKNOWN';
  setText(badge, s ? s.state : '–');
  setText(byId('header-run'), s && s.run ? String(s.run) : '–');
  setText(byId('header-spill'), s ? formatCount(s.spill) : '–');
}

function renderConnection() {
  const node = byId('connection');
  node.dataset.state = state.connection;
  setText(node, { live: 'live', connecting: 'connecting…', disconnected: 'disconnected' }[state.connection]);
  document.body.classList.toggle('offline', state.connection !== 'live');
}

function renderAlarmBadge() {
  const open = [...state.alarms.values()].filter((a) => !a.acknowledged);
  const badge = byId('alarm-badge');
  badge.hidden = open.length === 0;
  badge.dataset.level = open.some((a) => a.level === 'error') ? 'error' : 'warning';
  setText(badge, `${open.length} alarm${open.length === 1 ? '' : 's'}`);
}

state.addEventListener('status', renderHeader);
state.addEventListener('connection', renderConnection);
state.addEventListener('alarms', renderAlarmBadge);
window.addEventListener('hashchange', showPage);

showPage();
renderHeader();
renderConnection();

const wsUrl = new URL('/ws', location.href);
wsUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
const live = new LiveConnection(wsUrl.href, {
  up: () => {
    state.setConnection('live');
    resync();
  },
  message: onLiveMessage,
  down: () => state.setConnection('disconnected'),
});
resync();
live.start();
