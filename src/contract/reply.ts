// The `Y` reply: `VAR=val\0` for each variable, then one more `\0`. Pure.

export type Vars = ReadonlyArray<readonly [string, string]>;

export function encodeReply(vars: Vars): Buffer {
  const parts: string[] = [];
  for (const [name, value] of vars) {
    if (name === '' || name.includes('=') || name.includes('\0')) {
      throw new Error(`bad variable name ${JSON.stringify(name)}`);
    }
    // A NUL inside a value would end the variable early: drop it rather than mis-frame.
    parts.push(`${name}=${value.replace(/\0/g, '')}\0`);
  }
  parts.push('\0');
  return Buffer.from(parts.join(''), 'utf8');
}

/** The reader's side, for tests and app-side code. */
export function decodeReply(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  const text = buf.toString('utf8');
  for (const item of text.split('\0')) {
    if (item === '') break;
    const eq = item.indexOf('=');
    if (eq > 0) out.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return out;
}
