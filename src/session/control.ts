// The app's command on the control socket. Pure.

export type Command = { kind: 'tls'; withInfo: boolean } | { kind: 'unknown'; byte: number };

export function classifyCommand(byte: number): Command {
  if (byte === 0x79) return { kind: 'tls', withInfo: false }; // 'y'
  if (byte === 0x59) return { kind: 'tls', withInfo: true }; // 'Y'
  return { kind: 'unknown', byte };
}

export function describeByte(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  return byte >= 0x21 && byte <= 0x7e ? `'${String.fromCharCode(byte)}' (${hex})` : hex;
}
