// SPDX-License-Identifier: Apache-2.0
// The status page: run state, spill counter, beam, rates of the last spill,
// sources, disk, alarms with acknowledge, and the run-control buttons.
import * as api from './api.js';
import { byId, el, formatBytes, formatCount, formatPercent, formatTime, setText } from './dom.js';

export class StatusPage {
  constructor(state) {
    this.state = state;
    this.busy = false;  // a command in flight: the buttons wait for its reply
    this.buttons = new Map();
    const container = byId('control-buttons');
    for (const { command, label, role } of api.kCommands) {
      const button = el('button', {
        type: 'button',
        dataset: { command, role },
        title: `${command} (${role} token)`,
        disabled: true,
        onclick: () => this.send(command),
      }, label);
      this.buttons.set(command, button);
      container.append(button);
    }

    this.tokenInput = byId('token');
    this.roleSelect = byId('role');
    this.tokenInput.value = state.token;
    this.roleSelect.value = state.role;
    const saveCredentials = () => state.setCredentials(this.roleSelect.value, this.tokenInput.value);
    this.tokenInput.addEventListener('input', saveCredentials);
    this.roleSelect.addEventListener('change', saveCredentials);
    byId('credentials').addEventListener('submit', (e) => e.preventDefault());

    state.addEventListener('status', () => {
      this.renderStatus();
      this.renderControls();
    });
    state.addEventListener('spills', () => this.renderRates());
    state.addEventListener('alarms', () => this.renderAlarms());
    state.addEventListener('credentials', () => {
      this.renderControls();
      this.renderAlarms();
    });
    state.addEventListener('connection', () => {
      this.renderControls();
      this.renderAlarms();
    });
    this.renderStatus();
    this.renderRates();
    this.renderAlarms();
    this.renderControls();
  }

  show() {}
  hide() {}

  renderStatus() {
    const s = this.state.status;
    const badge = byId('run-state');
    badge.dataset.state = s ? s.state : 'UNKNOWN';
    setText(badge, s ? s.state : '–');
    setText(byId('run-number'), s && s.run ? String(s.run) : '–');
    let spills = s ? formatCount(s.spill) : '–';
    if (s && s.spillsBegun !== null && s.spillsBegun > s.spill) spills += ` (spill ${s.spillsBegun} in progress)`;
    setText(byId('spill-counter'), spills);
    const beam = byId('beam');
    const beamOn = s ? s.beamOn : null;
    beam.dataset.on = beamOn === null ? 'unknown' : String(beamOn);
    setText(beam, beamOn === null ? '–' : beamOn ? 'ON' : 'off');
    setText(byId('events-written'), s ? formatCount(s.eventsWritten) : '–');
    setText(byId('bytes-written'), s ? formatBytes(s.bytesWritten) : '–');
    setText(byId('disk-free'), s ? formatBytes(s.diskFreeBytes) : '–');
    setText(byId('run-comment'), s && s.comment ? s.comment : '–');
    const message = byId('run-message');
    message.hidden = !(s && s.message);
    message.dataset.state = s ? s.state : '';
    setText(message, s && s.message ? s.message : '');

    const list = byId('sources');
    const sources = s ? s.sources : [];
    list.replaceChildren(...sources.map((src) => el('li', { dataset: { state: src.state, source: String(src.id) } },
      el('span', { class: 'dot', 'aria-hidden': 'true' }),
      el('span', { class: 'source-id' }, String(src.id)),
      el('span', { class: 'source-kind muted' }, src.kind),
      el('span', { class: 'source-state' }, src.state))));
    if (sources.length === 0) list.append(el('li', { class: 'muted' }, 'no sources configured'));
  }

  renderRates() {
    const spill = this.state.lastSpill();
    setText(byId('rates-spill'), spill ? `(spill ${spill.spill})` : '');
    const body = byId('rates-table').tBodies[0];
    body.replaceChildren(...api.kLines.map((line) => {
      const n = spill ? spill.accepted[line] : null;
      const perMillion = spill && spill.particles ? (n / spill.particles) * 1e6 : null;
      return el('tr', { dataset: { line } },
        el('th', {}, line),
        el('td', { class: 'accepted' }, formatCount(n)),
        el('td', {}, perMillion === null ? '–' : perMillion.toFixed(perMillion < 100 ? 1 : 0)));
    }));
    setText(byId('rate-particles'), spill ? formatCount(spill.particles) : '–');
    setText(byId('rate-written'), spill ? formatCount(spill.written) : '–');
    setText(byId('rate-incomplete'), spill ? formatCount(spill.incomplete) : '–');
    setText(byId('rate-dead-time'), spill ? formatPercent(spill.deadTime) : '–');
  }

  renderAlarms() {
    const alarms = [...this.state.alarms.values()].sort((a, b) =>
      Number(a.acknowledged) - Number(b.acknowledged) || (b.lastSpill ?? 0) - (a.lastSpill ?? 0));
    const canAck = this.state.hasRole(api.kAlarmAckRole) && this.state.connection === 'live';
    const body = byId('alarms').tBodies[0];
    body.replaceChildren(...alarms.map((a) => {
      const spills = a.firstSpill === null ? '–' :
        a.lastSpill === null || a.lastSpill === a.firstSpill ? String(a.firstSpill) : `${a.firstSpill}–${a.lastSpill}`;
      const ack = a.acknowledged
        ? `${a.acknowledgedBy || 'yes'} ${a.acknowledgedAt ? formatTime(a.acknowledgedAt) : ''}`.trim()
        : '';
      return el('tr', { dataset: { level: a.level, acknowledged: String(a.acknowledged), alarm: String(a.id) } },
        el('td', {}, el('span', { class: 'level' }, a.level)),
        el('td', { class: 'alarm-text' }, a.text),
        el('td', {}, spills),
        el('td', {}, formatTime(a.raisedAt)),
        el('td', {}, ack),
        el('td', {}, a.acknowledged ? '' : el('button', {
          type: 'button',
          class: 'small ack',
          dataset: { role: api.kAlarmAckRole },
          disabled: !canAck,
          title: 'acknowledge (shift token)',
          onclick: (e) => this.acknowledge(a.id, e.currentTarget),
        }, 'Acknowledge')));
    }));
    byId('alarms-empty').hidden = alarms.length !== 0;
  }

  renderControls() {
    const s = this.state.status;
    const live = this.state.connection === 'live';
    for (const { command, role } of api.kCommands) {
      const valid = s !== null && s.validCommands.includes(command);
      this.buttons.get(command).disabled = this.busy || !live || !valid || !this.state.hasRole(role);
    }
  }

  async send(command) {
    const token = this.state.token;
    const body = command === 'start' ? { comment: byId('run-comment-input').value.trim() } : {};
    const message = byId('control-message');
    this.busy = true;
    this.renderControls();
    message.dataset.outcome = 'pending';
    setText(message, `${command}…`);
    try {
      const status = await api.sendCommand(command, token, body);
      if (status) this.state.setStatus(status);
      message.dataset.outcome = 'ok';
      setText(message, `${command}: done`);
    } catch (e) {
      message.dataset.outcome = 'refused';
      setText(message, `${command} refused${e.status ? ` (${e.status})` : ''}: ${e.message}`);
    } finally {
      this.busy = false;
      this.renderControls();
    }
  }

  async acknowledge(id, button) {
    const message = byId('control-message');
    button.disabled = true;
    try {
      await api.acknowledgeAlarm(id, this.state.token);
      this.state.setAlarms(await api.fetchAlarms());
    } catch (e) {
      message.dataset.outcome = 'refused';
      setText(message, `acknowledge refused${e.status ? ` (${e.status})` : ''}: ${e.message}`);
      this.renderAlarms();
    }
  }
}
