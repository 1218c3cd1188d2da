/**
 * Rewrites the failover table in README.md between
 * `<!-- failover-table:start -->` and `<!-- failover-table:end -->`, so the
 * README's claims are always the last full benchmark run, with its date and
 * machine. A README without the markers is left alone.
 */
import * as fs from 'node:fs';

interface Row {
  name: string;
  skipped?: string;
  error?: string;
  failed?: number;
  trials?: unknown[];
  failover?: { p50: number; p95: number; p99: number; max: number } | null;
}

const START = '<!-- failover-table:start -->';
const END = '<!-- failover-table:end -->';

function ms(v: number | undefined): string {
  return v === undefined ? '-' : String(Math.round(v));
}

/** The markdown table for a failover result. */
export function failoverMarkdown(result: { date: string; machine: { cpus: number; kernel: string; node: string }; trialsPerSystem: number; source: unknown; systems: Row[] }): string {
  const lines = [
    `Measured ${result.date.slice(0, 16).replace('T', ' ')} UTC on ${result.machine.cpus} cores, Linux ${result.machine.kernel}, Node ${result.machine.node}; ${result.trialsPerSystem} trials per system; source ${typeof result.source === 'string' ? result.source : JSON.stringify(result.source)}.`,
    '',
    '| system | trials | p50 ms | p95 ms | p99 ms | max ms | failed |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of result.systems) {
    if (r.skipped || r.error) lines.push(`| ${r.name} | ${r.skipped ? `skipped: ${r.skipped}` : `error: ${(r.error ?? '').split('\n')[0]}`} | | | | | |`);
    else lines.push(`| ${r.name} | ${r.trials?.length ?? 0} | ${ms(r.failover?.p50)} | ${ms(r.failover?.p95)} | ${ms(r.failover?.p99)} | ${ms(r.failover?.max)} | ${r.failed ?? 0} |`);
  }
  return lines.join('\n');
}

/** Replaces the table in `readme`; false when the markers are missing. */
export function updateReadme(readme: string, markdown: string): boolean {
  const text = fs.readFileSync(readme, 'utf8');
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start < 0 || end < start) return false;
  fs.writeFileSync(readme, `${text.slice(0, start + START.length)}\n${markdown}\n${text.slice(end)}`);
  return true;
}
