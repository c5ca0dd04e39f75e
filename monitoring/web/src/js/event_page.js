// SPDX-License-Identifier: Apache-2.0
// The event display: the calorimeter cells of the sampled accepted event,
// coloured by energy, and the waveforms of its most energetic cells.
import * as api from './api.js';
import { kPalette, StripChart } from './charts.js';
import { byId, el, setText } from './dom.js';

/// MSADC sampling: 12.5 ns per sample.
const kSampleNs = 12.5;
/// Waveforms drawn: the most energetic cells, and the one clicked.
const kWaveforms = 6;
/// Maps, their grid sizes and where they are drawn.
const kMaps = [
  { detector: 'ECAL0', nx: 6, ny: 6, box: 'map-ECAL0' },
  { detector: 'ECAL1', nx: 6, ny: 6, box: 'map-ECAL1' },
  { detector: 'HCAL0', nx: 3, ny: 3, box: 'map-HCAL' },
  { detector: 'HCAL1', nx: 3, ny: 3, box: 'map-HCAL' },
  { detector: 'HCAL2', nx: 3, ny: 3, box: 'map-HCAL' },
  { detector: 'HCAL3', nx: 3, ny: 3, box: 'map-HCAL' },
];
/// The energy scale is logarithmic from this (GeV) to the event's largest.
const kMinScaleGev = 0.01;
/// Colour stops (position in [0, 1], RGB) of the energy scale, dark to bright.
const kStops = [
  [0.0, [33, 37, 102]],
  [0.25, [22, 101, 171]],
  [0.5, [28, 163, 155]],
  [0.75, [152, 200, 68]],
  [1.0, [253, 231, 37]],
];
const kSvg = 'http://www.w3.org/2000/svg';
/// Refetched at most this often while the page is shown.
const kRefreshMs = 1000;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(kSvg, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function colourAt(t) {
  const u = Math.min(1, Math.max(0, t));
  for (let i = 1; i < kStops.length; ++i) {
    const [p1, c1] = kStops[i];
    const [p0, c0] = kStops[i - 1];
    if (u <= p1) {
      const f = (u - p0) / (p1 - p0);
      const c = c0.map((v, k) => Math.round(v + f * (c1[k] - v)));
      return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
    }
  }
  return 'rgb(253, 231, 37)';
}

function cellKey(detector, x, y) {
  return `${detector}:${x}:${y}`;
}

export class EventPage {
  constructor(state) {
    this.state = state;
    this.visible = false;
    this.event = null;
    this.selectedCell = null;
    this.lastFetch = 0;
    this.fetchTimer = null;
    this.chart = new StripChart(byId('waveform-chart'), {
      xLabel: 'time (ns)', yLabel: 'ADC counts', series: [], height: 260, points: false,
    });
    byId('event-refresh').addEventListener('click', () => this.load());
    state.addEventListener('spills', () => {
      if (this.visible) this.scheduleLoad();
    });
    this.renderMaps();
  }

  show() {
    this.visible = true;
    this.load();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.fetchTimer);
    this.fetchTimer = null;
  }

  scheduleLoad() {
    if (this.fetchTimer !== null) return;
    const wait = Math.max(0, this.lastFetch + kRefreshMs - Date.now());
    this.fetchTimer = setTimeout(() => {
      this.fetchTimer = null;
      this.load();
    }, wait);
  }

  async load() {
    this.lastFetch = Date.now();
    let problem = '';
    try {
      this.event = await api.fetchEvent();
    } catch (e) {
      this.event = null;
      problem = `Event not available: ${e.message}`;
    }
    if (this.event) {
      this.renderHeader();
    } else {
      const node = byId('event-header');
      node.classList.add('muted');
      setText(node, problem || 'No event sampled yet.');
    }
    this.renderMaps();
    this.renderWaveforms();
  }

  cells() {
    const cells = Array.isArray(this.event?.cells) ? this.event.cells : [];
    return cells.map((c) => ({
      detector: String(c.detector),
      x: api.toNumber(c.x) ?? 0,
      y: api.toNumber(c.y) ?? 0,
      energy: api.toNumber(api.field(c, 'energy_gev')) ?? 0,
    }));
  }

  renderHeader() {
    const e = this.event;
    if (!e) return;
    const mask = api.toNumber(api.field(e, 'trigger_mask')) ?? 0;
    const lines = api.kLines.filter((_, bit) => (mask >> bit) & 1);
    const particle = api.field(e, 'particle') ?? api.field(e, 'event');
    const node = byId('event-header');
    node.classList.remove('muted');
    setText(node, `run ${e.run ?? '–'} · spill ${e.spill ?? '–'} · event ${e.event ?? '–'} · particle ${particle ?? '–'}` +
      ` · trigger ${lines.length ? lines.join(' + ') : `mask ${mask}`}`);
  }

  renderMaps() {
    const energies = new Map(this.cells().map((c) => [cellKey(c.detector, c.x, c.y), c.energy]));
    const max = Math.max(kMinScaleGev * 10, ...energies.values());
    const scale = (energy) => Math.log(Math.max(energy, kMinScaleGev) / kMinScaleGev) / Math.log(max / kMinScaleGev);
    for (const box of new Set(kMaps.map((m) => m.box))) byId(box).replaceChildren();
    for (const { detector, nx, ny, box } of kMaps) {
      const size = 30;
      const map = svg('svg', {
        viewBox: `0 0 ${nx * size} ${ny * size}`, class: 'map', 'data-detector': detector, role: 'img',
        'aria-label': `${detector} cell energies`,
      });
      for (let x = 0; x < nx; ++x) {
        for (let y = 0; y < ny; ++y) {
          const key = cellKey(detector, x, y);
          const energy = energies.get(key) ?? 0;
          // y grows upwards, as the calorimeter is seen from the beam.
          const rect = svg('rect', {
            x: x * size + 1, y: (ny - 1 - y) * size + 1, width: size - 2, height: size - 2, rx: 2,
            fill: energy > 0 ? colourAt(scale(energy)) : '#e8eaed',
            class: key === this.selectedCell ? 'cell selected' : 'cell',
            'data-cell': key,
            'data-energy': energy,
          }, svg('title', {}, `${detector} cell (${x},${y}): ${energy.toFixed(3)} GeV`));
          rect.addEventListener('click', () => {
            this.selectedCell = key;
            this.renderMaps();
            this.renderWaveforms();
          });
          map.append(rect);
          if (energy >= 0.1) {
            map.append(svg('text', {
              x: x * size + size / 2, y: (ny - 1 - y) * size + size / 2 + 3, class: 'cell-energy',
              fill: scale(energy) > 0.6 ? '#111' : '#fff',
            }, energy >= 10 ? energy.toFixed(0) : energy.toFixed(1)));
          }
        }
      }
      const holder = detector.startsWith('HCAL') ? el('figure', { class: 'hcal-module' }, el('figcaption', {}, detector)) : null;
      if (holder) {
        holder.prepend(map);
        byId(box).append(holder);
      } else {
        byId(box).append(map);
      }
    }
    const legend = byId('energy-scale');
    const stops = kStops.map(([p]) => `${colourAt(p)} ${p * 100}%`).join(', ');
    legend.replaceChildren(
      el('span', {}, `${kMinScaleGev} GeV`),
      el('span', { class: 'bar', style: `background: linear-gradient(to right, ${stops})` }),
      el('span', {}, `${max.toFixed(max < 10 ? 2 : 1)} GeV`));
  }

  renderWaveforms() {
    const waveforms = Array.isArray(this.event?.waveforms) ? this.event.waveforms : [];
    const energies = new Map(this.cells().map((c) => [cellKey(c.detector, c.x, c.y), c.energy]));
    const withKeys = waveforms.map((w) => ({
      key: cellKey(String(w.detector), api.toNumber(w.x) ?? 0, api.toNumber(w.y) ?? 0),
      detector: String(w.detector),
      x: api.toNumber(w.x) ?? 0,
      y: api.toNumber(w.y) ?? 0,
      samples: (Array.isArray(w.samples) ? w.samples : []).map((v) => api.toNumber(v)),
    }));
    withKeys.sort((a, b) => (energies.get(b.key) ?? 0) - (energies.get(a.key) ?? 0));
    let shown = withKeys.slice(0, kWaveforms);
    const selected = withKeys.find((w) => w.key === this.selectedCell);
    if (selected && !shown.includes(selected)) shown = [selected, ...shown.slice(0, kWaveforms - 1)];
    const length = Math.max(0, ...shown.map((w) => w.samples.length));
    const x = Array.from({ length }, (_, i) => i * kSampleNs);
    this.chart.setSeries(
      shown.map((w, i) => ({
        label: `${w.detector} (${w.x},${w.y})`,
        colour: kPalette[i % kPalette.length],
      })),
      x,
      shown.map((w) => x.map((_, i) => w.samples[i] ?? null)));
    setText(byId('waveform-note'), shown.length
      ? `(${shown.length} of ${withKeys.length} cells, most energetic first; click a cell to add it)`
      : '(none in this event)');
  }
}
