/** What the lab needs from the WAN emulator: one delayed, cuttable TCP proxy per directed link. */

export interface WanLinkState {
  from: string;
  to: string;
  oneWayMs: number;
  cut: boolean;
}

export interface WanControl {
  /** Cuts (partitions) or restores traffic on from -> to; open connections are dropped on a cut. */
  setCut(from: string, to: string, cut: boolean): void;
  setDelay(from: string, to: string, oneWayMs: number): void;
  links(): WanLinkState[];
  close(): Promise<void>;
}
