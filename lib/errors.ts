/**
 * Every error mta-vip makes, in one place and one code scheme: `code` is an
 * 'E' followed by upper-case letters (like Node's own errno codes), and the
 * errors the kernel reports keep the kernel's code (EPERM, EADDRINUSE, ...).
 * Each message says what is wrong and how to fix it. The classes are exported
 * from the package; match on `code` (stable), not on the message.
 */

/** The codes mta-vip itself assigns. */
export const ErrorCodes = {
  /** A config refused by resolveConfig (see ConfigError.problems). */
  CONFIG: 'ECONFIG',
  /** A ZoneMTA or Haraka plugin's options are wrong. */
  PLUGIN_CONFIG: 'EMTAVIPCONFIG',
  /** The cluster secret is shorter than 16 bytes. */
  SECRET: 'ESECRET',
  /** A peer's declaration does not decode. */
  DECLARATION: 'EDECLARATION',
  /** Another process uses this node's name in the cluster. */
  NODE_NAME_CLASH: 'ENODENAMECLASH',
  /** A connected socket to a peer could not be opened (no fast crash detection for it). */
  PEER_SOCKET: 'EPEERSOCKET',
  /** A peer declared unreachable by ICMP is alive: a firewall rejects the port, or the ICMP was forged. */
  FALSE_REFUSAL: 'EFALSEREFUSAL',
  /** The native addon is not built. */
  ADDON_NOT_BUILT: 'EADDONNOTBUILT',
  /** The native addon is built but cannot be loaded (built for another Node). */
  ADDON_LOAD: 'EADDONLOAD',
  /** A listener failed to start for another reason than the kernel's. */
  LISTEN: 'ELISTEN',
  BINDING_UNKNOWN: 'EBINDINGUNKNOWN',
  BINDING_BROKEN: 'EBINDINGBROKEN',
  BINDING_NOT_LOCAL: 'EBINDINGNOTLOCAL',
  BINDING_UNOWNED: 'EBINDINGUNOWNED',
  BINDING_MOVED: 'EBINDINGMOVED',
  NO_LOCAL_BINDING: 'ENOLOCALBINDING',
  RELAY: 'ERELAY',
  /** The plugins' shared-state directory is not private to this user. */
  STATE_DIR: 'ESTATEDIR',
  /** The warning code of an 'error' event nobody listened to (process.emitWarning). */
  UNHANDLED: 'EUNHANDLED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An Error with a `code` (and optional fields such as errno or syscall), for errors that need no class. */
export function codedError<T extends object = object>(code: ErrorCode, message: string, extra?: T & { cause?: unknown }): Error & { code: ErrorCode } & T {
  const { cause, ...fields } = (extra ?? {}) as T & { cause?: unknown };
  const error = new Error(message, cause === undefined ? undefined : { cause }) as Error & { code: ErrorCode } & T;
  error.code = code;
  Object.assign(error, fields);
  return error;
}

/** One problem of a config: where, and what to write instead. */
export interface ConfigProblem {
  /** Where, e.g. `bindings[2].address`. */
  path: string;
  /** What is wrong and how to fix it. */
  message: string;
}

/** Thrown by resolveConfig; `problems` lists every problem found. */
export class ConfigError extends Error {
  readonly code = ErrorCodes.CONFIG;
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super(
      `invalid mta-vip config (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  ${p.path || '(config)'}: ${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** A plugin configuration mistake; the message says what to write instead. */
export class PluginConfigError extends Error {
  readonly code = ErrorCodes.PLUGIN_CONFIG;
  constructor(mta: string, message: string) {
    super(`mta-vip ${mta} plugin: ${message}`);
    this.name = 'PluginConfigError';
  }
}

// --- the outbound side ---------------------------------------------------------
// Like nodemailer's errors, each carries a `code`; `retryable` tells a queue whether to keep
// the message and try again later, and `responseCode` is the SMTP reply an MTA would give.

/** Base class: every binding error has a code, the binding name and retry advice. */
export class BindingError extends Error {
  readonly code: ErrorCode;
  readonly binding: string;
  readonly retryable: boolean;
  readonly responseCode: number;

  constructor(message: string, code: ErrorCode, binding: string, retryable: boolean, responseCode: number) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.binding = binding;
    this.retryable = retryable;
    this.responseCode = responseCode;
  }
}

/** No binding with that name is declared anywhere in the cluster. */
export class UnknownBindingError extends BindingError {
  constructor(binding: string) {
    super(`unknown binding "${binding}": no node of the cluster declares it`, ErrorCodes.BINDING_UNKNOWN, binding, false, 550);
  }
}

/** The binding is BROKEN (name or address disagrees across the cluster): nobody may send from it. */
export class BindingBrokenError extends BindingError {
  constructor(binding: string) {
    super(
      `binding "${binding}" is BROKEN (its name or address differs across the cluster): outbound refused until the configuration agrees`,
      ErrorCodes.BINDING_BROKEN,
      binding,
      true,
      451,
    );
  }
}

/** The binding is held by another node; send() relays there, transport() cannot. */
export class BindingNotLocalError extends BindingError {
  readonly holder: string | null;

  constructor(binding: string, holder: string | null) {
    super(
      holder === null
        ? `binding "${binding}" is not held by any node`
        : `binding "${binding}" is held by node "${holder}", not here: use send() to relay it there`,
      ErrorCodes.BINDING_NOT_LOCAL,
      binding,
      true,
      451,
    );
    this.holder = holder;
  }
}

/** No live node holds the binding (yet); retry later. */
export class BindingUnownedError extends BindingError {
  constructor(binding: string, detail = '') {
    super(`binding "${binding}" is not held by any node${detail ? `: ${detail}` : ''}`, ErrorCodes.BINDING_UNOWNED, binding, true, 451);
  }
}

/** The binding left this node while a send was in progress; the message was not sent from here. */
export class BindingMovedError extends BindingError {
  readonly holder: string | null;

  constructor(binding: string, holder: string | null) {
    super(
      `binding "${binding}" left this node during the send (now held by ${holder === null ? 'nobody' : `"${holder}"`}): retry, it will go to the new holder`,
      ErrorCodes.BINDING_MOVED,
      binding,
      true,
      451,
    );
    this.holder = holder;
  }
}

/** pick(group) found no binding of the group held here and healthy. */
export class NoLocalBindingError extends Error {
  readonly code = ErrorCodes.NO_LOCAL_BINDING;
  readonly group: string;
  readonly retryable = true;
  readonly responseCode = 451;

  constructor(group: string, members: { name: string; holder: string | null; state: string }[]) {
    super(
      members.length === 0
        ? `no binding belongs to group "${group}"`
        : `no binding of group "${group}" is held here and healthy; members: ${members
            .map((m) => `${m.name} (${m.state}, held by ${m.holder ?? 'nobody'})`)
            .join(', ')}`,
    );
    this.name = 'NoLocalBindingError';
    this.group = group;
  }
}

/** Relaying to the holder failed for good (auth refused, deadline passed, permanent reply). */
export class RelayError extends Error {
  readonly code = ErrorCodes.RELAY;
  readonly binding: string;
  readonly retryable: boolean;
  readonly responseCode: number | undefined;

  constructor(message: string, binding: string, retryable: boolean, responseCode?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RelayError';
    this.binding = binding;
    this.retryable = retryable;
    this.responseCode = responseCode;
  }
}
