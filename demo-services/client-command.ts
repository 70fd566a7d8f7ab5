/**
 * `remora demo-client`: steady open-loop traffic against the demo shop, one report line per second
 * and a summary at the end. Open loop (calls start on schedule whether or not earlier ones finished)
 * so a slow mesh shows up as latency and errors, not as a quietly lower request rate.
 */
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { LatencyHistogram } from './latency.js';
import { statusName } from './status.js';
import { createScenario, SCENARIOS, type ScenarioName } from './traffic.js';

const SUMMARY = 'Send demo traffic through the mesh (or straight at a demo service) and report statuses and latency.';

const flags = {
  target: { type: 'string', help: 'host:port to send to: a sidecar outbound listener or a service', default: '127.0.0.1:15001' },
  authority: { type: 'string', help: ':authority to send (default: the scenario\'s service, e.g. orders; mixed always uses each service\'s name)' },
  scenario: { type: 'string', help: `traffic to send: ${SCENARIOS.join(', ')}`, default: 'orders' },
  rps: { type: 'int', help: 'calls started per second', default: 5 },
  count: { type: 'int', help: 'stop after starting this many calls (0 = no limit)', default: 0 },
  'duration-s': { type: 'int', help: 'stop after this many seconds (0 = no limit)', default: 0 },
  'deadline-ms': { type: 'int', help: 'deadline of each call', default: 2000 },
  'max-in-flight': { type: 'int', help: 'skip a tick instead of starting a call when this many are open', default: 200 },
  output: { type: 'string', help: 'report format: text or json (one JSON object per line)', default: 'text' },
} as const satisfies FlagDefs;

interface Window {
  started: number;
  skipped: number;
  codes: Map<string, number>;
  latency: LatencyHistogram;
}

const newWindow = (): Window => ({ started: 0, skipped: 0, codes: new Map(), latency: new LatencyHistogram() });

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

const round = (ms: number): number | null => (Number.isNaN(ms) ? null : Math.round(ms * 100) / 100);

function textLine(label: string, w: Window, inFlight: number): string {
  const ok = w.codes.get('OK') ?? 0;
  const errors = [...w.codes].filter(([c]) => c !== 'OK').map(([c, n]) => `${c}=${n}`);
  const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : `${ms.toFixed(1)}ms`);
  return [
    label,
    `started=${w.started}`,
    `ok=${ok}`,
    ...errors,
    ...(w.skipped ? [`skipped=${w.skipped}`] : []),
    `p50=${fmt(w.latency.percentile(50))}`,
    `p99=${fmt(w.latency.percentile(99))}`,
    `in-flight=${inFlight}`,
  ].join(' ');
}

function jsonLine(kind: 'tick' | 'summary', extra: Record<string, unknown>, w: Window, inFlight: number): string {
  return JSON.stringify({
    kind,
    ...extra,
    started: w.started,
    skipped: w.skipped,
    completed: w.latency.count,
    codes: Object.fromEntries(w.codes),
    p50_ms: round(w.latency.percentile(50)),
    p99_ms: round(w.latency.percentile(99)),
    in_flight: inFlight,
  });
}

function validate(f: { scenario: string; rps: number; count: number; 'duration-s': number; 'deadline-ms': number; 'max-in-flight': number; output: string; authority: string | undefined }): ScenarioName {
  if (!(SCENARIOS as readonly string[]).includes(f.scenario)) {
    throw new UsageError(`--scenario must be one of ${SCENARIOS.join(', ')}, got ${JSON.stringify(f.scenario)}`);
  }
  if (f.rps < 1 || f.rps > 10_000) throw new UsageError(`--rps must be 1..10000, got ${f.rps}`);
  if (f.count < 0) throw new UsageError(`--count must be >= 0, got ${f.count}`);
  if (f['duration-s'] < 0) throw new UsageError(`--duration-s must be >= 0, got ${f['duration-s']}`);
  if (f['deadline-ms'] < 1) throw new UsageError(`--deadline-ms must be >= 1, got ${f['deadline-ms']}`);
  if (f['max-in-flight'] < 1) throw new UsageError(`--max-in-flight must be >= 1, got ${f['max-in-flight']}`);
  if (f.output !== 'text' && f.output !== 'json') throw new UsageError(`--output must be text or json, got ${JSON.stringify(f.output)}`);
  if (f.scenario === 'mixed' && f.authority) throw new UsageError('--authority does not apply to --scenario mixed (each service uses its own name)');
  return f.scenario as ScenarioName;
}

export const demoClientCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const parsed = parseCommand(flags, argv);
    if (parsed.help) {
      process.stdout.write(usage('demo-client', SUMMARY, flags) + '\n');
      return;
    }
    const f = parsed.flags;
    const scenarioName = validate(f);
    const scenario = createScenario(scenarioName, f.target, f.authority ?? '');
    const json = f.output === 'json';
    const print = (line: string) => process.stdout.write(line + '\n');
    const authority = scenarioName === 'mixed' ? 'per service' : f.authority || scenarioName;
    if (json) print(JSON.stringify({ kind: 'start', target: f.target, authority, scenario: scenarioName, rps: f.rps }));
    else print(`demo-client: ${scenarioName} traffic to ${f.target} (authority ${authority}) at ${f.rps} rps`);

    const total = newWindow();
    const byMethod = new Map<string, number>();
    let window = newWindow();
    let inFlight = 0;
    const t0 = Date.now();
    const intervalMs = 1000 / f.rps;
    let ticks = 0;

    let stopTicking!: () => void;
    const ticking = new Promise<void>((resolve) => (stopTicking = resolve));
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      stopTicking();
    };
    // Kept (not once) while draining: under a terminal's Ctrl-C the client gets SIGINT from the tty
    // and again from `remora demo`, and the second must not kill it before the summary.
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);

    let drained: () => void = () => {};
    const fire = () => {
      if (inFlight >= f['max-in-flight']) {
        window.skipped++;
        total.skipped++;
        return;
      }
      window.started++;
      total.started++;
      inFlight++;
      const start = process.hrtime.bigint();
      void scenario.call(f['deadline-ms']).then((outcome) => {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        const code = statusName(outcome.code);
        for (const w of [window, total]) {
          bump(w.codes, code);
          w.latency.record(ms);
        }
        bump(byMethod, `${outcome.method} ${code}`);
        inFlight--;
        if (inFlight === 0) drained();
      });
    };

    // Schedule against the start time, not the previous tick, so timer lag does not lower the rate.
    let timer: NodeJS.Timeout | undefined;
    const schedule = () => {
      if (stopped) return;
      const elapsed = Date.now() - t0;
      if (f['duration-s'] > 0 && elapsed >= f['duration-s'] * 1000) return stop();
      while (ticks * intervalMs <= elapsed) {
        if (f.count > 0 && total.started + total.skipped >= f.count) return stop();
        ticks++;
        fire();
      }
      if (f.count > 0 && total.started + total.skipped >= f.count) return stop();
      timer = setTimeout(schedule, Math.max(0, ticks * intervalMs - (Date.now() - t0)));
    };

    let second = 0;
    const report = setInterval(() => {
      second++;
      print(json ? jsonLine('tick', { t_s: second }, window, inFlight) : textLine(`[${String(second).padStart(4)}s]`, window, inFlight));
      window = newWindow();
    }, 1000);

    schedule();
    await ticking;
    clearTimeout(timer);
    // Calls still open end by their deadline at the latest; wait that long, then report anyway.
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        drained = resolve;
        setTimeout(resolve, f['deadline-ms'] + 1000).unref();
      });
    }
    clearInterval(report);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    scenario.close();
    const elapsedS = Math.round((Date.now() - t0) / 100) / 10;
    if (json) print(jsonLine('summary', { elapsed_s: elapsedS, methods: Object.fromEntries(byMethod) }, total, inFlight));
    else print(textLine(`summary: elapsed=${elapsedS}s`, total, inFlight));
  },
};
