/** The deterministic core: pure protocol logic, with time, timers and storage handed in. */
export * from './backoff.js';
export * from './change.js';
export * from './collection.js';
export * from './crdt.js';
export * from './errors.js';
export * from './geo.js';
export * from './health.js';
export * from './hlc.js';
export * from './ports.js';
export * from './random.js';
export * from './region.js';
export * from './store.js';
export * from './types.js';
export * from './version.js';
