/**
 * The README's code blocks, so tests run what a user copies: the blocks under
 * a heading (up to the next heading of the same or a higher level), in order.
 * And a folder where `require('mta-vip/...')` resolves to this checkout, as it
 * would with the package installed (put it on NODE_PATH).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');

export interface CodeBlock {
  lang: string;
  text: string;
}

export function readmeBlocks(heading: string): CodeBlock[] {
  const lines = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n');
  const start = lines.findIndex((line) => /^#+ /.test(line) && line.replace(/^#+ /, '').startsWith(heading));
  if (start < 0) throw new Error(`README has no heading starting with ${JSON.stringify(heading)}`);
  const level = (lines[start] as string).match(/^#+/)?.[0].length ?? 1;
  const blocks: CodeBlock[] = [];
  let open: CodeBlock | null = null;
  for (const line of lines.slice(start + 1)) {
    if (!open && /^#+ /.test(line) && (line.match(/^#+/)?.[0].length ?? 9) <= level) break;
    const fence = /^```(\S*)\s*$/.exec(line);
    if (fence && !open) open = { lang: fence[1] ?? '', text: '' };
    else if (fence && open) {
      blocks.push(open);
      open = null;
    } else if (open) open.text += `${line}\n`;
  }
  return blocks;
}

/** A folder holding `mta-vip` -> this checkout, for NODE_PATH (made once per process). */
let modules: string | null = null;
export function installedPackageDir(): string {
  if (modules) return modules;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-node-path-'));
  fs.symlinkSync(ROOT, path.join(dir, 'mta-vip'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  modules = dir;
  return dir;
}
