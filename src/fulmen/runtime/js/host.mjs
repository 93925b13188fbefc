// Runs a run's JavaScript steps and edge conditions, for the Python runtime in the same sandbox
// (fulmen/runtime/jshost.py), with OpenFn's own runtime: one process per run, started at its
// first JavaScript step, ended when its standard input closes.
//
// Requests arrive on stdin, one JSON object per line:
//   {"op": "step", "id", "label", "body", "adaptor": {"specifier", "path"}, "also": [...],
//    "state", "logLevel"}   also: adaptors besides the job's own (the collections adaptor)
//   {"op": "condition", "expression", "state", "upstream"}
//   {"op": "check", "bodies": [...], "expressions": [...]}   before the first step
//   {"op": "warm", "adaptors": [{"specifier", "path"}, ...]}  in a spare, before its run
// Answers go to the descriptor named by the one argument (`node host.mjs 5`: fd 5), one JSON
// object per line, so that whatever a job or an adaptor writes to
// stdout or stderr can never be taken for one (that goes to the run's output, as a Python job's
// stray writes do):
//   {"t": "ready", "node", "runtime"}               once, at start
//   {"t": "log", "level", "name", "message"}         any number, while a step runs
//   {"t": "step", "state", "error"}                  a step's end; error: {type, message, severity}
//   {"t": "condition", "value"} or {"t": "condition", "error"}
//   {"t": "check", "bodies": [error or null, ...], "expressions": [error or null, ...]}
//   {"t": "warm"}

import { writeSync, readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

import run from '@openfn/runtime';
import createLogger from '@openfn/logger';

import { compile, syntaxError } from './compile.mjs';

// The sandbox lets a run read no /proc, where Node finds a process's resident memory; OpenFn's
// runtime asks for it after every step. V8's own figures need no file.
process.memoryUsage = Object.assign(
  () => {
    const heap = v8.getHeapStatistics();
    return {
      rss: heap.total_physical_size + heap.external_memory,
      heapTotal: heap.total_heap_size,
      heapUsed: heap.used_heap_size,
      external: heap.external_memory,
      arrayBuffers: 0,
    };
  },
  { rss: () => v8.getHeapStatistics().total_physical_size },
);

const ANSWERS = Number(process.argv[2]);

function send(message) {
  const bytes = Buffer.from(JSON.stringify(message) + '\n');
  let written = 0;
  while (written < bytes.length) {
    written += writeSync(ANSWERS, bytes, written);
  }
}

const LEVELS = ['info', 'debug', 'log', 'warn', 'error', 'success', 'always'];
const emit = (line) =>
  send({ t: 'log', level: line.level, name: line.name, message: line.message });
const emitter = Object.fromEntries(LEVELS.map((level) => [level, emit]));

// The runtime's own lines: Fulmen's runtime says when a step starts and ends and how long it
// took; what OpenFn's adds worth keeping is what it says about an error (where, the fix).
const troubles = Object.fromEntries(
  LEVELS.map((level) => [level, ['warn', 'error'].includes(level) ? emit : () => {}]),
);
const runtimeLogger = createLogger('R/T', {
  logger: troubles,
  level: 'default',
  json: true,
  sanitize: 'none',
});
// What adaptors print with console.* (ws-worker does the same): never our stdout.
globalThis.console = createLogger('ADA', {
  logger: emitter,
  level: 'debug',
  json: true,
  sanitize: 'none',
});

const adaptors = new Map();

async function adaptorExports(path) {
  if (!adaptors.has(path)) {
    const pkg = JSON.parse(readFileSync(resolvePath(path, 'package.json'), 'utf8'));
    const field = typeof pkg.exports === 'string' ? pkg.exports : pkg.exports?.['.'];
    const entry = (typeof field === 'string' ? field : field?.import) ?? pkg.main ?? 'index.js';
    const module = await import(pathToFileURL(resolvePath(path, entry)).href);
    adaptors.set(path, { names: new Set(Object.keys(module)), version: pkg.version });
  }
  return adaptors.get(path);
}

function errorOf(error) {
  const severity = ['fail', 'crash', 'kill'].includes(error?.severity) ? error.severity : 'crash';
  let type = error?.name || error?.constructor?.name || 'Error';
  let message = error?.message ?? String(error);
  if (error?.pos?.line) message += ` (line ${error.pos.line})`;
  return { type, message, severity };
}

async function step(request) {
  const loaded = [];
  for (const { specifier, path } of [request.adaptor, ...(request.also ?? [])]) {
    try {
      const adaptor = await adaptorExports(path);
      loaded.push({ specifier, path, exports: adaptor.names, version: adaptor.version });
    } catch (error) {
      return {
        state: request.state,
        error: {
          type: 'AdaptorError',
          message: `could not load ${specifier} from ${path}: ${error.message}`,
          severity: 'crash',
        },
      };
    }
  }
  const modules = Object.fromEntries(
    loaded.map(({ specifier, path, version }) => [specifier, { path, version }]),
  );
  let compiled;
  try {
    compiled = compile(request.body, loaded);
  } catch (error) {
    return {
      state: request.state,
      error: { type: 'CompileError', message: `${request.label}: ${error.message}`, severity: 'crash' },
    };
  }
  const jobLogger = createLogger('JOB', {
    logger: emitter,
    level: request.logLevel,
    json: true,
    sanitize: 'none',
  });
  let failure = null;
  try {
    const state = await run(compiled.code, request.state, {
      logger: runtimeLogger,
      jobLogger,
      defaultStepId: request.id,
      statePropsToRemove: [],
      linker: { modules },
      callbacks: {
        notify: (event, payload) => {
          if (event === 'job-error') failure = payload.error;
        },
      },
    });
    return { state: state ?? null, error: failure && errorOf(failure) };
  } catch (error) {
    return { state: request.state, error: errorOf(error) };
  }
}

// Edge conditions: an expression of `state` (and `upstreamStepId`), as OpenFn's runtime
// compiles them, in a context of its own.
const conditionContext = vm.createContext({});

const conditionFunction = (expression) =>
  vm.compileFunction(`return (${expression});`, ['state', 'upstreamStepId'], {
    parsingContext: conditionContext,
  });

function condition(request) {
  try {
    const test = conditionFunction(request.expression);
    return { value: Boolean(test(request.state, request.upstream)) };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
}

function check(request) {
  const expressions = (request.expressions ?? []).map((expression) => {
    try {
      conditionFunction(expression);
      return null;
    } catch (error) {
      return `${error.name}: ${error.message}`;
    }
  });
  return { bodies: (request.bodies ?? []).map(syntaxError), expressions };
}

// Beside this file in the worker's repository (fulmen.packages.npm puts it there).
// Load each adaptor and run a job on it once, on dummy data, with nothing logged: what the
// first step of a run would otherwise spend compiling and linking (tens of milliseconds more
// than loading). Only the spare's own data is here: its run has not arrived.
async function warm(request) {
  const silent = Object.fromEntries(LEVELS.map((level) => [level, () => {}]));
  const quiet = createLogger('JOB', { logger: silent, level: 'none', json: true });
  for (const { specifier, path } of request.adaptors ?? []) {
    try {
      const adaptor = await adaptorExports(path);
      const body = adaptor.names.has('fn') ? 'fn(state => state);' : 'export default [];';
      const { code } = compile(body, { specifier, exports: adaptor.names });
      await run(code, { data: {} }, {
        logger: quiet,
        jobLogger: quiet,
        statePropsToRemove: [],
        linker: { modules: { [specifier]: { path, version: adaptor.version } } },
      });
    } catch {
      // A run that needs this adaptor will say what is wrong with it.
    }
  }
}

const runtimeVersion = JSON.parse(
  readFileSync(new URL('./node_modules/@openfn/runtime/package.json', import.meta.url), 'utf8'),
).version;
send({ t: 'ready', node: process.versions.node, runtime: runtimeVersion });

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line) continue;
  const request = JSON.parse(line);
  if (request.op === 'step') {
    send({ t: 'step', ...(await step(request)) });
  } else if (request.op === 'condition') {
    send({ t: 'condition', ...condition(request) });
  } else if (request.op === 'check') {
    send({ t: 'check', ...check(request) });
  } else if (request.op === 'warm') {
    await warm(request);
    send({ t: 'warm' });
  }
}
