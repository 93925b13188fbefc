// Fulmen's compile step for OpenFn's job DSL: a job's source becomes an ES module whose default
// export is the array of its operations, importing what it uses of its adaptor. OpenFn's own
// compiler is not on the npm registry; this one does what a job needs of it, with acorn:
//
// - each top-level call (`fn(...)`) is an operation, in order; one followed by a promise chain
//   (`get('x').then(s => s).catch(...)`) runs the chain on its result, through the runtime's
//   `defer`;
// - a name the job uses but does not declare, which an adaptor exports, is imported from the
//   first adaptor that does (the job's own, then the collections adaptor, as OpenFn's compiler
//   goes through a job's adaptors);
// - lazy state: `$.data.x` as (part of) an operation's argument becomes `(state) => state.data.x`.
//
// The source is edited in place, never reprinted, so that every line of the module is the line
// the user wrote: an error's line number is theirs (a few columns of line 1 and of each
// operation's first line move).

import { parse } from 'acorn';
import { fullAncestor } from 'acorn-walk';

export const OPERATIONS = '__fulmen_operations';
const DEFER = '__fulmen_defer';

export class CompileError extends Error {
  constructor(message, line) {
    super(message);
    this.name = 'CompileError';
    this.line = line;
  }
}

/**
 * @param {string} source the job's body
 * @param {{specifier: string, exports: Set<string>}
 *   | Array<{specifier: string, exports: Set<string>}>} adaptors what the job's imports come
 *   from, first first
 * @returns {{code: string, operations: number}}
 */
export function compile(source, adaptors) {
  const program = parseJob(source);
  const declared = topLevelNames(program);
  const edits = [];
  const exportsDefault = program.body.some((n) => n.type === 'ExportDefaultDeclaration');
  let operations = 0;
  let deferred = false;
  if (!exportsDefault) {
    for (const node of program.body) {
      if (node.type === 'ExpressionStatement' && node.expression.type === 'CallExpression') {
        edits.push({ at: node.expression.start, text: `${OPERATIONS}.push(` });
        deferred = deferChain(node.expression, edits) || deferred;
        edits.push({ at: node.expression.end, text: ')' });
        operations += 1;
      }
    }
  }
  const used = new Set();
  const wrapped = new Set();
  fullAncestor(program, (node, _state, ancestors) => {
    if (node.type !== 'Identifier') return;
    used.add(node.name);
    if (node.name === '$' && !declared.has('$') && isChainRoot(node, ancestors)) {
      edits.push({ at: node.start, end: node.end, text: 'state' });
      const argument = lazyArgument(ancestors);
      if (argument === undefined) {
        throw new CompileError(
          `LazyStateError at line ${node.loc.start.line}: $ must be used inside an operation's ` +
            'arguments, where it stands for the state the operation is given',
          node.loc.start.line,
        );
      }
      if (argument !== null && !wrapped.has(argument)) {
        wrapped.add(argument);
        edits.push({ at: argument.start, text: '(state) => (' });
        edits.push({ at: argument.end, text: ')' });
      }
    }
  });
  let prefix = '';
  if (deferred) prefix += `import { defer as ${DEFER} } from "@openfn/runtime";`;
  const taken = new Set(declared);
  for (const adaptor of Array.isArray(adaptors) ? adaptors : [adaptors]) {
    const imports = [...used].filter((name) => adaptor.exports.has(name) && !taken.has(name));
    imports.forEach((name) => taken.add(name));
    if (imports.length) {
      prefix += `import { ${imports.sort().join(', ')} } from ${JSON.stringify(adaptor.specifier)};`;
    }
  }
  if (!exportsDefault) prefix += `const ${OPERATIONS} = [];`;
  let code = applyEdits(source, edits);
  code = prefix + code;
  if (!exportsDefault) code += `\n;export default ${OPERATIONS};\n`;
  return { code, operations };
}

const PARSING = { ecmaVersion: 'latest', sourceType: 'module', locations: true, allowHashBang: true };

function parseJob(source) {
  try {
    return parse(source, PARSING);
  } catch (error) {
    const line = error.loc?.line;
    const message = error.message.replace(/ \(\d+:\d+\)$/, '');
    throw new CompileError(`SyntaxError at line ${line ?? '?'}: ${message}`, line);
  }
}

/** The message of the error a job's source does not parse with, or null. */
export function syntaxError(source) {
  try {
    parseJob(source);
    return null;
  } catch (error) {
    return error.message;
  }
}

/**
 * `op(...).then(a).catch(b)` → `defer(op(...), (p) => p.then(a), b)`: an operation is a function
 * of state, not a promise, so the chain must wait for the operation to run. True if it edited.
 */
function deferChain(call, edits) {
  const links = [];
  let root = call;
  while (
    root.type === 'CallExpression' &&
    root.callee.type === 'MemberExpression' &&
    !root.callee.computed &&
    ['then', 'catch'].includes(root.callee.property.name) &&
    root.callee.object.type === 'CallExpression'
  ) {
    links.unshift(root);
    root = root.callee.object;
  }
  if (!links.length) return false;
  const last = links[links.length - 1];
  const caught = last.callee.property.name === 'catch' && last.arguments.length === 1;
  edits.push({ at: root.start, text: `${DEFER}(` });
  edits.push({ at: root.end, text: links.length > 1 || !caught ? ', (p) => p' : '' });
  if (caught) {
    // The handler gets (error, state), as OpenFn's catch at the end of a chain does.
    const previous = links.length > 1 ? links[links.length - 2].end : root.end;
    const text = links.length > 1 ? ', ' : ', undefined, ';
    edits.push({ at: previous, end: last.arguments[0].start, text }); // the catch's ")" ends it
  } else {
    edits.push({ at: call.end, text: ')' });
  }
  return true;
}

/** The names the module declares at its top level: these are never imported. */
function topLevelNames(program) {
  const names = new Set();
  const pattern = (node) => {
    if (!node) return;
    switch (node.type) {
      case 'Identifier':
        names.add(node.name);
        break;
      case 'ObjectPattern':
        node.properties.forEach((p) => pattern(p.type === 'RestElement' ? p.argument : p.value));
        break;
      case 'ArrayPattern':
        node.elements.forEach(pattern);
        break;
      case 'RestElement':
        pattern(node.argument);
        break;
      case 'AssignmentPattern':
        pattern(node.left);
        break;
    }
  };
  for (let node of program.body) {
    if (node.type === 'ExportNamedDeclaration' && node.declaration) node = node.declaration;
    if (node.type === 'VariableDeclaration') node.declarations.forEach((d) => pattern(d.id));
    else if (node.type === 'FunctionDeclaration' || node.type === 'ClassDeclaration') {
      if (node.id) names.add(node.id.name);
    } else if (node.type === 'ImportDeclaration') {
      node.specifiers.forEach((s) => names.add(s.local.name));
    }
  }
  return names;
}

/** True where `$` is read as a value: the object of `$.a`, or `$` alone; not `x.$`. */
function isChainRoot(node, ancestors) {
  const parent = ancestors[ancestors.length - 2];
  if (!parent) return false;
  if (parent.type === 'MemberExpression' && parent.property === node && !parent.computed) {
    return false;
  }
  if (parent.type === 'Property' && parent.key === node && !parent.shorthand) return false;
  return true;
}

/**
 * The operation argument that a `$` inside it makes a function of state: the outermost
 * ancestor that is an argument of a call. `null` when `$` already sits in a function of
 * `state` (nothing to wrap); `undefined` when it is in no call's arguments at all.
 */
function lazyArgument(ancestors) {
  for (let i = ancestors.length - 2; i >= 0; i--) {
    const node = ancestors[i];
    if (
      (node.type === 'ArrowFunctionExpression' || node.type === 'FunctionExpression') &&
      node.params.length === 1 &&
      node.params[0].type === 'Identifier' &&
      node.params[0].name === 'state'
    ) {
      return null;
    }
  }
  for (let i = 1; i < ancestors.length; i++) {
    const parent = ancestors[i - 1];
    const node = ancestors[i];
    if (parent.type === 'CallExpression' && parent.arguments.includes(node)) return node;
  }
  return undefined;
}

function applyEdits(source, edits) {
  // At one position, insertions come before a replacement (of a `$`, or of the `.catch(` that
  // ends a chain), and keep the order they were made in.
  const rank = (e) => (e.end === undefined ? 0 : 1);
  const ordered = edits
    .map((e, i) => ({ ...e, i }))
    .sort((a, b) => a.at - b.at || rank(a) - rank(b) || a.i - b.i);
  let out = '';
  let cursor = 0;
  for (const edit of ordered) {
    out += source.slice(cursor, edit.at) + edit.text;
    cursor = edit.end ?? edit.at;
  }
  return out + source.slice(cursor);
}
