// The launcher's own log lines, as ucspi-tls-server(1) shows them. Pure.

export interface Peer {
  address: string;
  port: number;
}

export function listeningLine(where: string[], workers: number, concurrency: number): string {
  return `listening on ${where.join(', ')}, ${workers} worker${workers === 1 ? '' : 's'}, at most ${concurrency} connections`;
}

export function place(p: Peer): string {
  return `${p.address} port ${p.port}`;
}

export function startLine(remote: Peer, local: Peer, worker: number, active: number, concurrency: number): string {
  return `start: ${place(remote)} -> ${place(local)}, worker ${worker}, ${active} of ${concurrency}`;
}

export type Ending = { code: number; signal: null } | { code: null; signal: string };

export type Mode = 'tls' | 'plaintext' | 'worker lost';

export function endLine(e: Ending, mode: Mode, toClient: number, toApp: number, ms: number): string {
  const how = e.signal !== null ? `signal ${e.signal}` : `exit ${e.code}`;
  return `end: ${how}, ${mode}, ${toClient} bytes to client, ${toApp} bytes to app, ${(ms / 1000).toFixed(3)} s`;
}

export function workerDiedLine(index: number, pid: number, code: number | null, signal: string | null, lost: number): string {
  const how = signal !== null ? `died on ${signal}` : `died with ${code}`;
  return `worker ${index} (pid ${pid}) ${how}: ${lost} connection(s) lost; starting another`;
}
