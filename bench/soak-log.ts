// `make soak`: what ucspi-tls-server's log says about each connection, and the verdict on
// each session the soak ran, from what its client saw and the server's end line. Pure.

export type Mode = 'tls' | 'plaintext' | 'worker lost';

export interface StartLine {
  pid: number;
  remotePort: number;
  worker: number;
}

export interface EndLine {
  pid: number;
  /** exit code, or null when a signal ended the app */
  status: number | null;
  signal: string | null;
  mode: Mode;
  toClient: number;
  toApp: number;
}

export interface WorkerDied {
  index: number;
  pid: number;
  how: string;
  lost: number;
}

const START = /^ucspi-tls-server: pid (\d+): start: \S+ port (\d+) -> \S+ port \d+, worker (\d+), \d+ of \d+$/;
const END = /^ucspi-tls-server: pid (\d+): end: (?:exit (\d+)|signal (SIG[A-Z0-9]+)), (tls|plaintext|worker lost), (\d+) bytes to client, (\d+) bytes to app, [\d.]+ s$/;
const DIED = /^ucspi-tls-server: worker (\d+) \(pid (\d+)\) (died on SIG[A-Z0-9]+|died with \d+): (\d+) connection\(s\) lost; starting another$/;
const STARTED = /^ucspi-tls-server: worker (\d+) \(pid (\d+)\) started$/;

/**
 * One server's log, fed as it arrives; every line is kept in one of the lists. The pid names
 * a connection only while its app lives (pids are reused, and a new app may get its pid
 * before the old connection's end line): each end line goes to the oldest connection of
 * that pid still without one.
 */
export class ServerLog {
  readonly starts: StartLine[] = [];
  /** End lines, as many as logged; endOf() finds a connection's. */
  readonly ends: EndLine[] = [];
  private readonly endOfStart = new Map<StartLine, EndLine>();
  private readonly open = new Map<number, StartLine[]>();
  readonly died: WorkerDied[] = [];
  readonly restarted: Array<{ index: number; pid: number }> = [];
  /** Every other line, counted by its kind (the words before the first figure or name). */
  readonly other = new Map<string, number>();
  /** A few other lines in full, for the report when something is unexplained. */
  readonly samples: string[] = [];
  private rest = '';

  feed(chunk: string): void {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop()!;
    for (const l of lines) this.line(l);
  }

  private line(l: string): void {
    let m: RegExpExecArray | null;
    if ((m = START.exec(l)) !== null) {
      const start = { pid: Number(m[1]), remotePort: Number(m[2]), worker: Number(m[3]) };
      this.starts.push(start);
      this.open.set(start.pid, [...(this.open.get(start.pid) ?? []), start]);
    } else if ((m = END.exec(l)) !== null) {
      const end: EndLine = {
        pid: Number(m[1]),
        status: m[2] !== undefined ? Number(m[2]) : null,
        signal: m[3] ?? null,
        mode: m[4] as Mode,
        toClient: Number(m[5]),
        toApp: Number(m[6]),
      };
      this.ends.push(end);
      const waiting = this.open.get(end.pid);
      const start = waiting?.shift();
      if (start !== undefined) this.endOfStart.set(start, end);
      if (waiting?.length === 0) this.open.delete(end.pid);
    } else if ((m = DIED.exec(l)) !== null) this.died.push({ index: Number(m[1]), pid: Number(m[2]), how: m[3]!, lost: Number(m[4]) });
    else if ((m = STARTED.exec(l)) !== null) this.restarted.push({ index: Number(m[1]), pid: Number(m[2]) });
    else if (l.trim() !== '') {
      const kind = lineKind(l);
      this.other.set(kind, (this.other.get(kind) ?? 0) + 1);
      if (this.samples.length < 20) this.samples.push(l);
    }
  }

  /** The first connection from client port `port` (or of app `pid`) logged at or after start line number `mark`. */
  startFrom(which: { port: number } | { pid: number }, mark: number): StartLine | undefined {
    for (let i = mark; i < this.starts.length; i++) {
      const s = this.starts[i]!;
      if ('port' in which ? s.remotePort === which.port : s.pid === which.pid) return s;
    }
    return undefined;
  }

  endOf(start: StartLine): EndLine | undefined {
    return this.endOfStart.get(start);
  }
}

/** "ucspi-tls-server: pid 12: handshake failed: wrong version number" -> "handshake failed". Pure. */
export function lineKind(l: string): string {
  const body = l.replace(/^ucspi-tls-server: (pid \d+: )?/, '');
  const words = body.split(/[:(,]/)[0]!.trim();
  return words.replace(/\d+(\.\d+)?/g, 'N').slice(0, 60);
}

/** What a session was meant to do: finish byte-exact, or meet the fault its client injects. */
export type Expect = 'finish' | 'vanish' | 'hostile';

export type Verdict = 'finished' | 'fault' | 'worker lost' | 'unexplained';

export interface Seen {
  expect: Expect;
  /** Whether the client did all it set out to do and every check held (bytes, serials, replies; for a hostile client: the server closed). */
  clientOk: boolean;
  end: EndLine | undefined;
}

/**
 * The verdict on one session. A session meant to finish: finished (client checks held, the
 * app exited 0), or lost with its killed worker (its end line says so); a vanishing client:
 * the connection ended after TLS; hostile bytes: it ended without TLS. Anything else, or no
 * end line at all, is unexplained. Pure.
 */
export function verdict(s: Seen): { verdict: Verdict; why?: string } {
  const e = s.end;
  if (e === undefined) return { verdict: 'unexplained', why: 'no end line' };
  const how = `end: ${e.signal ?? `exit ${e.status}`}, ${e.mode}`;
  if (s.expect === 'finish') {
    // An app that exited 0 once its client had everything, on a worker killed just then, is finished.
    if (s.clientOk && e.status === 0 && e.mode !== 'plaintext') return { verdict: 'finished' };
    if (!s.clientOk && e.mode === 'worker lost') return { verdict: 'worker lost' };
    return { verdict: 'unexplained', why: `client ${s.clientOk ? 'ok' : 'failed'}, ${how}` };
  }
  if (e.mode === 'worker lost') return { verdict: 'worker lost' };
  if (s.expect === 'vanish') return s.clientOk && e.mode === 'tls' ? { verdict: 'fault' } : { verdict: 'unexplained', why: `client ${s.clientOk ? 'ok' : 'failed'}, ${how}` };
  return s.clientOk && e.mode === 'plaintext' ? { verdict: 'fault' } : { verdict: 'unexplained', why: `server did not close in time or TLS started, ${how}` };
}

/** The serial the certificate had when a handshake began, or undefined within `graceMs` after a renewal (either may be seen). Pure. */
export function serialDue(renewals: ReadonlyArray<{ at: number; serial: string }>, at: number, graceMs: number): string | undefined {
  let due: string | undefined;
  for (const r of renewals) {
    if (r.at > at) break;
    if (at - r.at < graceMs) return undefined;
    due = r.serial;
  }
  return due;
}

/** Hex serials compared as numbers: case and leading zeros aside. Pure. */
export function sameSerial(a: string, b: string): boolean {
  const n = (s: string): string => s.replace(/[^0-9a-f]/gi, '').replace(/^0+(?=.)/, '').toUpperCase();
  return n(a) === n(b) && n(a) !== '';
}
