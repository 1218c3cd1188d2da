// Typed errors of the outbound side. Like nodemailer's, each carries a `code`;
// `retryable` tells a queue whether to keep the message and try again later, and
// `responseCode` is the SMTP reply an MTA would give for it.

/** Base class: every binding error has a code, the binding name and retry advice. */
export class BindingError extends Error {
  readonly code: string;
  readonly binding: string;
  readonly retryable: boolean;
  readonly responseCode: number;

  constructor(message: string, code: string, binding: string, retryable: boolean, responseCode: number) {
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
    super(`unknown binding "${binding}": no node of the cluster declares it`, 'EBINDINGUNKNOWN', binding, false, 550);
  }
}

/** The binding is BROKEN (name or address disagrees across the cluster): nobody may send from it. */
export class BindingBrokenError extends BindingError {
  constructor(binding: string) {
    super(
      `binding "${binding}" is BROKEN (its name or address differs across the cluster): outbound refused until the configuration agrees`,
      'EBINDINGBROKEN',
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
      'EBINDINGNOTLOCAL',
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
    super(`binding "${binding}" is not held by any node${detail ? `: ${detail}` : ''}`, 'EBINDINGUNOWNED', binding, true, 451);
  }
}

/** The binding left this node while a send was in progress; the message was not sent from here. */
export class BindingMovedError extends BindingError {
  readonly holder: string | null;

  constructor(binding: string, holder: string | null) {
    super(
      `binding "${binding}" left this node during the send (now held by ${holder === null ? 'nobody' : `"${holder}"`}): retry, it will go to the new holder`,
      'EBINDINGMOVED',
      binding,
      true,
      451,
    );
    this.holder = holder;
  }
}

/** pick(group) found no binding of the group held here and healthy. */
export class NoLocalBindingError extends Error {
  readonly code = 'ENOLOCALBINDING';
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
  readonly code = 'ERELAY';
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
