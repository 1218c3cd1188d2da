/**
 * CPU time and memory of a process from /proc, for the idle-cost benchmark.
 * Namespaces in the lab are network-only, so every lab process is visible in
 * this /proc under its own pid.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Clock ticks per second of utime/stime in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
export const CLOCK_TICKS: number = (() => {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(result.stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
})();

export interface ProcSample {
  /** performance-independent wall clock of the sample (Date.now()). */
  wallMs: number;
  /** User + system CPU time so far, in ms. */
  cpuMs: number;
  /** Resident set size, bytes. */
  rssBytes: number;
}

/** One reading of `pid`'s CPU time and RSS; throws when the process is gone. */
export function sampleProcess(pid: number): ProcSample {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are at 11 and 12 counted from field 3.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  return { wallMs: Date.now(), cpuMs: (ticks * 1000) / CLOCK_TICKS, rssBytes: rssKb * 1024 };
}

/** Direct children of `pid` (from /proc/<pid>/task/<pid>/children). */
export function childrenOf(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export interface UsageSummary {
  seconds: number;
  /** CPU time over the window as a percentage of one core. */
  cpuPercentOfCore: number;
  /** Highest one-interval CPU percentage seen. */
  cpuPercentMaxInterval: number;
  rssMiBMean: number;
  rssMiBMax: number;
  rssMiBEnd: number;
}

/** Summarises consecutive samples of one process (at least two). */
export function summarize(samples: ProcSample[]): UsageSummary {
  if (samples.length < 2) throw new RangeError('summarize: need at least two samples');
  const first = samples[0] as ProcSample;
  const last = samples[samples.length - 1] as ProcSample;
  const pct = (a: ProcSample, b: ProcSample): number => ((b.cpuMs - a.cpuMs) / Math.max(1, b.wallMs - a.wallMs)) * 100;
  let maxInterval = 0;
  for (let i = 1; i < samples.length; i++) maxInterval = Math.max(maxInterval, pct(samples[i - 1] as ProcSample, samples[i] as ProcSample));
  const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
  const round2 = (v: number): number => Math.round(v * 100) / 100;
  return {
    seconds: round2((last.wallMs - first.wallMs) / 1000),
    cpuPercentOfCore: round2(pct(first, last)),
    cpuPercentMaxInterval: round2(maxInterval),
    rssMiBMean: mib(samples.reduce((sum, s) => sum + s.rssBytes, 0) / samples.length),
    rssMiBMax: mib(Math.max(...samples.map((s) => s.rssBytes))),
    rssMiBEnd: mib(last.rssBytes),
  };
}
