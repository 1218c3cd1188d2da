/**
 * The I/O behind `cluster.secretFile`: the config validation is pure and gets
 * this function through its host environment.
 */
import * as fs from 'node:fs';

/** The file's bytes and mode, or why it cannot be used (missing, a directory, unreadable). */
export function readSecretFile(file: string): { bytes: Buffer; mode: number } | { error: string } {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) return { error: 'is not a regular file' };
    return { bytes: fs.readFileSync(file), mode: stat.mode };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { error: `${e.code ?? 'error'}: ${e.message}` };
  }
}
