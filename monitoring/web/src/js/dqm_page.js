// SPDX-License-Identifier: Apache-2.0
// The DQM page: each spill's verdict with its reasons, and the histograms
// drawn by JSROOT as ROOT draws them, with the reference overlaid.
import * as api from './api.js';
import { byId, el, setText } from './dom.js';

/// The histograms shown first, when the daemon publishes them: what the shift
/// checks at a glance. The others are one click away.
const kShiftSet = ['ecal_energy', 'hcal_energy', 'ecal_vs_hcal', 'ecal1_energy_map', 'preshower_energy',
  'srd0_energy'];
const kMaxShown = 6;
/// Spills whose verdicts are listed.
const kVerdictRows = 12;
/// Histograms are redrawn at most this often while the page is shown.
const kRedrawMs = 2000;
/// ROOT colours: kRed for the reference, drawn dashed.
const kReferenceColour = 2;
const kReferenceLineStyle = 2;

function jsroot() {
  const J = globalThis.JSROOT;
  if (!J || !J.TH1Painter) throw new Error('JSROOT did not load');
  return J;
}

function is2d(histogram) {
  return typeof histogram._typename === 'string' && histogram._typename.startsWith('TH2');
}

/// Sum of a TH1's in-range bins (cells 1 .. n of fArray).
function inRangeSum(histogram) {
  const n = histogram.fXaxis?.fNbins ?? 0;
  let sum = 0;
  for (let i = 1; i <= n; ++i) sum += histogram.fArray[i] ?? 0;
  return sum;
}

/// The reference scaled to the spill's in-range sum, so that shapes compare.
function scaledReference(reference, histogram) {
  const target = inRangeSum(histogram);
  const own = inRangeSum(reference);
  const scale = own > 0 && target > 0 ? target / own : 1;
  reference.fArray = reference.fArray.map((v) => v * scale);
  if (Array.isArray(reference.fSumw2) && reference.fSumw2.length) {
    reference.fSumw2 = reference.fSumw2.map((v) => v * scale * scale);
  }
  reference.fEntries *= scale;
  reference.fLineColor = kReferenceColour;
  reference.fLineStyle = kReferenceLineStyle;
  reference.fLineWidth = 2;
  reference.fName = `${reference.fName}_reference`;
  reference.fTitle = 'reference';
  return reference;
}

export class DqmPage {
  constructor(state) {
    this.state = state;
    this.visible = false;
    this.names = null;      // the daemon's list, once fetched
    this.selected = [];     // names drawn, in order
    this.drawing = false;
    this.redrawTimer = null;
    this.lastDraw = 0;
    this.scope = byId('dqm-scope');
    this.overlay = byId('dqm-reference');
    this.scope.addEventListener('change', () => this.scheduleDraw(true));
    this.overlay.addEventListener('change', () => this.scheduleDraw(true));
    state.addEventListener('spills', () => {
      if (this.visible) {
        this.renderVerdicts();
        this.scheduleDraw(false);
      }
    });
  }

  show() {
    this.visible = true;
    this.renderVerdicts();
    if (this.names === null) {
      this.loadNames();
    } else {
      this.scheduleDraw(true);
    }
  }

  hide() {
    this.visible = false;
    clearTimeout(this.redrawTimer);
    this.redrawTimer = null;
  }

  renderVerdicts() {
    const judged = this.state.spills.filter((s) => s.verdict);
    const strip = byId('verdict-strip');
    strip.replaceChildren(...judged.slice(-200).map((s) => el('span', {
      class: 'verdict-box',
      dataset: { verdict: s.verdict, spill: String(s.spill) },
      title: `spill ${s.spill}: ${s.verdict}${s.reasons.length ? `\n${s.reasons.join('\n')}` : ''}`,
    })));
    const body = byId('verdict-table').tBodies[0];
    body.replaceChildren(...judged.slice(-kVerdictRows).reverse().map((s) => el('tr', {
      dataset: { verdict: s.verdict, spill: String(s.spill) },
    },
    el('td', {}, String(s.spill)),
    el('td', {}, el('span', { class: 'verdict-label' }, s.verdict)),
    el('td', { class: 'reasons' }, s.reasons.length ? el('ul', {}, s.reasons.map((r) => el('li', {}, r))) : '–'))));
    byId('verdict-empty').hidden = judged.length !== 0;
  }

  async loadNames() {
    const message = byId('dqm-message');
    try {
      this.names = await api.fetchDqmList();
    } catch (e) {
      this.names = null;
      setText(message, `Histogram list not available: ${e.message}`);
      return;
    }
    const preferred = kShiftSet.filter((n) => this.names.includes(n));
    this.selected = (preferred.length ? preferred : this.names).slice(0, kMaxShown);
    this.renderNames();
    setText(message, this.names.length ? '' : 'The daemon publishes no histograms yet.');
    this.scheduleDraw(true);
  }

  renderNames() {
    const box = byId('dqm-names');
    box.replaceChildren(...this.names.map((name) => el('button', {
      type: 'button',
      class: 'small name',
      'aria-pressed': String(this.selected.includes(name)),
      dataset: { histogram: name },
      onclick: () => this.toggle(name),
    }, name)));
  }

  toggle(name) {
    if (this.selected.includes(name)) {
      this.selected = this.selected.filter((n) => n !== name);
    } else {
      this.selected = [name, ...this.selected].slice(0, kMaxShown);
    }
    this.renderNames();
    this.scheduleDraw(true);
  }

  /// Draws now if forced or if the last draw is old enough, otherwise once the
  /// redraw period has passed.
  scheduleDraw(force) {
    if (!this.visible || this.names === null) return;
    if (this.redrawTimer !== null && !force) return;
    clearTimeout(this.redrawTimer);
    const wait = force ? 0 : Math.max(0, this.lastDraw + kRedrawMs - Date.now());
    this.redrawTimer = setTimeout(() => {
      this.redrawTimer = null;
      this.draw();
    }, wait);
  }

  async draw() {
    if (this.drawing) {
      this.scheduleDraw(false);
      return;
    }
    // The last spill whose summary arrived: its histograms are published with
    // it, whereas the status may already count a spill still being closed.
    const spill = this.scope.value === 'run' ? null : (this.state.lastSpill()?.spill ?? 0);
    const overlay = this.overlay.checked;
    if (spill === 0) {
      setText(byId('dqm-info'), 'no spill yet');
      return;
    }
    this.drawing = true;
    this.lastDraw = Date.now();
    try {
      await this.drawPads(spill, overlay);
      setText(byId('dqm-info'), spill === null ? `run ${this.state.status?.run ?? ''}` : `spill ${spill}`);
      setText(byId('dqm-message'), '');
    } catch (e) {
      setText(byId('dqm-message'), `Histograms not drawn: ${e.message}`);
    } finally {
      this.drawing = false;
    }
  }

  async drawPads(spill, overlay) {
    const J = jsroot();
    const grid = byId('dqm-grid');
    // Pads are kept per histogram name so that a redraw replaces the drawing
    // in place and the page does not jump.
    const pads = new Map([...grid.children].map((pad) => [pad.dataset.histogram, pad]));
    for (const [name, pad] of pads) {
      if (!this.selected.includes(name)) {
        J.cleanup(pad.querySelector('.pad'));
        pad.remove();
      }
    }
    for (const name of this.selected) {
      let pad = pads.get(name);
      if (!pad) {
        pad = el('figure', { class: 'dqm-pad', dataset: { histogram: name } },
          el('div', { class: 'pad' }), el('figcaption', { class: 'muted' }));
      }
      grid.append(pad);  // keeps the selection's order
    }
    await Promise.all(this.selected.map((name) => this.drawOne(J, name, spill, overlay,
      grid.querySelector(`figure[data-histogram="${CSS.escape(name)}"]`))));
  }

  async drawOne(J, name, spill, overlay, figure) {
    const pad = figure.querySelector('.pad');
    const caption = figure.querySelector('figcaption');
    let histogram;
    try {
      histogram = J.parse(await api.fetchHistogram(name, spill));
    } catch (e) {
      J.cleanup(pad);
      pad.replaceChildren(el('p', { class: 'muted' }, `${name}: ${e.message}`));
      setText(caption, '');
      return;
    }
    let reference = null;
    let referenceNote = '';
    if (overlay && !is2d(histogram)) {
      try {
        const text = await api.fetchReference(name);
        const parsed = text === null ? null : J.parse(text);
        if (parsed) {
          reference = scaledReference(parsed, histogram);
        } else {
          referenceNote = 'no reference yet';
        }
      } catch (e) {
        referenceNote = `reference: ${e.message}`;
      }
    } else if (overlay) {
      referenceNote = '2D: no overlay';
    }
    J.cleanup(pad);
    pad.replaceChildren();
    if (is2d(histogram)) {
      await J.TH2Painter.draw(pad, histogram, 'colz');
    } else {
      await J.TH1Painter.draw(pad, histogram, 'hist');
      if (reference) await J.TH1Painter.draw(pad, reference, 'same hist');
    }
    figure.dataset.drawn = 'true';
    setText(caption, `${name}${reference ? ' — reference dashed red, scaled to the same area' : ''}` +
      `${referenceNote ? ` (${referenceNote})` : ''}`);
  }
}
