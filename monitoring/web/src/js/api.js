// SPDX-License-Identifier: Apache-2.0
// The daemon's HTTP API as the dashboard uses it, and the normalisation of
// what it sends into the objects the pages read.
//
// Replies may come as Protobuf JSON (lowerCamelCase names, 64-bit counts as
// decimal strings, a status wrapped in a Reply) or as plain JSON with
// snake_case names: every reader here accepts both, so the pages never see
// the difference.

/// The trigger lines, in the order of the spill record's `accepted` array.
export const kLines = ['invisible', 'beam', 'random'];

/// Run-control commands, in button order, with the role the daemon asks for.
export const kCommands = [
  { command: 'configure', label: 'Configure', role: 'expert' },
  { command: 'start', label: 'Start', role: 'shift' },
  { command: 'pause', label: 'Pause', role: 'shift' },
  { command: 'resume', label: 'Resume', role: 'shift' },
  { command: 'stop', label: 'Stop', role: 'shift' },
  { command: 'reset', label: 'Reset', role: 'shift' },
];

/// Acknowledging an alarm needs a shift token.
export const kAlarmAckRole = 'shift';

export const kRunStates = ['IDLE', 'CONFIGURED', 'RUNNING', 'PAUSED', 'STOPPING', 'ERROR'];

/// A refused or failed request: the HTTP status and the daemon's message.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

function camel(name) {
  return name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

/// `object[name]` under its snake_case or lowerCamelCase spelling.
export function field(object, name) {
  if (object === null || typeof object !== 'object') return undefined;
  if (object[name] !== undefined) return object[name];
  return object[camel(name)];
}

/// A number from a JSON number or a decimal string; null for anything else.
export function toNumber(value) {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

function toBool(value) {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return null;
}

/// Per-line counts from an object {invisible, beam, random} or an array in
/// line order; null when absent.
function lineCounts(value) {
  if (value === null || value === undefined) return null;
  const counts = {};
  if (Array.isArray(value)) {
    kLines.forEach((line, i) => { counts[line] = toNumber(value[i]) ?? 0; });
  } else if (typeof value === 'object') {
    for (const line of kLines) counts[line] = toNumber(value[line]) ?? 0;
  } else {
    return null;
  }
  return counts;
}

/// The run status, from GET /api/status, a command's reply or a WebSocket
/// "status" message.
export function normalizeStatus(raw) {
  // GET /api/status: the control reply ({code, message, status: {...}}) with
  // the dashboard's fields beside it; those win (their sources include the
  // trackers). A WebSocket status message has the fields flat.
  const nested = raw && typeof raw === 'object' && raw.status && typeof raw.status === 'object' ? raw.status : {};
  const s = { ...nested, ...(raw && typeof raw === 'object' ? raw : {}) };
  const commands = field(s, 'valid_commands') ?? field(s, 'allowed') ?? [];
  return {
    state: typeof s.state === 'string' ? s.state : 'UNKNOWN',
    run: toNumber(s.run) ?? 0,
    spill: toNumber(s.spill) ?? 0,
    spillsBegun: toNumber(field(s, 'spills_begun')),
    beamOn: toBool(field(s, 'beam_on')),
    diskFreeBytes: toNumber(field(s, 'disk_free_bytes')),
    validCommands: Array.isArray(commands) ? commands.map(String) : [],
    sources: (Array.isArray(s.sources) ? s.sources : []).map((src) => ({
      id: toNumber(src.id) ?? src.id,
      kind: typeof src.kind === 'string' ? src.kind : '',
      state: typeof src.state === 'string' ? src.state : 'unknown',
    })),
    comment: typeof s.comment === 'string' ? s.comment : '',
    message: typeof s.message === 'string' ? s.message : '',
    eventsWritten: toNumber(field(s, 'events_written')),
    bytesWritten: toNumber(field(s, 'bytes_written')),
    runStartMs: toNumber(field(s, 'run_start_unix_ms')),
  };
}

/// One entry of GET /api/spills or a WebSocket "spill" message.
export function normalizeSpill(raw) {
  const reasons = raw.reasons ?? field(raw, 'verdict_reasons');
  return {
    run: toNumber(raw.run),
    spill: toNumber(raw.spill) ?? 0,
    particles: toNumber(raw.particles),
    accepted: lineCounts(raw.accepted) ?? { invisible: 0, beam: 0, random: 0 },
    written: toNumber(raw.written),
    incomplete: toNumber(raw.incomplete),
    deadTime: toNumber(field(raw, 'dead_time')),
    thresholdSet: toNumber(field(raw, 'threshold_set')),
    shadowSet: toNumber(field(raw, 'shadow_set')),
    shadowAccepted: lineCounts(field(raw, 'shadow_accepted')),
    shadowOverlap: lineCounts(field(raw, 'shadow_overlap')),
    // "" (or absent): not judged.
    verdict: typeof raw.verdict === 'string' && raw.verdict !== '' ? raw.verdict : null,
    reasons: Array.isArray(reasons) ? reasons.map(String) : [],
  };
}

/// One alarm of GET /api/alarms or a WebSocket "alarm" message.
export function normalizeAlarm(raw) {
  return {
    // A 64-bit id may come as a number or a decimal string: one key either way.
    id: String(raw.id),
    level: raw.level === 'error' ? 'error' : 'warning',
    text: typeof raw.text === 'string' ? raw.text : '',
    firstSpill: toNumber(field(raw, 'first_spill')),
    lastSpill: toNumber(field(raw, 'last_spill')),
    raisedAt: field(raw, 'raised_at') ?? field(raw, 'raised_unix_ms') ?? null,
    acknowledged: toBool(raw.acknowledged) ?? false,
    acknowledgedBy: field(raw, 'acknowledged_by') ?? '',
    acknowledgedAt: field(raw, 'acknowledged_at') ?? field(raw, 'acknowledged_unix_ms') ?? null,
  };
}

/// The threshold sets of GET /api/thresholds: {activeId, pendingId,
/// shadowId, pendingShadowId, sets: Map id -> {id, author, comment,
/// thresholds: {name: value}}}, names in snake_case.
export function normalizeThresholds(raw) {
  const t = raw && typeof raw === 'object' && raw.thresholds && typeof raw.thresholds === 'object' &&
    !Array.isArray(raw.thresholds) && field(raw.thresholds, 'active_id') !== undefined ? raw.thresholds : raw ?? {};
  const sets = new Map();
  for (const set of Array.isArray(t.sets) ? t.sets : []) {
    const values = {};
    for (const [name, value] of Object.entries(set.thresholds ?? {})) {
      values[name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = toNumber(value);
    }
    const id = toNumber(set.id);
    sets.set(id, {
      id,
      author: set.author ?? '',
      comment: set.comment ?? '',
      createdMs: toNumber(field(set, 'created_unix_ms')),
      thresholds: values,
    });
  }
  return {
    activeId: toNumber(field(t, 'active_id')) ?? 0,
    pendingId: toNumber(field(t, 'pending_id')) ?? 0,
    shadowId: toNumber(field(t, 'shadow_id')) ?? 0,
    pendingShadowId: toNumber(field(t, 'pending_shadow_id')) ?? 0,
    sets,
  };
}

function messageOf(body, fallback) {
  if (body && typeof body === 'object' && typeof body.message === 'string' && body.message !== '') {
    return body.message;
  }
  return fallback;
}

async function request(method, path, { token = '', body = undefined } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await response.text();
  let parsed = null;
  if (text.trim() !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      if (response.ok) throw new ApiError(response.status, `${method} ${path}: the reply is not JSON`);
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, messageOf(parsed, `${method} ${path}: HTTP ${response.status}`));
  }
  return { body: parsed, text };
}

function listOf(body, key) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body[key])) return body[key];
  return [];
}

/// The threshold state a status carries when the daemon sends it whole, or null.
export function statusThresholds(raw) {
  const s = raw && typeof raw === 'object' && raw.status && typeof raw.status === 'object' ? raw.status : raw;
  const t = s && typeof s === 'object' ? s.thresholds : null;
  return t && typeof t === 'object' && !Array.isArray(t) ? normalizeThresholds(t) : null;
}

/// GET /api/status: {status, thresholds (or null)}.
export async function fetchStatus() {
  const { body } = await request('GET', '/api/status');
  return { status: normalizeStatus(body), thresholds: statusThresholds(body) };
}

/// The last `last` spills of the run, oldest first.
export async function fetchSpills(last) {
  const { body } = await request('GET', `/api/spills?last=${last}`);
  return listOf(body, 'spills').map(normalizeSpill);
}

export async function fetchThresholds() {
  return normalizeThresholds((await request('GET', '/api/thresholds')).body);
}

export async function fetchAlarms() {
  return listOf((await request('GET', '/api/alarms')).body, 'alarms').map(normalizeAlarm);
}

/// GET that answers null for "nothing yet": a 404, an empty body or JSON null.
async function getOrNull(path) {
  try {
    return await request('GET', path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

/// The sampled accepted event, or null when the daemon has none yet.
export async function fetchEvent() {
  const reply = await getOrNull('/api/event');
  return reply && reply.body && typeof reply.body === 'object' ? reply.body : null;
}

export async function fetchDqmList() {
  return listOf((await request('GET', '/api/dqm/list')).body, 'names').map(String);
}

/// A histogram's JSROOT JSON text, of one spill (`spill` a number) or of the
/// run (`spill` null).
export async function fetchHistogram(name, spill) {
  const query = spill === null ? '?run' : `?spill=${spill}`;
  return (await request('GET', `/api/dqm/hist/${encodeURIComponent(name)}${query}`)).text;
}

/// The reference's JSROOT JSON text, or null when there is no reference yet.
export async function fetchReference(name) {
  const reply = await getOrNull(`/api/dqm/reference/${encodeURIComponent(name)}`);
  return reply && reply.body !== null ? reply.text : null;
}

/// Sends a run-control command; resolves to the reply's status (or null when
/// the reply carries none), rejects with an ApiError when refused.
export async function sendCommand(command, token, body = {}) {
  const reply = (await request('POST', `/api/${command}`, { token, body })).body;
  return reply && typeof reply === 'object' && (reply.status || reply.state) ? normalizeStatus(reply) : null;
}

export async function acknowledgeAlarm(id, token) {
  await request('POST', `/api/alarms/${encodeURIComponent(id)}/ack`, { token, body: {} });
}
