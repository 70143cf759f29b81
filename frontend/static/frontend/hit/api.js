// Talking to /api/hit/ (see docs/hit-page.md) and the client-side retry queue for autosave.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    // 408/425/429 and 5xx are worth retrying; any other 4xx will fail again the same way.
    this.transient = status === 0 || status === 408 || status === 425 || status === 429 || status >= 500;
  }
}

export class HitApi {
  constructor(base, batch) {
    this.base = base.endsWith("/") ? base : base + "/";
    this.batch = batch;
    this.token = null;
    this.assignment = null;
    this.secret = null;
  }

  async request(method, path, body) {
    // X-HIT-Page: this page's own script is asking (a link from another site cannot add a header)
    const headers = { Accept: "application/json", "X-HIT-Page": "1" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers["X-HIT-Token"] = this.token;
    if (this.secret) headers["X-HIT-Secret"] = this.secret;
    let response;
    try {
      response = await fetch(this.base + path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, { error: "network unreachable" });  // offline, DNS, connection reset
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // The browser secret binds the assignment to this browser (docs/hit-page.md): issued once by the first session,
  // kept in storage (and an HttpOnly cookie) and shown on every later session; never sent with saves.
  async session(search) {
    const key = `avcrowd.hit.secret.${this.batch}`;
    this.secret = storageGet(key);
    let data;
    try { data = await this.request("GET", `${this.batch}/session${search || ""}`); } finally { this.secret = null; }
    if (data && data.secret) storageSet(key, data.secret);
    return data;
  }

  saveAnswer(videoId, payload) {
    return this.request("PUT", `assignments/${this.assignment}/answers/${encodeURIComponent(videoId)}`, payload);
  }

  savePosition(position) {
    return this.request("PUT", `assignments/${this.assignment}/position`, { position });
  }

  submit(workSeconds) {
    const body = workSeconds ? { work_seconds: Math.round(workSeconds) } : {};
    return this.request("POST", `assignments/${this.assignment}/submit`, body);
  }
}

function storageGet(key) {
  try { return JSON.parse(window.localStorage.getItem(key) || "null"); } catch (err) { return null; }
}

function storageSet(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, JSON.stringify(value));
  } catch (err) { /* storage disabled (some framed contexts): the queue lives in memory only */ }
}

export { storageGet, storageSet };

// Exponential backoff with jitter, 1 s .. 30 s: the delay before retry number `failures` (1, 2, ...).
export function backoffDelay(failures) {
  return Math.min(30000, 1000 * 2 ** (failures - 1)) * (0.8 + 0.4 * Math.random());
}

// Run `fn` until it succeeds, retrying transient failures (network, 408/425/429, 5xx: a database restart, a
// deploy) with the same backoff as the save queue; `onRetry(err, delayMs, attempt)` is told before each wait.
// A permanent error (another 4xx), or a transient one after `attempts` tries, is thrown.
export async function withRetry(fn, { attempts = 6, onRetry = () => {} } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ApiError) || !err.transient || attempt >= attempts) throw err;
      const delay = backoffDelay(attempt);
      onRetry(err, delay, attempt);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

// A queue of pending saves, one slot per key (the latest change of a clip replaces an unsent older one).
// It is persisted in localStorage so that a reload or a crash does not lose unsent answers; failed sends are
// retried with exponential backoff (1 s .. 30 s, jitter), at once when the browser reports it is online again.
export class SaveQueue {
  constructor({ storageKey, send, onChange }) {
    this.storageKey = storageKey;
    this.send = send;             // async (item) => void; throws ApiError
    this.onChange = onChange || (() => {});
    const stored = storageGet(storageKey);
    this.items = (stored && stored.items) || {};
    this.seq = Object.values(this.items).reduce((m, it) => Math.max(m, it.seq), 0);
    this.state = "idle";          // idle | saving | offline | error
    this.error = null;
    this.failures = 0;
    this.running = false;
    this.wake = null;
    this.waiters = [];
    window.addEventListener("online", () => this.poke());
  }

  get size() { return Object.keys(this.items).length; }

  pending() { return Object.entries(this.items).map(([key, it]) => ({ key, ...it })); }

  put(key, kind, data) {
    this.items[key] = { kind, data, seq: ++this.seq };
    this.persist();
    this.kick();
  }

  persist() { storageSet(this.storageKey, this.size ? { items: this.items } : null); }

  setState(state, error = null) {
    this.state = state;
    this.error = error;
    this.onChange(this);
  }

  poke() {
    if (this.wake) this.wake();
    else this.kick();
  }

  // Resolves when everything queued so far has been sent (or dropped after a permanent error).
  flushed() {
    if (!this.size) return Promise.resolve();
    this.poke();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async kick() {
    if (this.running) return;
    this.running = true;
    try {
      while (this.size) {
        const [key, item] = Object.entries(this.items).sort((a, b) => a[1].seq - b[1].seq)[0];
        this.setState("saving");
        try {
          await this.send(item);
          this.failures = 0;
          if (this.items[key] && this.items[key].seq === item.seq) delete this.items[key];
          this.persist();
        } catch (err) {
          if (err instanceof ApiError && !err.transient) {
            // The server refused this save for good (e.g. the assignment was submitted): keep going with the rest.
            if (this.items[key] && this.items[key].seq === item.seq) delete this.items[key];
            this.persist();
            this.setState("error", err);
            continue;
          }
          this.failures += 1;
          this.setState("offline", err);
          const delay = backoffDelay(this.failures);
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, delay);
            this.wake = () => { clearTimeout(timer); resolve(); };
          });
          this.wake = null;
        }
      }
      if (this.state !== "error") this.setState("idle");
    } finally {
      this.running = false;
      if (!this.size) {
        const waiters = this.waiters.splice(0);
        waiters.forEach((resolve) => resolve());
      }
    }
  }
}
