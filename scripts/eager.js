'use strict';
// Mark every function of a CommonJS module for V8 to compile with the file rather than at
// its first call. Node's compile cache keeps what V8 compiled with the file, and nothing
// compiled later: without this, each function a connection runs is compiled again by every
// helper. V8 compiles at once a function literal in parentheses, so:
//   - function expressions and arrow functions get parentheses;
//   - a function declaration at the top of a module or of a function body becomes
//     `var f = (function f(...) {...});` moved to the start of that body, where the
//     declaration's value was bound already (hoisting), so any use before it still works.
// Declarations inside other blocks, and methods, are left as they are. V8 before Node 24
// compiles an arrow function at its first call even in parentheses.
//
//   eager(source, fileName) -> source
const ts = require('typescript');

function eager(source, fileName) {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const isPrologue = (s) => ts.isExpressionStatement(s) && ts.isStringLiteral(s.expression);
  const isScope = (n) => ts.isSourceFile(n) || (ts.isBlock(n) && n.parent !== undefined && ts.isFunctionLike(n.parent));
  const hoistable = (n) => ts.isFunctionDeclaration(n) && n.name !== undefined && n.body !== undefined && isScope(n.parent);

  /** The text of `node` from its first token to its end, with its functions marked. */
  function emit(node) {
    const start = ts.isSourceFile(node) ? 0 : node.getStart(sf);
    let out = '';
    let pos = start;
    let hoisted = '';
    let insertAt = -1;
    if (isScope(node)) {
      const body = node.statements.filter((s) => !isPrologue(s));
      hoisted = node.statements.filter(hoistable).map((d) => `var ${d.name.text} = (${emit(d)});\n`).join('');
      if (hoisted !== '') insertAt = body.length > 0 ? body[0].getStart(sf) : ts.isSourceFile(node) ? node.end : node.end - 1;
    }
    const flush = (to) => {
      if (insertAt >= pos && insertAt <= to) {
        out += source.slice(pos, insertAt) + hoisted;
        pos = insertAt;
        insertAt = -1;
      }
      out += source.slice(pos, to);
      pos = to;
    };
    ts.forEachChild(node, (child) => {
      if (child.kind === ts.SyntaxKind.EndOfFileToken) return;
      flush(child.getStart(sf));
      if (isScope(node) && hoistable(child)) out += '';
      else if ((ts.isFunctionExpression(child) || ts.isArrowFunction(child)) && !ts.isParenthesizedExpression(node)) out += `(${emit(child)})`;
      else out += emit(child);
      pos = child.end;
    });
    flush(node.end);
    return out;
  }
  return emit(sf);
}

module.exports = { eager };
