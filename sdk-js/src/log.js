// Logging through the host: `log.info("...")` writes a line to the host's
// log, tagged with the plugin's name (the `weir:transform/host` import). The
// host rate-limits plugin logs, so do not log per event on a hot path.
//
// Inside a component the build's entry wrapper connects these functions to
// the host import (`connectHost`). Natively (unit tests) lines are kept in
// memory, readable with `takeCaptured()`, and echoed to stderr.

/** @type {((level: string, message: string) => void) | null} */
let hostLog = null;
/** @type {Array<[string, string]>} */
let captured = [];

/** Route log lines to the host's `log` import. Called by the component's entry. */
export function connectHost(log) {
  hostLog = log;
}

/** Write one line at `level` (`trace`, `debug`, `info`, `warn`, `error`). */
export function write(level, message) {
  const text = String(message);
  if (hostLog !== null) {
    hostLog(level, text);
    return;
  }
  captured.push([level, text]);
  if (typeof process !== 'undefined' && process.stderr) {
    process.stderr.write(`[plugin ${level}] ${text}\n`);
  }
}

export const trace = (message) => write('trace', message);
export const debug = (message) => write('debug', message);
export const info = (message) => write('info', message);
export const warn = (message) => write('warn', message);
export const error = (message) => write('error', message);

/** The lines logged since the last call, as `[level, message]` (native only). */
export function takeCaptured() {
  const lines = captured;
  captured = [];
  return lines;
}
