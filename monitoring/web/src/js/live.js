// SPDX-License-Identifier: Apache-2.0
// The live connection to the daemon's WebSocket (/ws): reconnects on its own
// after a daemon restart, and tells when it is up and when it is down.

/// Reconnection delays: doubling from the first, never above the last, so
/// that a restarted daemon is seen within a second of listening again.
const kFirstRetryMs = 100;
const kMaxRetryMs = 1000;
/// The daemon pushes a status at least every second: a socket silent for this
/// long is taken for dead (a half-open connection after a network fault)
/// and replaced.
const kSilenceMs = 3500;

/// Thread safety: none needed, everything runs on the page's event loop.
export class LiveConnection {
  /// `url`: the ws:// or wss:// address. Callbacks: up() when connected,
  /// message(obj) for every JSON message, down() when the connection is lost
  /// or an attempt fails.
  constructor(url, { up, message, down }) {
    this.url = url;
    this.callbacks = { up, message, down };
    this.socket = null;
    this.retryMs = kFirstRetryMs;
    this.retryTimer = null;
    this.silenceTimer = null;
    this.open = false;
  }

  start() {
    this.connect();
  }

  connect() {
    this.retryTimer = null;
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => this.handleOpen(socket));
    socket.addEventListener('message', (e) => this.handleMessage(socket, e));
    socket.addEventListener('close', () => this.handleClose(socket));
    // An error is always followed by close, where it is handled.
    socket.addEventListener('error', () => {});
  }

  handleOpen(socket) {
    if (socket !== this.socket) return;
    this.open = true;
    this.retryMs = kFirstRetryMs;
    this.armSilence();
    this.callbacks.up();
  }

  handleMessage(socket, event) {
    if (socket !== this.socket) return;
    this.armSilence();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;  // not ours to read; the next status follows within a second
    }
    if (message && typeof message === 'object') this.callbacks.message(message);
  }

  handleClose(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    clearTimeout(this.silenceTimer);
    this.open = false;
    this.callbacks.down();
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, kMaxRetryMs);
  }

  armSilence() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      const socket = this.socket;
      if (!socket) return;
      // close() would wait for the dead peer's closing handshake: drop the
      // socket at once and connect anew.
      this.handleClose(socket);
      socket.close();
    }, kSilenceMs);
  }
}
