/** The replication driver: one implementation, run by the region node (over HTTP) and the simulator. */
export * from './acks.js';
export * from './driver.js';
export * from './feed.js';
export * from './link.js';
export * from './protocol.js';
export * from './transport.js';
