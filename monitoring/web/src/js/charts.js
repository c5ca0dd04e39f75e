// SPDX-License-Identifier: Apache-2.0
// Strip charts drawn with uPlot: per-spill series against the spill number,
// and waveforms against time.
import uPlot from '../vendor/uplot/uPlot.esm.js';

/// Colours of the trigger lines and of the other series, in series order.
export const kLineColours = { invisible: '#c0392b', beam: '#2471a3', random: '#229954' };
export const kPalette = ['#c0392b', '#2471a3', '#229954', '#b9770e', '#7d3c98', '#17a589', '#616a6b', '#d35400'];

const kHeight = 220;

/// One uPlot chart in a container. It is created when the container first has
/// a width (a page that is shown) and follows the container's size.
export class StripChart {
  /// `series`: [{label, colour, dash}] for the y columns; `xLabel` and
  /// `yLabel` the axis titles; `xTime` false for numbers (spills, samples).
  constructor(container, { title, xLabel, yLabel, series, height = kHeight, points = true }) {
    this.container = container;
    this.options = { title, xLabel, yLabel, series, height, points };
    this.data = [[], ...series.map(() => [])];
    this.plot = null;
    this.observer = new ResizeObserver(() => this.fit());
    this.observer.observe(container);
  }

  /// Replaces the data: `x` the abscissae, `ys` one array per series.
  setData(x, ys) {
    this.data = [x, ...ys];
    if (this.plot) {
      this.plot.setData(this.data);
    } else {
      this.fit();
    }
  }

  /// Replaces the series (their number may change) and the data.
  setSeries(series, x, ys) {
    this.options.series = series;
    this.data = [x, ...ys];
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    this.fit();
  }

  fit() {
    const width = this.container.clientWidth;
    if (width === 0) return;
    if (!this.plot) {
      this.plot = new uPlot(this.makeOptions(width), this.data, this.container);
    } else if (Math.abs(this.plot.width - width) > 1) {
      this.plot.setSize({ width, height: this.options.height });
    }
  }

  makeOptions(width) {
    const { title, xLabel, yLabel, series, height, points } = this.options;
    return {
      title,
      width,
      height,
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, { label: yLabel, size: 60 }],
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: xLabel },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.colour,
          width: 1.5,
          dash: s.dash,
          points: { show: points, size: 4 },
        })),
      ],
    };
  }
}
