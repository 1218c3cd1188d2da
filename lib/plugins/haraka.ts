/**
 * mta-vip as a Haraka plugin.
 *
 * Install: a file `plugins/mta_vip.js` in the Haraka directory containing
 *   Object.assign(exports, require('mta-vip/haraka'));
 * listed in `config/plugins`, with its options in `config/mta_vip.json`
 * (see the README, "ZoneMTA and Haraka plugins"). Haraka copies these functions onto its plugin object,
 * so `this` is the plugin (its config, logger and register_hook).
 *
 * - The cluster runs in `init_master`: the master process under `nodes=N`, or
 *   the only process with `nodes=0`. Workers see it through the shared state file.
 * - Listeners: Haraka listens on the wildcard address (`listen=0.0.0.0:25`);
 *   the connect hook (registered first, priority -100) refuses (421) clients whose `connection.local.ip` is a
 *   listener VIP this node does not serve (released or being released).
 * - Outbound: the get_mx hook (also first) picks the binding by name (the transaction note
 *   `mta_vip.binding`, else the sender domain map, else `defaultBinding`) and,
 *   when the binding is held here, returns MX entries with `bind` (its IP) and
 *   `bind_helo`. When another node holds it, the MX is a loopback gateway that
 *   relays to the holder (Haraka keeps the message until the holder accepted it).
 * - Messages relayed here by other nodes are sent with Haraka's outbound from
 *   the master, with the note `mta_vip.binding` set.
 * - `shutdown` (and SIGTERM/SIGINT in the master) release the VIPs.
 */
import { createRequire } from 'node:module';
import { promises as dns } from 'node:dns';
import { Readable } from 'node:stream';
import type { RelayedMessage } from '../mta/types';
import type { BindingView } from './binding-view';
import { normalizeIp, waitForHolder } from './binding-view';
import {
  createRelayGateway,
  hostnameOf,
  resolvePluginOptions,
  startClusterProcess,
  workerView,
  type ClusterProcess,
  type MtaVipPluginOptions,
} from './plugin-process';
import type { RelayGateway } from './relay-gateway';
import type { ResolvedConfig } from '../core';

/** config/mta_vip.json */
export interface HarakaPluginOptions extends MtaVipPluginOptions {
  /** Sender (MAIL FROM) domain -> binding name. */
  senders?: Record<string, string>;
  /** Binding for mail no note or sender entry names; without it such mail is left to other get_mx plugins and DNS. */
  defaultBinding?: string;
  /** Send everything through this next hop ('smtp://host:port') instead of the recipient domain's MX. */
  nextHop?: string;
  /** How long get_mx waits for a binding without a holder (mid-failover or a node still booting) before deferring; default 15,000 ms. */
  holderWaitMs?: number;
  /** When a delivery deferred by its binding (moved away, or its address missing at connect) is tried again; default 2,000 ms. */
  moveRetryMs?: number;
}

/** The parts of Haraka's plugin object used here. */
interface HarakaPlugin {
  config: { get(name: string, type?: string): unknown };
  loginfo(message: string): void;
  logerror(message: string): void;
  haraka_require(name: string): any;
  register_hook(hook: string, method: string, priority?: number): void;
}

interface Next {
  (code?: number, message?: unknown): void;
}

interface HarakaMxSpec {
  priority: number;
  exchange: string;
  port: number;
  bind: string;
  bind_helo: string;
}

// One set per process: Haraka compiles the plugin once per process.
let settings: { options: HarakaPluginOptions; resolved: ResolvedConfig } | null = null;
let clusterProcess: ClusterProcess | null = null;
let fileView: BindingView | null = null;
let gateway: RelayGateway | null = null;

function constants(): Record<string, number> {
  // Haraka's own copy, as its plugins see them (DENYSOFT, OK, ...).
  const haraka = createRequire(require.main?.filename ?? process.argv[1] ?? __filename);
  const c = haraka('haraka-constants') as Record<string, number>;
  return c;
}

function view(): BindingView {
  if (clusterProcess) return clusterProcess.view;
  if (!settings) throw new Error('mta-vip: register() has not run');
  fileView ??= workerView(settings.options, settings.resolved);
  return fileView;
}

/** Reads config/mta_vip.json; a mistake stops Haraka (register() throwing does). */
export function register(this: HarakaPlugin): void {
  const raw = this.config.get('mta_vip.json', 'json');
  settings = resolvePluginOptions('Haraka', raw) as { options: HarakaPluginOptions; resolved: ResolvedConfig };
  // First in their hooks, whatever config/plugins lists before: in Haraka a plugin
  // answering OK ends the hook, and the relay plugin's connect hook answers OK to
  // every allowed client, so a gate run after it would never refuse anyone.
  this.register_hook('connect', 'mta_vip_connect', -100);
  this.register_hook('get_mx', 'mta_vip_get_mx', -100);
  this.register_hook('deferred', 'mta_vip_deferred', -100);
  this.loginfo(`mta-vip: node ${settings.resolved.node}, cluster ${settings.resolved.cluster.id}`);
}

/** Master (or the single process): starts the cluster before Haraka forks workers. */
export function hook_init_master(this: HarakaPlugin, next: Next): void {
  if (!settings) return next(constants().denysoft, 'mta-vip: no configuration');
  const plugin = this;
  const log = (level: 'info' | 'error', message: string): void => (level === 'info' ? plugin.loginfo(`mta-vip: ${message}`) : plugin.logerror(`mta-vip: ${message}`));
  startClusterProcess('haraka', settings.options, settings.resolved, (message) => sendRelayed(plugin, message), log).then(
    (started) => {
      clusterProcess = started;
      next();
    },
    (error: Error) => {
      log('error', `cannot start the cluster: ${error.message}`);
      // init_master returning an error makes Haraka exit: failover must not silently be off.
      next(constants().deny, `mta-vip: ${error.message}`);
    },
  );
}

/** Refuses clients arriving on a listener VIP this node does not serve now. */
export function mta_vip_connect(this: HarakaPlugin, next: Next, connection: { local: { ip?: string } }): void {
  const ip = normalizeIp(connection.local.ip ?? '');
  const state = view().listenerState(ip);
  if (state === 'unmanaged' || state === 'serving') return next();
  next(constants().denysoftdisconnect, `${ip} is moving to another server, try again`);
}

/** The binding of a queued message: note, sender domain, or default. */
export function bindingFor(options: HarakaPluginOptions, todo: { notes?: unknown; mail_from?: { host?: string } }): string | undefined {
  const notes = todo.notes as { get?: (path: string) => unknown; mta_vip?: { binding?: string } } | undefined;
  const noted = typeof notes?.get === 'function' ? notes.get('mta_vip.binding') : notes?.mta_vip?.binding;
  if (typeof noted === 'string' && noted) return noted;
  const domain = todo.mail_from?.host?.toLowerCase();
  if (domain && options.senders?.[domain]) return options.senders[domain];
  return options.defaultBinding;
}

/** MX entries that leave from the binding's IP when it is held here, else through the relay gateway. */
export function mta_vip_get_mx(this: HarakaPlugin, next: Next, hmail: { todo: { notes?: unknown; mail_from?: { host?: string } } }, domain: string): void {
  if (!settings) return next();
  const current = settings;
  const options = current.options;
  const name = bindingFor(options, hmail.todo);
  if (!name) return next();
  const c = constants();
  const plugin = this;
  // A binding between holders has none for a moment: wait for it rather than
  // defer, since Haraka's first retry would come only 64 s later.
  waitForHolder(view(), name, options.holderWaitMs ?? 15_000).then(
    (info) => {
      if (!info) return next(c.denysoft, `binding ${name} is unknown or has no holder now; deferring`);
      mxFor.call(plugin, next, current, name, info, domain);
    },
    (error: Error) => next(c.denysoft, `binding ${name}: ${error.message}`),
  );
}

function mxFor(this: HarakaPlugin, next: Next, current: NonNullable<typeof settings>, name: string, info: NonNullable<ReturnType<BindingView['binding']>>, domain: string): void {
  const c = constants();
  const options = current.options;
  const helo = hostnameOf(options, name);
  if (info.local && info.state === 'owned') {
    nextHops(options, domain).then(
      (hops) => next(c.ok, hops.map((hop) => ({ ...hop, bind: info.address, bind_helo: helo }) satisfies HarakaMxSpec)),
      (error: Error) => next(c.denysoft, `MX lookup for ${domain} failed: ${error.message}`),
    );
    return;
  }
  const plugin = this;
  gateway ??= createRelayGateway(options, current.resolved, view(), (level, message) => (level === 'info' ? plugin.loginfo(`mta-vip: ${message}`) : plugin.logerror(`mta-vip: ${message}`)));
  gateway.endpoint(name).then(
    ({ host, port, helo: gatewayName }) => {
      this.loginfo(`mta-vip: binding ${name} is held by ${info.holder}: relaying through ${host}:${port}`);
      // The EHLO name carries the binding to the gateway, which relays for that binding only.
      next(c.ok, [{ priority: 0, exchange: host, port, bind: host, bind_helo: gatewayName } satisfies HarakaMxSpec]);
    },
    (error: Error) => next(c.denysoft, `relay gateway for ${name}: ${error.message}`),
  );
}

/** Uncounted quick retries one delivery gets for its binding before Haraka's own schedule applies. */
const MAX_BINDING_RETRIES = 10;

/**
 * Why a delivery was deferred, as far as its binding goes: 'moved' when the binding is held by
 * another node now, 'address-missing' when it is held here but its address was not on the
 * interface at connect (EADDRNOTAVAIL: the guardian removed it during a stall, or an operator),
 * null when the binding has nothing to do with it (the destination deferred, or no node holds the
 * binding: Haraka's schedule is right then).
 */
export function bindingDeferral(info: ReturnType<BindingView['binding']>, error: unknown): 'moved' | 'address-missing' | null {
  if (!info || !info.holder) return null;
  if (!(info.local && info.state === 'owned')) return 'moved';
  const text = error instanceof Error ? `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}` : String(error ?? '');
  return /EADDRNOTAVAIL/.test(text) ? 'address-missing' : null;
}

/**
 * Haraka's 'deferred' hook: a delivery deferred because of its binding is tried again after
 * moveRetryMs (2 s), from the binding's holder (get_mx runs again: locally or through the relay),
 * instead of at Haraka's first interval (64 s); a message relayed here just before a stall waited
 * 66 s in a test. Such retries do not count against the delivery's schedule (up to 10 of them).
 */
export function mta_vip_deferred(this: HarakaPlugin, next: Next, hmail: { todo: { notes?: unknown; mail_from?: { host?: string } }; num_failures?: number; mtaVipBindingRetries?: number }, params: { delay?: number; err?: unknown }): void {
  if (!settings) return next();
  const name = bindingFor(settings.options, hmail.todo);
  if (!name) return next();
  const why = bindingDeferral(view().binding(name), params?.err);
  const retries = hmail.mtaVipBindingRetries ?? 0;
  if (!why || retries >= MAX_BINDING_RETRIES) return next();
  hmail.mtaVipBindingRetries = retries + 1;
  if (typeof hmail.num_failures === 'number' && hmail.num_failures > 0) hmail.num_failures--;
  const seconds = Math.max(1, Math.round((settings.options.moveRetryMs ?? 2_000) / 1000));
  this.loginfo(`mta-vip: delivery deferred by binding ${name} (${why}): trying again in ${seconds} s`);
  next(constants().denysoft, String(seconds));
}

/** Haraka calls this on graceful shutdown/restart (master and workers). */
export function shutdown(this: HarakaPlugin): void {
  const closing: Array<Promise<unknown>> = [];
  if (clusterProcess) closing.push(clusterProcess.close());
  if (gateway) closing.push(gateway.close());
  clusterProcess = null;
  gateway = null;
  void Promise.allSettled(closing);
}

async function nextHops(options: HarakaPluginOptions, domain: string): Promise<Array<Omit<HarakaMxSpec, 'bind' | 'bind_helo'>>> {
  if (options.nextHop) {
    const url = new URL(options.nextHop);
    return [{ priority: 0, exchange: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 25) }];
  }
  try {
    const records = await dns.resolveMx(domain);
    if (records.length) return records.sort((a, b) => a.priority - b.priority).map((r) => ({ priority: r.priority, exchange: r.exchange, port: 25 }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENODATA') throw error;
  }
  // No MX record: the domain itself (RFC 5321 implicit MX).
  return [{ priority: 0, exchange: domain, port: 25 }];
}

/** Master: a message another node relayed for a binding held here leaves through Haraka's outbound. */
function sendRelayed(plugin: HarakaPlugin, message: RelayedMessage): Promise<void> {
  const outbound = plugin.haraka_require('outbound') as {
    send_email(from: string, to: string[], contents: Readable, next: (code: number, msg: string) => void, options: { notes: unknown }): void;
  };
  const haraka = createRequire(require.main?.filename ?? process.argv[1] ?? __filename);
  let notes: unknown = { mta_vip: { binding: message.binding } };
  try {
    const Notes = haraka('haraka-notes') as new (init: unknown) => unknown;
    notes = new Notes({ mta_vip: { binding: message.binding } });
  } catch {
    // older Haraka: plain object notes
  }
  const ok = constants().ok;
  return new Promise((resolve, reject) => {
    outbound.send_email(message.envelope.from, message.envelope.to, Readable.from([message.raw]), (code, msg) => {
      if (code === ok) resolve();
      else reject(new Error(`Haraka outbound refused the relayed message: ${msg}`));
    }, { notes });
  });
}
