// One listening socket, which the acceptor can stop accepting on and start again, as
// tcpserver does at its -c limit: meanwhile clients wait in the kernel's listen queue.
//
// net.Server has no pause. Closing the server would close the socket and reset every
// waiting client, unless another fd still holds the socket: so the acceptor keeps a
// spare fd of it (sent to the spawner and back: see runtime/listening-handle.ts), closes the
// server to pause, and listens on the spare to resume (then fetches a new spare).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { listeningHandle } from '../../runtime/listening-handle';

/** `reusePort`: SO_REUSEPORT (Node.js 22.12 and later; see lifecycle/reuse-port.ts). */
export type Target = { host: string; port: number; reusePort?: boolean } | { fd: number };

/** Asks for a second fd of a listening handle: `got` receives it, a raw handle, or undefined when it will not come. */
export type SpareFetcher = (handle: unknown, got: (spare: unknown) => void) => void;

export class Listener {
  private server: Server | null = null;
  private spare: unknown;
  private fetching = false;
  private wantPaused = false;
  private closed = false;
  private where: AddressInfo | undefined;

  constructor(
    private readonly onConnection: (s: Socket) => void,
    private readonly fetchSpare: SpareFetcher,
  ) {}

  /** Resolves once listening; rejects with the reason it cannot. */
  listen(target: Target, backlog: number): Promise<void> {
    const server = this.newServer();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ ...target, backlog }, () => {
        server.off('error', reject);
        this.where = server.address() as AddressInfo;
        this.getSpare();
        resolve();
      });
    });
  }

  address(): AddressInfo {
    return this.where!;
  }

  /** Stop accepting (at once if the spare is here, else as soon as it comes). */
  pause(): void {
    this.wantPaused = true;
    if (this.spare === undefined) this.getSpare();
    if (this.server !== null && this.spare !== undefined) {
      this.server.close();
      this.server = null;
    }
  }

  resume(): void {
    this.wantPaused = false;
    if (this.server !== null || this.spare === undefined || this.closed) return;
    const server = this.newServer();
    const handle = this.spare;
    this.spare = undefined;
    server.listen(handle, () => this.getSpare());
  }

  /** Whether the server is accepting now. */
  accepting(): boolean {
    return this.server !== null;
  }

  close(): void {
    this.closed = true;
    this.server?.close();
    this.server = null;
    this.dropSpare();
  }

  private newServer(): Server {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, this.onConnection);
    // Accept errors (EMFILE, ...) are logged by the caller's connection count, not fatal.
    server.on('error', () => {});
    this.server = server;
    return server;
  }

  private getSpare(): void {
    if (this.fetching || this.spare !== undefined || this.server === null) return;
    this.fetching = true;
    this.fetchSpare(listeningHandle(this.server), (spare) => {
      this.fetching = false;
      if (spare === undefined) return; // the worker died: asked again at the next pause
      this.spare = spare;
      if (this.closed) return this.dropSpare();
      if (this.wantPaused) this.pause();
    });
  }

  private dropSpare(): void {
    if (this.spare !== undefined) (this.spare as { close(): void }).close();
    this.spare = undefined;
  }
}
