// Lines from a stream, reading no further ahead than the stream hands over: between two
// calls the source is paused, so bytes the peer sends after a command stay in the kernel
// (or are counted in `buffered`), never silently in a buffer the app forgot.
import type { Readable } from 'node:stream';

export class LineTooLongError extends Error {
  override name = 'LineTooLongError';
}

export class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly source: Readable,
    private readonly maxLine = 64 * 1024,
  ) {
    source.pause();
    source.on('data', this.onData);
    source.on('end', this.onEnd);
    source.on('error', this.onError);
  }

  /** Bytes received and not yet returned as a line. */
  get buffered(): number {
    return this.buf.length + this.source.readableLength;
  }

  /** The next line without its CR LF or LF, or null at the end of the stream. */
  async line(): Promise<string | null> {
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i >= 0) {
        const end = i > 0 && this.buf[i - 1] === 0x0d ? i - 1 : i;
        const l = this.buf.subarray(0, end).toString('utf8');
        this.buf = this.buf.subarray(i + 1);
        return l;
      }
      if (this.buf.length > this.maxLine) throw new LineTooLongError(`line longer than ${this.maxLine} bytes`);
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) {
        if (this.buf.length === 0) return null;
        const l = this.buf.toString('utf8');
        this.buf = Buffer.alloc(0);
        return l;
      }
      await new Promise<void>((r) => {
        this.wake = r;
        this.source.resume();
      });
    }
  }

  /** Stop reading; the source stays paused. Returns what was received past the last line. */
  detach(): Buffer {
    this.source.pause();
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onError);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  private readonly onData = (d: Buffer): void => {
    this.source.pause();
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    this.signal();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.signal();
  };
  private readonly onError = (e: Error): void => {
    this.failure = e;
    this.signal();
  };
  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
