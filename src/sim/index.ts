/** The deterministic simulator: seeded virtual time, network, disks, faults, workloads and checkers. */
export { ALL_CHECKERS, type Checker } from './checkers/index.js';
export { FAULT_PROFILES, faultProfile } from './faults.js';
export type { Figures } from './figures.js';
export type { History, OpRecord, Violation } from './history.js';
export { Prng } from './random.js';
export { replayCommand, runReport, table, violationReport } from './report.js';
export { DEFAULT_SIM, type RunResult, type SimOptions, simulate } from './simulator.js';
export { VirtualTime } from './time.js';
export { WORKLOADS, workloadSpec } from './workload.js';
