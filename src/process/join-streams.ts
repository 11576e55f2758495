// Two one-way streams as one duplex, with backpressure and half-close.
import { Duplex, type Readable, type Writable } from 'node:stream';

export function joinStreams(r: Readable, w: Writable): Duplex {
  const d = new Duplex({
    allowHalfOpen: true,
    read() {
      r.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      w.write(chunk, cb);
    },
    final(cb) {
      w.end(cb);
    },
    destroy(err, cb) {
      r.destroy();
      w.destroy();
      cb(err);
    },
  });
  r.pause();
  r.on('data', (chunk: Buffer) => {
    if (!d.push(chunk)) r.pause();
  });
  r.on('end', () => d.push(null));
  r.on('error', (e) => d.destroy(e));
  w.on('error', (e) => d.destroy(e));
  return d;
}
