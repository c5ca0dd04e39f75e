// SPDX-License-Identifier: Apache-2.0
// What the dashboard knows of the daemon, and the events the pages listen to:
// "status", "spills", "alarms", "thresholds", "connection", "credentials".

/// Spills kept for the charts and tables: a run at the SPS supercycle has a
/// few hundred; beyond this the oldest are dropped.
export const kMaxSpills = 2000;

const kRoleKey = 'na64.dashboard.role';
const kTokenKey = 'na64.dashboard.token';

export class DashboardState extends EventTarget {
  constructor() {
    super();
    this.status = null;
    /// Spills of the current run, oldest first, at most one per number.
    this.spills = [];
    /// Alarms by id, in the order the daemon listed or raised them.
    this.alarms = new Map();
    this.thresholds = null;
    /// "connecting", "live" or "disconnected".
    this.connection = 'connecting';
    // The role is a preference of the console and kept; the token is kept for
    // this tab only (sessionStorage), so that it does not outlive the shift's
    // browser session on a shared control-room machine.
    this.role = localStorage.getItem(kRoleKey) === 'expert' ? 'expert' : 'shift';
    this.token = sessionStorage.getItem(kTokenKey) ?? '';
  }

  emit(type) {
    this.dispatchEvent(new Event(type));
  }

  setStatus(status) {
    const previousRun = this.status?.run ?? 0;
    this.status = status;
    // Spill numbers start again with each run: the old run's go.
    if (previousRun !== 0 && status.run !== previousRun) {
      this.spills = [];
      this.emit('spills');
    }
    this.emit('status');
  }

  /// Replaces the spills with those the daemon listed (oldest first).
  setSpills(spills) {
    const byNumber = new Map();
    for (const s of spills) byNumber.set(s.spill, s);
    this.spills = [...byNumber.values()].sort((a, b) => a.spill - b.spill).slice(-kMaxSpills);
    this.emit('spills');
  }

  /// Adds or replaces one spill, as the WebSocket announces it.
  addSpill(spill) {
    if (spill.run !== null && this.status && this.status.run !== 0 && spill.run !== this.status.run) {
      // A spill of another run than the status names: the status that tells
      // of the new run is on its way; start the list afresh.
      this.spills = [];
    }
    const i = this.spills.findIndex((s) => s.spill >= spill.spill);
    if (i === -1) {
      this.spills.push(spill);
    } else if (this.spills[i].spill === spill.spill) {
      this.spills[i] = spill;
    } else {
      this.spills.splice(i, 0, spill);
    }
    if (this.spills.length > kMaxSpills) this.spills.splice(0, this.spills.length - kMaxSpills);
    this.emit('spills');
  }

  setAlarms(alarms) {
    this.alarms = new Map(alarms.map((a) => [a.id, a]));
    this.emit('alarms');
  }

  upsertAlarm(alarm) {
    this.alarms.set(alarm.id, alarm);
    this.emit('alarms');
  }

  setThresholds(thresholds) {
    this.thresholds = thresholds;
    this.emit('thresholds');
  }

  setConnection(connection) {
    if (this.connection === connection) return;
    this.connection = connection;
    this.emit('connection');
  }

  setCredentials(role, token) {
    this.role = role === 'expert' ? 'expert' : 'shift';
    this.token = token.trim();
    localStorage.setItem(kRoleKey, this.role);
    if (this.token) {
      sessionStorage.setItem(kTokenKey, this.token);
    } else {
      sessionStorage.removeItem(kTokenKey);
    }
    this.emit('credentials');
  }

  /// Whether the console holds a token said to be of `role`.
  hasRole(role) {
    return this.token !== '' && this.role === role;
  }

  lastSpill() {
    return this.spills.length ? this.spills[this.spills.length - 1] : null;
  }
}
