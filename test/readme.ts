// The commands a Markdown file shows: its ```sh blocks, each under the headings it sits in.
// Pure, so that the README's tests and the examples' take the commands from the text itself.

export interface ShellBlock {
  /** The `##` heading above the block (the `#` title before the first one). */
  section: string;
  /** The `###` heading above it within that section, if any. */
  subsection?: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

export interface Fence {
  info: string;
  line: number;
}

/** Every fenced block's info string (`sh`, `ts`, `text`, ...) and line. */
export function fences(markdown: string): Fence[] {
  const out: Fence[] = [];
  let open = false;
  markdown.split('\n').forEach((l, i) => {
    const m = /^```(.*)$/.exec(l);
    if (m === null) return;
    if (!open) out.push({ info: m[1]!.trim(), line: i + 1 });
    open = !open;
  });
  return out;
}

export function shellBlocks(markdown: string): ShellBlock[] {
  const out: ShellBlock[] = [];
  let section = '';
  let subsection: string | undefined;
  let block: ShellBlock | undefined;
  let inOther = false;
  const lines = markdown.split('\n');
  lines.forEach((l, i) => {
    if (block !== undefined) {
      if (l === '```') {
        out.push(block);
        block = undefined;
      } else block.code += `${l}\n`;
      return;
    }
    if (l.startsWith('```')) {
      if (inOther) inOther = false;
      else if (l === '```sh') block = { section, ...(subsection !== undefined ? { subsection } : {}), code: '', line: i + 1 };
      else inOther = true;
      return;
    }
    if (inOther) return;
    const h = /^(#{1,3}) (.+)$/.exec(l);
    if (h === null) return;
    if (h[1]!.length <= 2) {
      section = h[2]!;
      subsection = undefined;
    } else subsection = h[2]!;
  });
  if (block !== undefined) throw new Error(`unclosed \`\`\`sh block at line ${block.line}`);
  return out;
}

/**
 * The command lines of a block as sh reads them: a backslash-newline joins lines (with
 * the next line's indentation), a quoted string may span lines, a comment (a `#` that starts
 * a word outside quotes) ends at the line's end, and blank lines are dropped.
 */
export function commandsOf(code: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  const push = (): void => {
    if (cur.trim() !== '') out.push(cur.trimEnd());
    cur = '';
  };
  for (let i = 0; i < code.length; i++) {
    const c = code[i]!;
    if (quote !== undefined) {
      if (c === '\\' && quote === '"') {
        cur += c + (code[++i] ?? '');
        continue;
      }
      if (c === quote) quote = undefined;
      cur += c;
    } else if (c === '\\' && code[i + 1] === '\n') {
      i++;
      while (code[i + 1] === ' ' || code[i + 1] === '\t') i++;
    } else if (c === '\\') {
      cur += c + (code[++i] ?? '');
    } else if (c === '#' && (cur === '' || /\s$/.test(cur))) {
      while (i + 1 < code.length && code[i + 1] !== '\n') i++;
    } else if (c === '\n') {
      push();
    } else {
      if (c === "'" || c === '"') quote = c;
      cur += c;
    }
  }
  if (quote !== undefined) throw new Error(`unclosed ${quote} in: ${cur}`);
  push();
  return out;
}

/** Lines indented four spaces outside fences: Markdown's other kind of code block. */
export function indentedCode(markdown: string): number[] {
  const out: number[] = [];
  let inFence = false;
  // An indented line continues a paragraph; after a blank line or a heading it is code.
  let prevText = false;
  let inList = false;
  markdown.split('\n').forEach((l, i) => {
    if (l.startsWith('```')) inFence = !inFence;
    else if (!inFence) {
      if (/^\s*([-*]|\d+\.) /.test(l)) inList = true;
      else if (l.trim() === '') {
        // a blank line ends a list item unless the next line is indented under it
      } else if (!l.startsWith(' ')) inList = false;
      if (!inList && !prevText && /^ {4}\S/.test(l)) out.push(i + 1);
    }
    prevText = !inFence && l.trim() !== '' && !l.startsWith('#') && !l.startsWith('```');
  });
  return out;
}

/** A link written `[text](target)` outside code. */
export interface Link {
  target: string;
  line: number;
}

/** The links of a Markdown file, but those in fenced blocks and in `code spans`. */
export function links(markdown: string): Link[] {
  const out: Link[] = [];
  let inFence = false;
  markdown.split('\n').forEach((l, i) => {
    if (l.startsWith('```')) inFence = !inFence;
    if (inFence) return;
    for (const m of l.replace(/`[^`]*`/g, '``').matchAll(/\]\(([^)\s]+)\)/g)) out.push({ target: m[1]!, line: i + 1 });
  });
  return out;
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** Every heading's anchor, a repeated one numbered as GitHub numbers it (`-1`, `-2`, ...). */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let inFence = false;
  for (const l of markdown.split('\n')) {
    if (l.startsWith('```')) inFence = !inFence;
    const h = inFence ? null : /^#{1,6} (.+)$/.exec(l);
    if (h === null) continue;
    const base = slug(h[1]!.trim());
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}
