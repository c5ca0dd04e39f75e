// SPDX-License-Identifier: Apache-2.0
// The trigger page: accepted events per line and spill over the run, the
// threshold sets in force, and the shadow set's counts against the active's.
import * as api from './api.js';
import { kLineColours, StripChart } from './charts.js';
import { byId, el, formatCount, formatPercent, setText } from './dom.js';

/// Threshold fields as the trigger experts name them, with units.
const kThresholdLabels = {
  ecal_max_gev: 'ECAL0 + ECAL1 max (GeV)',
  preshower_min_gev: 'preshower min (GeV)',
  hcal_max_gev: 'HCAL max (GeV)',
  srd_min_gev: 'SRD min (GeV)',
  srd_max_gev: 'SRD max (GeV)',
  veto_max_gev: 'veto max (GeV)',
  beam_prescale: 'beam prescale (events)',
  random_period: 'random period (particles)',
};

/// Rows of the spill table: the newest spills of the run.
const kTableRows = 500;

function verdictCell(spill) {
  if (!spill.verdict) return el('td', { class: 'verdict muted' }, '–');
  return el('td', { class: 'verdict', dataset: { verdict: spill.verdict }, title: spill.reasons.join('\n') },
    spill.verdict);
}

export class TriggerPage {
  constructor(state) {
    this.state = state;
    this.visible = false;
    this.dirty = { spills: true, thresholds: true };
    this.rateChart = new StripChart(byId('rate-chart'), {
      xLabel: 'spill',
      yLabel: 'accepted events',
      series: api.kLines.map((line) => ({ label: line, colour: kLineColours[line] })),
    });
    this.shadowChart = new StripChart(byId('shadow-chart'), {
      xLabel: 'spill',
      yLabel: 'events',
      series: [
        { label: 'active set', colour: '#2471a3' },
        { label: 'shadow set', colour: '#c0392b', dash: [6, 3] },
        { label: 'both', colour: '#7d3c98', dash: [2, 2] },
      ],
    });
    this.shadowLine = byId('shadow-line');
    for (const line of api.kLines) this.shadowLine.append(el('option', { value: line }, line));
    this.shadowLine.addEventListener('change', () => this.renderShadow());

    state.addEventListener('spills', () => this.invalidate('spills'));
    state.addEventListener('thresholds', () => this.invalidate('thresholds'));
  }

  show() {
    this.visible = true;
    this.render();
  }

  hide() {
    this.visible = false;
  }

  invalidate(what) {
    this.dirty[what] = true;
    if (this.visible) this.render();
  }

  render() {
    if (this.dirty.spills) {
      this.dirty.spills = false;
      this.renderRates();
      this.renderShadow();
      this.renderTable();
    }
    if (this.dirty.thresholds) {
      this.dirty.thresholds = false;
      this.renderThresholds();
    }
  }

  renderRates() {
    const spills = this.state.spills;
    this.rateChart.setData(spills.map((s) => s.spill), api.kLines.map((line) => spills.map((s) => s.accepted[line])));
  }

  renderShadow() {
    const line = this.shadowLine.value || api.kLines[0];
    const spills = this.state.spills;
    const withShadow = (s, counts) => (s.shadowSet && counts ? counts[line] : null);
    this.shadowChart.setData(spills.map((s) => s.spill), [
      spills.map((s) => s.accepted[line]),
      spills.map((s) => withShadow(s, s.shadowAccepted)),
      spills.map((s) => withShadow(s, s.shadowOverlap)),
    ]);
  }

  renderTable() {
    const spills = this.state.spills.slice(-kTableRows).reverse();
    const body = byId('spill-table').tBodies[0];
    body.replaceChildren(...spills.map((s) => {
      const shadow = s.shadowSet && s.shadowAccepted
        ? api.kLines.map((line) => formatCount(s.shadowAccepted[line])).join(' / ')
        : '–';
      return el('tr', { dataset: { spill: String(s.spill) } },
        el('td', {}, String(s.spill)),
        el('td', { class: 'particles' }, formatCount(s.particles)),
        ...api.kLines.map((line) => el('td', { class: `line-${line}` }, formatCount(s.accepted[line]))),
        el('td', { class: 'written' }, formatCount(s.written)),
        el('td', {}, formatCount(s.incomplete)),
        el('td', {}, formatPercent(s.deadTime)),
        el('td', {}, s.thresholdSet ? String(s.thresholdSet) : '–'),
        el('td', {}, s.shadowSet ? String(s.shadowSet) : '–'),
        el('td', {}, shadow),
        verdictCell(s));
    }));
    byId('spill-table-empty').hidden = spills.length !== 0;
  }

  renderThresholds() {
    const t = this.state.thresholds;
    const body = byId('threshold-table').tBodies[0];
    const note = byId('threshold-note');
    if (!t) {
      body.replaceChildren();
      setText(note, 'Threshold sets not loaded.');
      return;
    }
    const active = t.sets.get(t.activeId);
    const shadow = t.shadowId ? t.sets.get(t.shadowId) : null;
    setText(byId('threshold-active-head'), `active (set ${t.activeId || '–'})`);
    setText(byId('threshold-shadow-head'), shadow ? `shadow (set ${t.shadowId})` : 'shadow (none)');
    const names = new Set([...Object.keys(kThresholdLabels), ...Object.keys(active?.thresholds ?? {})]);
    body.replaceChildren(...[...names].filter((n) => active?.thresholds[n] !== undefined || shadow?.thresholds[n] !== undefined)
      .map((name) => {
        const a = active?.thresholds[name];
        const b = shadow?.thresholds[name];
        const differs = shadow && a !== b;
        return el('tr', { dataset: { threshold: name }, class: differs ? 'differs' : false },
          el('th', {}, kThresholdLabels[name] ?? name),
          el('td', { class: 'active' }, a ?? '–'),
          el('td', { class: 'shadow' }, shadow ? (b ?? '–') : ''));
      }));
    const notes = [];
    if (active && active.comment) notes.push(`Set ${active.id}: ${active.comment} (${active.author}).`);
    if (shadow && shadow.comment) notes.push(`Shadow set ${shadow.id}: ${shadow.comment} (${shadow.author}).`);
    if (t.pendingId) notes.push(`Set ${t.pendingId} takes effect at the next spill.`);
    if (t.pendingShadowId) notes.push(`Shadow set ${t.pendingShadowId} from the next spill.`);
    setText(note, notes.join(' '));
  }
}
