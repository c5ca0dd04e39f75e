// SPDX-License-Identifier: Apache-2.0
// Small DOM and formatting helpers shared by the pages.

/// An element with attributes and children. Attributes starting with "on"
/// take a listener; `dataset` an object; other values are set as attributes,
/// false and null ones are left out. Children are nodes or text.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) {
      node.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no element #${id}`);
  return node;
}

/// Sets a text node's content only when it changes, so that a status pushed
/// every second does not disturb a selection or repaint needlessly.
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

/// An integer with thin-space thousands separators; "–" for none.
export function formatCount(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  return Math.round(n).toLocaleString('en-GB').replaceAll(',', '\u2009');
}

/// Bytes in binary units: "12.3 GiB".
export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    ++unit;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/// A fraction in [0, 1] as a percentage.
export function formatPercent(fraction, digits = 1) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return '–';
  return `${(fraction * 100).toFixed(digits)} %`;
}

/// A time the daemon sends (Unix ms or s as a number or a decimal string, or
/// an ISO 8601 string) as local "HH:MM:SS", with the date when not today.
export function formatTime(value) {
  if (value === null || value === undefined || value === '' || value === 0 || value === '0') return '–';
  let date;
  const n = Number(value);
  if (Number.isFinite(n)) {
    date = new Date(n > 1e11 ? n : n * 1000);
  } else {
    date = new Date(String(value));
  }
  if (Number.isNaN(date.getTime())) return String(value);
  const time = date.toLocaleTimeString('en-GB', { hour12: false });
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return time;
  return `${date.toISOString().slice(0, 10)} ${time}`;
}
