// The README's basic example, run as a user would: two nodes from JSON config
// files, a client reading the SMTP banner on the VIP, and a SIGTERM moving it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labSkipReason, LabProcess, vip4, waitFor } from './harness';

const EXAMPLE = path.join(__dirname, '..', '..', 'examples', 'basic-cluster.js');

describe('examples/basic-cluster', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let dir: string;
  const procs: LabProcess[] = [];

  before(async () => {
    lab = await Lab.create({ hosts: ['mx1', 'mx2', 'client'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-example-'));
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await lab?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function banner(): Promise<string | null> {
    const r = await lab.exec('client', ['swaks', '--server', vip4(25), '--port', '2525', '--quit-after', 'CONNECT', '--timeout', '2'], { allowFailure: true, timeoutMs: 5000 });
    return r.code === 0 ? (/220 .*?(\S+) via mta-vip/.exec(r.stdout)?.[1] ?? null) : null;
  }

  test('two nodes serve the VIP from the preferred one; SIGTERM moves it to the other', async () => {
    for (const node of ['mx1', 'mx2']) {
      const config = {
        node,
        cluster: { id: 'mail', secret: 'at least sixteen bytes of secret', bind: lab.host(node).ipv4, peers: [lab.host('mx1').ipv4, lab.host('mx2').ipv4] },
        listeners: [`${vip4(25)}:2525`],
        vips: { [vip4(25)]: { preferred: 'mx1' } },
        topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
      };
      const file = path.join(dir, `${node}.json`);
      fs.writeFileSync(file, JSON.stringify(config));
      procs.push(lab.spawnNode(node, EXAMPLE, [file]));
    }
    assert.equal(await waitFor(async () => ((await banner()) === 'mx1' ? 'mx1' : null), { timeoutMs: 15_000, intervalMs: 100, what: 'mx1 banner on the VIP' }), 'mx1');
    const mx1 = procs[0] as LabProcess;
    mx1.kill('SIGTERM');
    const exit = await mx1.exited;
    assert.equal(exit.code, 0, `graceful exit; stderr: ${mx1.stderr}`);
    assert.match(mx1.stdout, /released/);
    assert.equal(await waitFor(async () => ((await banner()) === 'mx2' ? 'mx2' : null), { timeoutMs: 10_000, intervalMs: 100, what: 'mx2 banner on the VIP' }), 'mx2');
  });
});
