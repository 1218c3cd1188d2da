/**
 * Hand-written SVG for bench/failover: a box plot per system of the failover
 * times (log scale, every trial drawn as a dot), and the timeline of one trial
 * of up to two systems: each connection attempt of the client drawn at the time
 * it ended, in the lane of the node whose banner it got (or "no banner").
 */
import * as fs from 'node:fs';

interface ChartAttempt {
  start: number;
  end: number;
  outcome: string;
  node?: string;
}

interface ChartSystem {
  id: string;
  name: string;
  failed?: number;
  skipped?: string;
  error?: string;
  trials?: Array<{ failoverMs: number | null }>;
  timeline?: { trial: number; from: string; to: string | null; failoverMs: number | null; attempts: ChartAttempt[] };
}

const WIDTH = 980;
const LEFT = 250;
const RIGHT = 40;
const ROW = 34;
const NODE_COLORS: Record<string, string> = { n1: '#1f77b4', n2: '#ff7f0e', n3: '#2ca02c' };
const FAIL_COLOR = '#999999';

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

/** Box plots on a log axis from 10 ms to 20 s. */
function boxPlots(systems: ChartSystem[], top: number): { svg: string[]; height: number } {
  const svg: string[] = [];
  const lo = Math.log10(10);
  const hi = Math.log10(20_000);
  const x = (ms: number): number => LEFT + ((Math.log10(Math.max(10, ms)) - lo) / (hi - lo)) * (WIDTH - LEFT - RIGHT);
  const height = 40 + systems.length * ROW + 30;
  svg.push(`<text x="10" y="${top + 16}" font-size="14" font-weight="bold">Failover: holder killed (SIGKILL, or SIGTERM where named) → first banner from another node (ms, log scale)</text>`);
  const axisY = top + 30 + systems.length * ROW;
  for (const tick of [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000]) {
    svg.push(`<line x1="${x(tick)}" y1="${top + 26}" x2="${x(tick)}" y2="${axisY}" stroke="#e5e5e5"/>`);
    svg.push(`<text x="${x(tick)}" y="${axisY + 16}" font-size="11" text-anchor="middle">${tick >= 1000 ? `${tick / 1000}s` : tick}</text>`);
  }
  systems.forEach((system, i) => {
    const cy = top + 30 + i * ROW + ROW / 2;
    svg.push(`<text x="${LEFT - 10}" y="${cy + 4}" font-size="12" text-anchor="end">${esc(system.name)}</text>`);
    const values = (system.trials ?? []).flatMap((t) => (t.failoverMs === null ? [] : [t.failoverMs])).sort((a, b) => a - b);
    if (!values.length) {
      svg.push(`<text x="${LEFT + 4}" y="${cy + 4}" font-size="11" fill="#b00">${esc(system.skipped ? `skipped: ${system.skipped}` : system.error ? `error: ${system.error.slice(0, 80)}` : 'no successful trial')}</text>`);
      return;
    }
    const [q1, med, q3] = [quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75)];
    const min = values[0] as number;
    const max = values[values.length - 1] as number;
    svg.push(`<line x1="${x(min)}" y1="${cy}" x2="${x(max)}" y2="${cy}" stroke="#444"/>`);
    svg.push(`<line x1="${x(min)}" y1="${cy - 6}" x2="${x(min)}" y2="${cy + 6}" stroke="#444"/><line x1="${x(max)}" y1="${cy - 6}" x2="${x(max)}" y2="${cy + 6}" stroke="#444"/>`);
    svg.push(`<rect x="${x(q1)}" y="${cy - 10}" width="${Math.max(1, x(q3) - x(q1))}" height="20" fill="#dbe9f6" stroke="#1f4e79"/>`);
    svg.push(`<line x1="${x(med)}" y1="${cy - 10}" x2="${x(med)}" y2="${cy + 10}" stroke="#1f4e79" stroke-width="2.5"/>`);
    values.forEach((v, k) => svg.push(`<circle cx="${x(v).toFixed(1)}" cy="${(cy - 7 + ((k * 37) % 15)).toFixed(1)}" r="1.8" fill="#d62728" fill-opacity="0.6"/>`));
    const failed = system.failed ? `, ${system.failed} failed` : '';
    svg.push(`<text x="${Math.min(x(max) + 8, WIDTH - RIGHT - 120)}" y="${cy + 4}" font-size="11" fill="#333">p50 ${Math.round(med)} ms${failed}</text>`);
  });
  return { svg, height };
}

/** One trial's attempts, lanes n1..n3 and "no banner", on a linear axis around the kill. */
function timelinePanel(system: ChartSystem, top: number): { svg: string[]; height: number } {
  const svg: string[] = [];
  const timeline = system.timeline;
  if (!timeline) return { svg, height: 0 };
  const lanes = ['n1', 'n2', 'n3', 'no banner'];
  const laneHeight = 22;
  const ends = timeline.attempts.map((a) => a.end);
  const from = Math.min(-50, ...ends);
  const to = Math.max(50, ...ends);
  const x = (ms: number): number => LEFT + ((ms - from) / (to - from)) * (WIDTH - LEFT - RIGHT);
  const height = 36 + lanes.length * laneHeight + 34;
  svg.push(`<text x="10" y="${top + 16}" font-size="14" font-weight="bold">Timeline, ${esc(system.name)}: trial ${timeline.trial}, ${timeline.from} killed at 0, first banner from ${timeline.to ?? '-'} at ${timeline.failoverMs ?? '-'} ms</text>`);
  const laneTop = top + 28;
  lanes.forEach((lane, i) => {
    const cy = laneTop + i * laneHeight + laneHeight / 2;
    svg.push(`<text x="${LEFT - 10}" y="${cy + 4}" font-size="12" text-anchor="end">${lane === 'no banner' ? 'refused / timeout / error' : `banner from ${lane}`}</text>`);
    svg.push(`<line x1="${LEFT}" y1="${cy}" x2="${WIDTH - RIGHT}" y2="${cy}" stroke="#eeeeee"/>`);
  });
  const axisY = laneTop + lanes.length * laneHeight;
  const span = to - from;
  const step = [10, 20, 50, 100, 200, 500, 1000, 2000].find((s) => span / s <= 12) ?? 5000;
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    svg.push(`<line x1="${x(t)}" y1="${axisY}" x2="${x(t)}" y2="${axisY + 4}" stroke="#444"/><text x="${x(t)}" y="${axisY + 16}" font-size="11" text-anchor="middle">${t}</text>`);
  }
  svg.push(`<line x1="${LEFT}" y1="${axisY}" x2="${WIDTH - RIGHT}" y2="${axisY}" stroke="#444"/>`);
  svg.push(`<text x="${WIDTH - RIGHT}" y="${axisY + 30}" font-size="11" text-anchor="end">ms after the kill; tick: a connection's banner or failure, faint line: from its connect() to then</text>`);
  svg.push(`<line x1="${x(0)}" y1="${laneTop - 4}" x2="${x(0)}" y2="${axisY}" stroke="#d62728" stroke-dasharray="4 3"/><text x="${x(0) + 3}" y="${laneTop - 6}" font-size="10" fill="#d62728">kill</text>`);
  if (timeline.failoverMs !== null) {
    svg.push(`<line x1="${x(timeline.failoverMs)}" y1="${laneTop - 4}" x2="${x(timeline.failoverMs)}" y2="${axisY}" stroke="#2ca02c" stroke-dasharray="4 3"/><text x="${x(timeline.failoverMs) + 3}" y="${laneTop - 6}" font-size="10" fill="#2ca02c">first new banner</text>`);
  }
  for (const a of timeline.attempts) {
    const lane = a.outcome === 'banner' && a.node && lanes.includes(a.node) ? lanes.indexOf(a.node) : 3;
    const cy = laneTop + lane * laneHeight + laneHeight / 2;
    const color = lane === 3 ? FAIL_COLOR : (NODE_COLORS[a.node as string] ?? '#000');
    // The connection's life as a faint line, its banner or failure as a tick.
    svg.push(`<line x1="${x(Math.max(from, a.start)).toFixed(1)}" y1="${cy + 8}" x2="${x(a.end).toFixed(1)}" y2="${cy + 8}" stroke="${color}" stroke-opacity="0.25"/>`);
    svg.push(`<rect x="${(x(a.end) - 0.75).toFixed(1)}" y="${cy - 7}" width="1.5" height="14" fill="${color}"/>`);
  }
  return { svg, height };
}

/** Writes the chart for a failover result ({ systems: [...] }) to `file`. */
export function writeFailoverChart(result: { systems: ChartSystem[]; date?: string; trialsPerSystem?: number }, file: string): void {
  const parts: string[] = [];
  let y = 10;
  const box = boxPlots(result.systems, y);
  parts.push(...box.svg);
  y += box.height + 10;
  const withTimeline = ['mtavip', 'keepalived-fast', 'keepalived']
    .map((id) => result.systems.find((s) => s.id === id && s.timeline))
    .filter((s): s is ChartSystem => s !== undefined)
    .slice(0, 2);
  for (const system of withTimeline) {
    const panel = timelinePanel(system, y);
    parts.push(...panel.svg);
    y += panel.height + 10;
  }
  parts.push(`<text x="10" y="${y + 4}" font-size="10" fill="#666">mta-vip bench/failover, ${esc(result.date ?? '')}, ${result.trialsPerSystem ?? '?'} trials per system; box: quartiles, whiskers: min–max, dots: trials</text>`);
  const height = y + 14;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    ...parts,
    '</svg>',
  ].join('\n');
  fs.writeFileSync(file, `${svg}\n`);
}
