// Types of `@weir/sdk/log` (also `log` of `@weir/sdk`).
import type { Level } from './index.js';

export function write(level: Level, message: string): void;
export function trace(message: string): void;
export function debug(message: string): void;
export function info(message: string): void;
export function warn(message: string): void;
export function error(message: string): void;
/** The lines logged natively since the last call. */
export function takeCaptured(): Array<[Level, string]>;
/** Route lines to the host import; the build's entry wrapper calls it. */
export function connectHost(log: (level: Level, message: string) => void): void;
