// JSON helpers: read, write and remove fields by dotted path
// ("user.address.city"; a numeric segment indexes an array when reading or
// removing: "items.0.sku"). Mirrors the Rust SDK's `json` module.

/** A path could not be written. */
export class PathError extends Error {
  constructor(path, at) {
    super(
      at === ''
        ? `cannot set \`${path}\`: the value is not an object`
        : `cannot set \`${path}\`: \`${at}\` is not an object`,
    );
    this.name = 'PathError';
    this.path = path;
    this.at = at;
  }
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

function index(segment, length) {
  if (!/^\d+$/.test(segment)) return undefined;
  const i = Number(segment);
  return i < length ? i : undefined;
}

function step(v, segment) {
  if (isObject(v)) return has(v, segment) ? v[segment] : undefined;
  if (Array.isArray(v)) {
    const i = index(segment, v.length);
    return i === undefined ? undefined : v[i];
  }
  return undefined;
}

/** The value at `path`, or `undefined` if a step is missing. */
export function get(value, path) {
  let cur = value;
  for (const segment of path.split('.')) {
    cur = step(cur, segment);
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** The string at `path`, if there is one and it is a string. */
export function getString(value, path) {
  const v = get(value, path);
  return typeof v === 'string' ? v : undefined;
}

/**
 * Set `path` to `newValue`, creating missing intermediate objects. Throws a
 * PathError if a step on the way exists and is not an object.
 */
export function set(value, path, newValue) {
  const segments = path.split('.');
  const last = segments.pop();
  let cur = value;
  let walked = '';
  for (const segment of segments) {
    if (!isObject(cur)) throw new PathError(path, walked);
    if (!has(cur, segment)) cur[segment] = {};
    cur = cur[segment];
    walked = walked === '' ? segment : `${walked}.${segment}`;
  }
  if (!isObject(cur)) throw new PathError(path, walked);
  cur[last] = newValue;
}

/** Remove the field at `path` and return it (`undefined` if there was none). */
export function remove(value, path) {
  const cut = path.lastIndexOf('.');
  const parent = cut < 0 ? value : get(value, path.slice(0, cut));
  const last = cut < 0 ? path : path.slice(cut + 1);
  if (isObject(parent)) {
    if (!has(parent, last)) return undefined;
    const removed = parent[last];
    delete parent[last];
    return removed;
  }
  if (Array.isArray(parent)) {
    const i = index(last, parent.length);
    return i === undefined ? undefined : parent.splice(i, 1)[0];
  }
  return undefined;
}

/**
 * Move the field at `from` to `to` (creating objects on the way). Returns
 * whether there was a field to move.
 */
export function rename(value, from, to) {
  const moved = remove(value, from);
  if (moved === undefined) return false;
  set(value, to, moved);
  return true;
}

/**
 * A value as text for comparisons with config strings: a string is its
 * content, anything else its JSON text (`42`, `true`, `null`, `{"a":1}`).
 */
export function toText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
