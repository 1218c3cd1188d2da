/**
 * The ports the runtime's driver runs its effects through. createCluster wires
 * the real ones (the addon, the process clock); tests and the simulation wire
 * fakes that record what was done.
 */
import { performance } from 'node:perf_hooks';
import * as net from '../net';

/** The addon's functions the runtime uses (typed from lib/net). */
export type NetPort = Pick<
  typeof net,
  'interfaces' | 'addAddress' | 'removeAddress' | 'probeMany' | 'announce' | 'arpAllHosts' | 'watch' | 'sniff' | 'neighbours' | 'tcpSockets' | 'destroyTcpSockets'
>;

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Milliseconds since the epoch (orders operator moves across nodes). */
  wall(): number;
  /** Runs `fn` after `ms`; the timer never keeps the process alive. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` once the current turn of the event loop ends (after pending I/O callbacks). */
  soon(fn: () => void): void;
  sleep(ms: number): Promise<void>;
}

export const realNet: NetPort = net;

export const realClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  wall: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  soon: (fn) => void setImmediate(fn),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};
