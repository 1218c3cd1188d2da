/**
 * `npm run bench [name ...]`: runs the benchmarks one after another in child
 * processes (so one benchmark's heap and timers never skew the next), each
 * printing its own JSON line and table, then one summary JSON line.
 *
 * Each benchmark is also runnable alone: `node dist/bench/<name>.js`.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as fs from 'node:fs';

const ALL = ['elect', 'announce', 'fuzz', 'idle', 'smtp-overhead', 'planned-move', 'failover', 'mass-failover'];

function main(): void {
  const requested = process.argv.slice(2);
  const names = requested.length ? requested : ALL;
  const summary: Record<string, { ok: boolean; seconds: number }> = {};
  let failed = false;
  for (const name of names) {
    const file = path.join(__dirname, `${name}.js`);
    if (!fs.existsSync(file)) {
      console.error(`bench ${name}: ${file} does not exist (known: ${ALL.join(', ')})`);
      failed = true;
      continue;
    }
    console.log(`\n## bench ${name}`);
    const started = process.hrtime.bigint();
    const result = spawnSync(process.execPath, ['--expose-gc', file], { stdio: 'inherit' });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    summary[name] = { ok: result.status === 0, seconds: Math.round(seconds * 10) / 10 };
    if (result.status !== 0) failed = true;
  }
  console.log(JSON.stringify({ bench: 'summary', date: new Date().toISOString(), results: summary }));
  process.exit(failed ? 1 : 0);
}

main();
