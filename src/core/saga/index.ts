/** Sagas: the engine, its retry policy, and the lab's accounts (with their router) and transfer saga. */
export * from './accounts.js';
export * from './engine.js';
export * from './retry.js';
export * from './router.js';
export * from './start.js';
export * from './transfer.js';
export * from './types.js';
