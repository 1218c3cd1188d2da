import { execFile } from 'node:child_process';

/** What a finished command printed and how it exited. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when the command was killed (timeout or signal) or could not start. */
  code: number;
}

export interface RunOptions {
  /** Kill the command after this long (default 10 s). */
  timeoutMs?: number;
  /** Resolve with the result instead of rejecting when the command fails. */
  allowFailure?: boolean;
  /** Written to the command's stdin (e.g. an nft script for `nft -f -`). */
  input?: string;
}

/**
 * Runs argv[0] with the other arguments (no shell) and collects its output.
 * Rejects with an Error naming the command, its exit code and its stderr, unless allowFailure.
 */
export function run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.reject(new TypeError('run: argv is empty'));
  const timeout = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      let code = 0;
      if (error) {
        const errorCode = (error as NodeJS.ErrnoException & { code?: unknown }).code;
        code = typeof errorCode === 'number' ? errorCode : -1;
      }
      const result: RunResult = { stdout, stderr, code };
      if (code !== 0 && !options.allowFailure) {
        const why = error?.killed ? `killed after ${timeout}ms` : `exit code ${code}`;
        reject(new Error(`${argv.join(' ')} failed (${why}): ${stderr.trim() || stdout.trim() || error?.message}`));
        return;
      }
      resolve(result);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}
