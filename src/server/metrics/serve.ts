// The metrics endpoint: GET /metrics over HTTP on the one address --metrics gives, nothing
// else (404). A scrape gets what is known when it asks (see the launcher's metrics()):
// never a session's time, never more than a worker's answer time.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { errorWords } from '../../messages';
import { metricsPlace, type MetricsAddress } from './address';
import { CONTENT_TYPE } from './text-format';

/** A few scrapers at a time is plenty; more wait in the listen queue. */
const MAX_CONNECTIONS = 8;

export class MetricsServer {
  private server: Server | undefined;

  constructor(
    private readonly address: MetricsAddress,
    /** The text of one scrape. */
    private readonly collect: () => Promise<string>,
    private readonly warn: (line: string) => void,
    /** --reuse-port: host:port shared with the server this one replaces, as the listening port is. */
    private readonly reusePort = false,
  ) {}

  /** Resolves once listening; rejects with the one line saying why it cannot. */
  async listen(): Promise<void> {
    const where = metricsPlace(this.address);
    if (this.address.kind === 'unix') {
      const stale = await staleSocket(this.address.path);
      if (typeof stale === 'string') throw new Error(`cannot listen on ${where} for --metrics: ${stale}`);
    }
    const server = createServer((req, res) => this.answer(req, res));
    server.maxConnections = MAX_CONNECTIONS;
    // A scraper that sends nothing, or slowly, does not hold a place for long.
    server.headersTimeout = 5000;
    server.requestTimeout = 10000;
    server.maxHeadersCount = 50;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`cannot listen on ${where} for --metrics: ${errorWords(e)}`)));
      const done = (): void => {
        server.removeAllListeners('error');
        server.on('error', (e) => this.warn(`metrics on ${where}: ${errorWords(e)}`));
        resolve();
      };
      if (this.address.kind === 'unix') server.listen(this.address.path, done);
      else server.listen({ host: this.address.host, port: this.address.port, ...(this.reusePort ? { reusePort: true } : {}) }, done);
    });
    this.server = server;
  }

  /** Stop listening (a Unix socket's file goes with it). */
  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found: only GET /metrics\n');
      return;
    }
    this.collect().then(
      (body) => {
        res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
      (e: unknown) => {
        this.warn(`metrics: ${errorWords(e)}`);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('error\n');
      },
    );
  }
}

/**
 * A socket file left by a server that is gone (SIGKILL, a crash) is removed; one that a
 * server answers on, or a file of another kind, is not: the reason is returned.
 */
async function staleSocket(path: string): Promise<string | undefined> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return undefined; // nothing there
  }
  if (!isSocket) return 'a file that is not a socket is there';
  const inUse = await new Promise<string | undefined>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve('a server is listening there already');
    });
    // Refused: nobody listens, the file is stale.
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? undefined : `a socket is there: ${errorWords(e)}`));
  });
  if (inUse !== undefined) return inUse;
  try {
    unlinkSync(path);
  } catch (e) {
    return `cannot remove the stale socket: ${errorWords(e)}`;
  }
  return undefined;
}
