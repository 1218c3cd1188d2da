/**
 * Small pieces the idle, smtp-overhead and planned-move benchmarks share:
 * argument parsing, where results go, which source was measured, a plain-text table.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** bench/results of this tree (dist/bench/lib → ../../../bench/results); BENCH_RESULTS_DIR overrides. */
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ?? path.resolve(__dirname, '..', '..', '..', 'bench', 'results');

export interface BenchArgs {
  /** --quick on the command line, or BENCH_QUICK=1. */
  quick: boolean;
  /** The value after `--name`, if given. */
  value(name: string): string | undefined;
}

export function benchArgs(argv: string[] = process.argv.slice(2)): BenchArgs {
  return {
    quick: argv.includes('--quick') || process.env.BENCH_QUICK === '1',
    value(name: string): string | undefined {
      const i = argv.indexOf(name);
      return i >= 0 ? argv[i + 1] : undefined;
    },
  };
}

function git(args: string[]): string {
  const result = spawnSync('git', args, { cwd: path.resolve(__dirname, '..', '..', '..'), encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : `unknown (${result.stderr.trim()})`;
}

/** What was measured: the commit, and whether lib/ or native/ had uncommitted changes. */
export function gitSource(): { commit: string; libDirty: boolean } {
  return { commit: git(['rev-parse', '--short', 'HEAD']), libDirty: git(['status', '--porcelain', '--', 'lib', 'native']) !== '' };
}

/** Left-aligned columns; a row shorter than the head is printed as it is (an error line). */
export function formatTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.length === head.length ? (r[i] ?? '').length : 0))));
  const line = (cells: string[]): string => (cells.length === head.length ? cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ') : cells.join('  ')).trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** Median of a non-empty list. */
export function median(values: number[]): number {
  if (!values.length) throw new RangeError('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
