// The plugin's configuration: the `key = "value"` strings of its entry in
// the host's config (or `--config key=value` of `weir plugin test`), with
// typed getters whose errors name the key and what was wrong. Mirrors the
// Rust SDK's `Config` (sdk/src/config.rs), messages included.

/** A configuration value that could not be used. */
export class ConfigError extends Error {
  constructor(key, problem) {
    super(`config \`${key}\`: ${problem}`);
    this.name = 'ConfigError';
    this.key = key;
    this.problem = problem;
  }
}

/** Split a comma-separated list, trimming items and skipping empty ones. */
export function splitList(text) {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function parseBool(text) {
  switch (text.trim().toLowerCase()) {
    case 'true':
    case 'yes':
    case 'on':
    case '1':
      return true;
    case 'false':
    case 'no':
    case 'off':
    case '0':
      return false;
    default:
      throw new Error(`expected true or false, got ${JSON.stringify(text)}`);
  }
}

function parseNumber(text, integer) {
  const t = text.trim();
  const n = t === '' ? NaN : Number(t);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`expected ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** The configuration handed to the plugin's `init`. */
export class Config {
  /** A config from `[key, value]` pairs (or an object); a later duplicate key wins. */
  constructor(pairs = []) {
    /** @type {Map<string, string>} */
    this._map = new Map();
    const list = Array.isArray(pairs) ? pairs : Object.entries(pairs);
    for (const [k, v] of list) {
      this._map.set(String(k), String(v));
    }
  }

  /** The raw value of `key`, or `undefined`. */
  get(key) {
    return this._map.get(key);
  }

  /** Whether `key` is set. */
  contains(key) {
    return this._map.has(key);
  }

  /** The raw value of `key`; throws a ConfigError if it is not set. */
  required(key) {
    const v = this._map.get(key);
    if (v === undefined) throw new ConfigError(key, 'required but not set');
    return v;
  }

  /** The raw value of `key`, or `fallback` if not set. */
  string(key, fallback) {
    const v = this._map.get(key);
    return v === undefined ? fallback : v;
  }

  _parsed(key, fallback, parse) {
    const v = this._map.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw new ConfigError(key, 'required but not set');
      return fallback;
    }
    try {
      return parse(v);
    } catch (e) {
      throw new ConfigError(key, e.message);
    }
  }

  /** `key` as a number; `fallback` if not set (required when no fallback). */
  number(key, fallback) {
    return this._parsed(key, fallback, (v) => parseNumber(v, false));
  }

  /** `key` as an integer; `fallback` if not set (required when no fallback). */
  integer(key, fallback) {
    return this._parsed(key, fallback, (v) => parseNumber(v, true));
  }

  /** `key` as a boolean (`true/false/yes/no/on/off/1/0`); `fallback` if not set. */
  bool(key, fallback) {
    return this._parsed(key, fallback, parseBool);
  }

  /** `key` as a comma-separated list of strings; empty if not set. */
  list(key) {
    const v = this._map.get(key);
    return v === undefined ? [] : splitList(v);
  }

  /** `key` as one of `choices`, `fallback` if not set. */
  choice(key, choices, fallback) {
    const v = this._map.get(key);
    if (v === undefined) return fallback;
    if (!choices.includes(v)) {
      throw new ConfigError(key, `expected one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** The `[rest, value]` entries whose key starts with `prefix`, prefix removed, in order. */
  withPrefix(prefix) {
    const out = [];
    for (const [k, v] of this._map) {
      if (k.startsWith(prefix)) out.push([k.slice(prefix.length), v]);
    }
    return out;
  }

  /** All `[key, value]` entries, in the order they were given. */
  entries() {
    return [...this._map];
  }

  /** Whether no key is set. */
  isEmpty() {
    return this._map.size === 0;
  }

  /**
   * Refuse keys that are neither in `known` nor start with one of
   * `prefixes`, so a typo is reported instead of silently ignored.
   */
  denyUnknown(known, prefixes = []) {
    for (const key of this._map.keys()) {
      const ok =
        known.includes(key) || prefixes.some((p) => key.startsWith(p) && key.length > p.length);
      if (!ok) {
        const all = [...known, ...prefixes.map((p) => `${p}*`)];
        throw new ConfigError(key, `unknown key (known: ${all.join(', ')})`);
      }
    }
  }
}
