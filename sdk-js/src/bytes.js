// Bytes and text at the boundary: the contract's byte fields are
// `Uint8Array`s; the SDK accepts a string wherever bytes go in and encodes
// it as UTF-8.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** `value` as bytes: a string is encoded as UTF-8; a Uint8Array is kept. */
export function toBytes(value, what) {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`${what} must be a string or a Uint8Array, got ${describe(value)}`);
}

/** `bytes` as UTF-8 text, or `undefined` if they are not valid UTF-8. */
export function toText(bytes) {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A short description of a value for error messages. */
export function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return value.constructor ? `a ${value.constructor.name}` : 'an object';
  return `${typeof value} ${String(value).slice(0, 40)}`;
}
