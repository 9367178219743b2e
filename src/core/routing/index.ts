/** Routing of the edge: policies, the per-region health table, and the per-request state machine. */
export * from './attempt.js';
export * from './edge-request.js';
export * from './policy.js';
export * from './request.js';
export * from './table.js';
