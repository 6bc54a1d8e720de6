// A test-only FHIR R4 server: plain node:http over Medplum's FhirRouter and an in-memory store.
// See README.md for how to run it and what it does not do.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  OperationOutcomeError,
  badRequest,
  forbidden,
  generateId,
  getStatus,
  globalSchema,
  isOk,
  normalizeOperationOutcome,
  parseSearchRequest,
} from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import { Auth } from './auth.mjs';
import { BulkExports } from './bulk.mjs';
import { loadPackage } from './package.mjs';
import { SEARCHABLE_TYPES, Store, loadDefinitions, patientsNamedBy, patientsOf } from './store.mjs';

const USAGE = `Usage: node server.mjs [options]
  --host HOST                  interface to listen on (default 127.0.0.1)
  --port PORT                  port, 0 for a free one (default 0)
  --base-path PATH             FHIR base path (default /fhir)
  --default-count N            search page size without _count (default 20)
  --max-count N                largest page size honoured (default 1000)
  --export-polls N             status polls answered 202 before the manifest (default 1)
  --export-retry-after S       Retry-After seconds on those polls (default 1)
  --export-file-lines N        resources per NDJSON file, 0 for one file per type (default 0)
  --token TOKEN[:PATIENT]      accept this bearer token (repeatable); env FHIR_SERVER_TOKENS=a,b
  --introspection-url URL      check bearer tokens by RFC 7662 introspection; env FHIR_SERVER_INTROSPECTION_URL
  --introspection-client-id ID / --introspection-client-secret S   HTTP Basic for introspection
  --smart-authorize-url URL / --smart-token-url URL   advertised in /metadata and
                               {base}/.well-known/smart-configuration
  --package FILE               load a FHIR package (package.tgz): its conformance resources are
                               served, and writes claiming its profiles are validated against them
  --delay-ms N                 wait N ms before answering each FHIR request (a slow EHR; default 0)
  --no-validate                store resources without validating them
  --log                        log each request to stderr; env FHIR_SERVER_LOG=1

Real-server behaviours (README.md says which server does each; all off by default, and
switchable while running with POST /_admin/behaviour):
  --empty-minimal-bundles      answer a batch or transaction sent with Prefer: return=minimal
                               with 200 and an empty body
  --transactions-as-batches    process transactions entry by entry, like batches (not atomic)
  --rate-limit N/S             N FHIR requests per S-second window, then 429 with the IETF
                               RateLimit / RateLimit-Policy headers and no Retry-After
  --entry-failures N[:STATUS]  every Nth write entry of a batch (or of a transaction processed as
                               one) fails with STATUS (500) and a serialization-failure
                               OperationOutcome, and is not applied (the same entry is not failed
                               twice in a row); an atomic transaction holding such an entry fails
                               as a whole
  --strict-invariants          evaluate ras-2 as published in R4 4.0.1 and refuse unless it is
                               true (an empty result is a failure)
  --enforce-profiles           a resource naming a profile in meta.profile is refused unless the
                               server holds that StructureDefinition, and validated against it`;

const { values: opts } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'base-path': { type: 'string', default: '/fhir' },
    'default-count': { type: 'string', default: '20' },
    'max-count': { type: 'string', default: '1000' },
    'export-polls': { type: 'string', default: '1' },
    'export-retry-after': { type: 'string', default: '1' },
    'export-file-lines': { type: 'string', default: '0' },
    token: { type: 'string', multiple: true, default: [] },
    'introspection-url': { type: 'string', default: process.env.FHIR_SERVER_INTROSPECTION_URL },
    'introspection-client-id': { type: 'string' },
    'introspection-client-secret': { type: 'string' },
    'smart-authorize-url': { type: 'string' },
    'smart-token-url': { type: 'string' },
    package: { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
    'no-validate': { type: 'boolean', default: false },
    'empty-minimal-bundles': { type: 'boolean', default: false },
    'transactions-as-batches': { type: 'boolean', default: false },
    'rate-limit': { type: 'string' },
    'entry-failures': { type: 'string' },
    'strict-invariants': { type: 'boolean', default: false },
    'enforce-profiles': { type: 'boolean', default: false },
    log: { type: 'boolean', default: process.env.FHIR_SERVER_LOG === '1' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
const int = (name) => {
  const value = Number.parseInt(opts[name], 10);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name} must be a non-negative integer\n${USAGE}`);
    process.exit(2);
  }
  return value;
};
const basePath = '/' + opts['base-path'].replace(/^\/+|\/+$/g, '');
const defaultCount = int('default-count');
const maxCount = int('max-count');
const retryAfter = int('export-retry-after');
const startDelay = int('delay-ms');
let generation = 0; // bumped by every reset

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const VERSION = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).version;
const resourceTypes = loadDefinitions();
const knownTypes = new Set(resourceTypes);
const fhirPackage = opts.package ? loadPackage(opts.package) : undefined;
const store = new Store({ validate: !opts['no-validate'], profiles: fhirPackage?.profiles });
await seedPackage();
const router = new FhirRouter();
const bulk = new BulkExports(store, resourceTypes, {
  polls: int('export-polls'),
  retryAfter,
  linesPerFile: int('export-file-lines'),
});
const envTokens = (process.env.FHIR_SERVER_TOKENS ?? '').split(',').filter(Boolean);
const auth = new Auth({
  tokens: [...opts.token, ...envTokens],
  introspectionUrl: opts['introspection-url'],
  clientId: opts['introspection-client-id'],
  clientSecret: opts['introspection-client-secret'],
});
const startedAt = new Date().toISOString();
let stats = newStats();
// Switchable behaviours (POST /_admin/behaviour); /_admin/reset restores the start-up ones.
const startBehaviour = parseBehaviour({
  delayMs: startDelay,
  emptyMinimalBundles: opts['empty-minimal-bundles'],
  transactionsAsBatches: opts['transactions-as-batches'],
  rateLimit: opts['rate-limit'],
  entryFailures: opts['entry-failures'],
  strictInvariants: opts['strict-invariants'],
  enforceProfiles: opts['enforce-profiles'],
});
let behaviour;
let quota;
let writeEntries;
let failedLast = new Set();
setBehaviour(startBehaviour);

// Requests touch the store one at a time: transactions can be undone, and tests see a
// deterministic order.
let queue = Promise.resolve();
function exclusive(fn) {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

const server = http.createServer((req, res) => {
  const started = performance.now();
  handle(req)
    .catch((err) => errorReply(err))
    .then((reply) => {
      send(res, reply);
      if (opts.log) {
        console.error(`${req.method} ${req.url} ${reply.status} ${(performance.now() - started).toFixed(1)}ms`);
      }
    });
});

async function handle(req) {
  const url = new URL(req.url, 'http://localhost');
  const body = await readBody(req);
  if (url.pathname === basePath || url.pathname.startsWith(basePath + '/')) {
    return fhir(req, url, body);
  }
  if (url.pathname.startsWith('/_admin/')) {
    return exclusive(() => admin(req.method, url.pathname, body, req.headers));
  }
  return outcomeReply(404, `No route for ${req.method} ${url.pathname}`, 'not-found');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, { status, headers = {}, body, contentType = FHIR_JSON }) {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...(payload ? { 'content-type': contentType } : {}),
    ...headers,
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function outcomeReply(status, text, code = status >= 500 ? 'exception' : 'invalid', headers = {}) {
  const severity = status < 400 ? 'information' : 'error';
  return {
    status,
    headers,
    body: { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] },
  };
}

function errorReply(err) {
  if (err instanceof SyntaxError) {
    return outcomeReply(400, `Invalid JSON: ${err.message}`);
  }
  if (err?.status) {
    return outcomeReply(err.status, err.message, err.status === 404 ? 'not-found' : 'invalid');
  }
  if (!(err instanceof OperationOutcomeError)) {
    console.error(err);
  }
  const outcome = normalizeOperationOutcome(err);
  return { status: getStatus(outcome), body: outcome };
}

function parseJson(text) {
  return text.trim() ? JSON.parse(text) : undefined;
}

// ---------------------------------------------------------------------------------------------
// FHIR REST

async function fhir(req, url, body) {
  if (behaviour.delayMs > 0) {
    // Outside the one-at-a-time queue: concurrent requests wait side by side, as on a slow EHR.
    const asked = generation;
    await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
    if (asked !== generation || req.socket.destroyed) {
      // The client gave up, or the test that made it has ended: never counted, never run.
      return outcomeReply(503, 'Request abandoned', 'transient');
    }
  }
  const method = req.method;
  const path = url.pathname.slice(basePath.length).replace(/^\/+|\/+$/g, '');
  const base = `http://${req.headers.host ?? `${opts.host}:${server.address().port}`}${basePath}`;
  stats.requests++;
  stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
  if (method === 'GET' && path === 'metadata') {
    count('capabilities');
    return { status: 200, body: capabilityStatement(base) };
  }
  if (method === 'GET' && path === '.well-known/smart-configuration') {
    count('smart-configuration');
    return smartConfiguration();
  }
  const limit = rateLimit();
  if (limit?.exceeded) {
    count('throttled');
    return outcomeReply(429, 'Too Many Requests', 'throttled', limit.headers);
  }
  const reply = await authorizedFhir(req, method, path, url, body, base).catch(errorReply);
  return limit ? { ...reply, headers: { ...reply.headers, ...limit.headers } } : reply;
}

async function authorizedFhir(req, method, path, url, body, base) {
  const access = await auth.check(req.headers);
  if (!access.ok) {
    count('rejected');
    const challenge = `Bearer realm="fhir"${access.error ? `, error="${access.error}"` : ''}`;
    return outcomeReply(access.status, access.message, 'login', access.status === 401 ? { 'www-authenticate': challenge } : {});
  }
  const ctx = { method, path, url, body, headers: req.headers, base, patient: access.patient, user: access.user };
  return exclusive(async () => {
    store.restrictToPatient = access.patient;
    try {
      return await dispatch(ctx);
    } finally {
      store.restrictToPatient = undefined;
    }
  });
}

async function dispatch(ctx) {
  const { method, path } = ctx;
  const segments = path.split('/').filter(Boolean);
  const [type, second, third] = segments;

  if (segments.at(-1) === '$export' && method === 'GET') {
    if (path === '$export') {
      return exportKickOff(ctx, 'system');
    }
    if (path === 'Patient/$export') {
      return exportKickOff(ctx, 'patient');
    }
    if (type === 'Group' && segments.length === 3) {
      return exportKickOff(ctx, 'group', second);
    }
  }
  if (type === '$export-status' && segments.length === 2) {
    return exportStatus(ctx, second);
  }
  if (type === '$export-file' && segments.length === 3 && method === 'GET') {
    return exportFile(ctx, second, third);
  }
  if (segments.length === 0 && method === 'POST') {
    return bundle(ctx);
  }
  if (type === 'ConceptMap' && second === '$translate' && segments.length === 2 && method === 'GET') {
    return translate(ctx);
  }
  if (!knownTypes.has(type)) {
    count('unknown');
    return outcomeReply(404, `Not supported: ${method} ${path || '/'}`, 'not-supported');
  }
  if ((method === 'GET' && segments.length === 1) || (method === 'POST' && second === '_search' && segments.length === 2)) {
    return search(ctx, type);
  }
  if (method === 'GET' && third === '_history' && segments.length === 3) {
    return history(ctx, type, second);
  }
  return engine(ctx, type, second);
}

const INTERACTIONS = { 'history-instance': 'history', 'search-type': 'search' };

/** Everything the engine does by itself: read, vread, create, update, patch, delete. */
async function engine(ctx, type, id) {
  const { method, path, url, headers, patient } = ctx;
  const route = router.find(method, path);
  const interaction = INTERACTIONS[route?.data?.interaction] ?? route?.data?.interaction ?? 'unknown';
  count(interaction, type);
  let body;
  if (method === 'PATCH' || method === 'PUT' || method === 'POST') {
    body = parseJson(ctx.body);
    if (body === undefined) {
      return outcomeReply(400, `${method} needs a request body`);
    }
  }
  const existing = id ? store.resourcesOfType(type).get(id) : undefined;
  const ownUser = interaction === 'read' && ctx.user !== undefined && ctx.user === `${type}/${id}`;
  if (patient && !ownUser) {
    const denied =
      !['read', 'vread', 'create', 'update', 'patch', 'delete'].includes(interaction) ||
      (existing && !patientsOf(existing).has(patient)) ||
      ((method === 'POST' || method === 'PUT') && !patientsOf(body).has(patient));
    if (denied) {
      return outcomeReply(403, `This token is limited to Patient/${patient}`, 'forbidden');
    }
  }
  const request = { method, url: path + url.search, pathname: '', params: {}, query: {}, body, headers };
  request.config = { transactions: true };
  // In a transaction so that a write whose result leaves the token's compartment is undone.
  const [outcome, resource] = await store.withTransaction(async () => {
    const response = await router.handleRequest(request, store);
    if (patient && !ownUser && response[1] && !patientsOf(response[1]).has(patient)) {
      throw new OperationOutcomeError(forbidden);
    }
    return response;
  });
  if (!isOk(outcome)) {
    return { status: getStatus(outcome), body: outcome };
  }
  let status = getStatus(outcome);
  if (method === 'PUT' && id && !existing && status === 200) {
    status = 201; // update as create
  }
  if (!resource) {
    return { status, body: outcome };
  }
  const responseHeaders = {};
  if (resource.meta?.versionId) {
    responseHeaders.etag = `W/"${resource.meta.versionId}"`;
    responseHeaders['last-modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201) {
    responseHeaders.location = `${ctx.base}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  const prefer = preferredReturn(headers);
  if (method !== 'GET' && prefer === 'minimal') {
    return { status, headers: responseHeaders };
  }
  if (method !== 'GET' && prefer === 'OperationOutcome') {
    return { status, headers: responseHeaders, body: outcome };
  }
  return { status, headers: responseHeaders, body: resource };
}

/** `minimal`, `representation` or `OperationOutcome` from a `Prefer: return=...` header. */
function preferredReturn(headers) {
  return /return=(minimal|representation|OperationOutcome)/.exec(headers.prefer ?? '')?.[1];
}

/**
 * ConceptMap/$translate (GET, R4) over the stored ConceptMaps: system, code and targetsystem.
 * Every mapping of the code is a match (with its equivalence); a group without source maps a
 * free-text unit. Enough for a site's local codes and units, as terminology servers answer.
 */
function translate(ctx) {
  count('operation', 'ConceptMap');
  const params = ctx.url.searchParams;
  const system = params.get('system') ?? '';
  const code = params.get('code');
  const target = params.get('targetsystem');
  if (!code) {
    return outcomeReply(400, '$translate needs a code');
  }
  const matches = [];
  for (const map of store.resourcesOfType('ConceptMap').values()) {
    for (const group of map.group ?? []) {
      if ((group.source ?? '') !== system || (target && group.target !== target)) {
        continue;
      }
      for (const element of group.element ?? []) {
        if (element.code !== code) {
          continue;
        }
        for (const to of element.target ?? []) {
          matches.push({
            name: 'match',
            part: [
              { name: 'equivalence', valueCode: to.equivalence ?? 'equivalent' },
              { name: 'concept', valueCoding: { system: group.target, code: to.code } },
            ],
          });
        }
      }
    }
  }
  const result = matches.some((m) => ['equivalent', 'equal'].includes(m.part[0].valueCode));
  return {
    status: 200,
    body: { resourceType: 'Parameters', parameter: [{ name: 'result', valueBoolean: result }, ...matches] },
  };
}

async function search(ctx, type) {
  count('search', type);
  const { method, url, base, patient } = ctx;
  const params = new URLSearchParams(url.searchParams);
  if (method === 'POST') {
    for (const [key, value] of new URLSearchParams(ctx.body)) {
      params.append(key, value);
    }
  }
  const query = {};
  for (const [key, value] of params) {
    // The engine drops type modifiers: `subject:Patient=123` becomes `subject=Patient/123`.
    const typed = /^([^:.]+):([A-Z][A-Za-z]+)$/.exec(key);
    if (typed && knownTypes.has(typed[2])) {
      const values = value.split(',').map((v) => (v.includes('/') ? v : `${typed[2]}/${v}`));
      query[typed[1]] = [...(query[typed[1]] ?? []), values.join(',')];
    } else if (key !== '_count' && key !== '_offset') {
      query[key] = [...(query[key] ?? []), value];
    }
  }
  const searchCount = params.get('_summary') === 'count' ? 0 : Math.min(pageParam(params, '_count', defaultCount), maxCount);
  const offset = pageParam(params, '_offset', 0);
  const request = parseSearchRequest(type, query);
  if (patient && namesOtherPatient(request, patient)) {
    return outcomeReply(403, `This token is limited to Patient/${patient}`, 'forbidden');
  }
  request.count = searchCount;
  request.offset = offset;
  const result = await store.search(request);

  const link = (at) => {
    const linkParams = new URLSearchParams([...params].filter(([key]) => key !== '_count' && key !== '_offset'));
    linkParams.set('_count', String(searchCount));
    linkParams.set('_offset', String(at));
    return `${base}/${type}?${linkParams}`;
  };
  result.link = [
    { relation: 'self', url: link(offset) },
    { relation: 'first', url: link(0) },
  ];
  if (searchCount > 0 && offset + searchCount < result.total) {
    result.link.push({ relation: 'next', url: link(offset + searchCount) });
  }
  if (searchCount > 0 && offset > 0) {
    result.link.push({ relation: 'previous', url: link(Math.max(0, offset - searchCount)) });
  }
  for (const entry of result.entry ?? []) {
    entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
  }
  return { status: 200, body: { resourceType: 'Bundle', id: generateId(), ...result } };
}

function pageParam(params, name, fallback) {
  if (!params.has(name)) {
    return fallback;
  }
  const value = Number(params.get(name));
  if (!Number.isInteger(value) || value < 0) {
    throw new OperationOutcomeError(badRequest(`${name} must be a non-negative integer`));
  }
  return value;
}

/** Whether a search names a patient other than the token's (by `_id` or a patient reference). */
function namesOtherPatient(request, patient) {
  for (const filter of request.filters ?? []) {
    const named =
      request.resourceType === 'Patient' && filter.code === '_id'
        ? filter.value.split(',')
        : patientsNamedBy(request.resourceType, filter);
    if (named?.some((id) => id !== patient)) {
      return true;
    }
  }
  return false;
}

async function history(ctx, type, id) {
  count('history', type);
  const { url, base, patient } = ctx;
  const current = await store.readResource(type, id);
  if (patient && !patientsOf(current).has(patient)) {
    return outcomeReply(403, `This token is limited to Patient/${patient}`, 'forbidden');
  }
  const versions = (await store.readHistory(type, id)).entry;
  const pageSize = Math.min(pageParam(url.searchParams, '_count', defaultCount), maxCount);
  const offset = pageParam(url.searchParams, '_offset', 0);
  const link = (at) => `${base}/${type}/${id}/_history?_count=${pageSize}&_offset=${at}`;
  const links = [{ relation: 'self', url: link(offset) }];
  if (pageSize > 0 && offset + pageSize < versions.length) {
    links.push({ relation: 'next', url: link(offset + pageSize) });
  }
  if (pageSize > 0 && offset > 0) {
    links.push({ relation: 'previous', url: link(Math.max(0, offset - pageSize)) });
  }
  const entry = versions.map(({ resource }, i) => ({
    fullUrl: `${base}/${type}/${id}`,
    resource,
    request: { method: i === versions.length - 1 ? 'POST' : 'PUT', url: i === versions.length - 1 ? type : `${type}/${id}` },
    response: { status: i === versions.length - 1 ? '201' : '200', etag: `W/"${resource.meta.versionId}"`, lastModified: resource.meta.lastUpdated },
  }));
  return {
    status: 200,
    body: { resourceType: 'Bundle', id: generateId(), type: 'history', total: versions.length, link: links, entry: entry.slice(offset, offset + pageSize) },
  };
}

async function bundle(ctx) {
  const input = parseJson(ctx.body);
  if (input?.resourceType !== 'Bundle' || !['batch', 'transaction'].includes(input.type)) {
    count('unknown');
    return outcomeReply(400, 'POST to the base needs a Bundle of type batch or transaction');
  }
  count(input.type);
  stats.bundleEntries += input.entry?.length ?? 0;
  if (ctx.patient) {
    for (const entry of input.entry ?? []) {
      const [type, id] = (entry.request?.url ?? '').split('?')[0].split('/');
      const existing = id ? store.resourcesOfType(type).get(id) : undefined;
      const allowed =
        ['POST', 'PUT'].includes(entry.request?.method) &&
        entry.resource &&
        patientsOf(entry.resource).has(ctx.patient) &&
        (!existing || patientsOf(existing).has(ctx.patient));
      if (!allowed) {
        return outcomeReply(403, `With this token a ${input.type} may only create or update Patient/${ctx.patient}'s resources`, 'forbidden');
      }
    }
  }
  // Real-server behaviours: a transaction taken entry by entry, and write entries that fail
  // (left out of what the engine sees, answered with the failure where they stood).
  const atomic = input.type === 'transaction' && !behaviour.transactionsAsBatches;
  const failing = failingEntries(input.entry ?? []);
  if (failing.size && atomic) {
    const [outcome] = failing.values();
    return { status: Number(outcome.status.split(' ')[0]), body: outcome.outcome };
  }
  const processed = {
    ...input,
    type: atomic ? 'transaction' : 'batch',
    entry: (input.entry ?? []).filter((_, i) => !failing.has(i)),
  };
  let processedResult = { resourceType: 'Bundle', type: `${processed.type}-response`, entry: [] };
  if (processed.entry.length) {
    const request = { method: 'POST', url: '', pathname: '', params: {}, query: {}, body: processed, headers: ctx.headers };
    request.config = { transactions: true };
    const [outcome, answered] = await router.handleRequest(request, store);
    if (!isOk(outcome) || !answered) {
      return { status: getStatus(outcome), body: outcome };
    }
    processedResult = answered;
  }
  const answers = [...(processedResult.entry ?? [])];
  const result = {
    ...processedResult,
    type: `${input.type}-response`,
    entry: (input.entry ?? []).map((_, i) => (failing.has(i) ? { response: failing.get(i) } : answers.shift())),
  };
  const prefer = preferredReturn(ctx.headers);
  if (prefer === 'minimal' && behaviour.emptyMinimalBundles) {
    return { status: 200 };
  }
  if (['minimal', 'OperationOutcome'].includes(prefer)) {
    // Write entries as the same request alone would be answered: status, location, etag and
    // outcome; reads keep what they read.
    result.entry.forEach((entry, i) => {
      if (!['GET', 'HEAD'].includes(input.entry[i]?.request?.method)) {
        delete entry?.resource;
      }
    });
  }
  return { status: 200, body: { ...result, id: generateId() } };
}

/** The entries of a bundle that fail (``--entry-failures``): index -> the entry's response. */
function failingEntries(entries) {
  const failures = behaviour.entryFailures;
  const failing = new Map();
  if (!failures) {
    return failing;
  }
  const failedBefore = failedLast;
  failedLast = new Set();
  entries.forEach((entry, i) => {
    if (['GET', 'HEAD'].includes(entry?.request?.method)) {
      return;
    }
    writeEntries++;
    // A write that failed for contention usually goes through when tried again: the same entry
    // (method, url, condition) is not failed twice in a row.
    const key = JSON.stringify([entry.request.method, entry.request.url, entry.request.ifNoneExist ?? null]);
    if (writeEntries % failures.every === 0 && !failedBefore.has(key)) {
      failedLast.add(key);
      stats.failedEntries++;
      const text = 'could not serialize access due to concurrent update';
      failing.set(i, {
        status: String(failures.status),
        outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', details: { text } }] },
      });
    }
  });
  return failing;
}

// ---------------------------------------------------------------------------------------------
// Real-server behaviours (see the usage text and README.md)

/** Behaviours from the command line or an admin call, checked. */
function parseBehaviour(given) {
  const delayMs = given.delayMs ?? 0;
  if (!Number.isInteger(delayMs) || delayMs < 0) {
    throw Object.assign(new Error('delayMs must be a non-negative integer'), { status: 400 });
  }
  const out = {
    delayMs,
    emptyMinimalBundles: Boolean(given.emptyMinimalBundles),
    transactionsAsBatches: Boolean(given.transactionsAsBatches),
    strictInvariants: Boolean(given.strictInvariants),
    enforceProfiles: Boolean(given.enforceProfiles),
    rateLimit: undefined,
    entryFailures: undefined,
  };
  const limit = given.rateLimit;
  if (typeof limit === 'string') {
    const match = /^(\d+)\/(\d+(?:\.\d+)?)$/.exec(limit);
    if (!match) {
      throw Object.assign(new Error('rate limit must be N/S, e.g. 100/60'), { status: 400 });
    }
    out.rateLimit = { requests: Number(match[1]), window: Number(match[2]) };
  } else if (limit) {
    out.rateLimit = { requests: Number(limit.requests), window: Number(limit.window) };
  }
  const failures = given.entryFailures;
  if (typeof failures === 'string' || typeof failures === 'number') {
    const [every, status = '500'] = String(failures).split(':');
    out.entryFailures = { every: Number(every), status: Number(status) };
  } else if (failures) {
    out.entryFailures = { every: Number(failures.every), status: Number(failures.status ?? 500) };
  }
  if (out.rateLimit && !(out.rateLimit.requests >= 0 && out.rateLimit.window > 0)) {
    throw Object.assign(new Error('rate limit: requests >= 0 and window > 0'), { status: 400 });
  }
  if (out.entryFailures && !(Number.isInteger(out.entryFailures.every) && out.entryFailures.every >= 1)) {
    throw Object.assign(new Error('entry failures: every must be a positive integer'), { status: 400 });
  }
  return out;
}

function setBehaviour(value) {
  behaviour = value;
  quota = undefined;
  writeEntries = 0;
  store.strictInvariants = value.strictInvariants;
  store.enforceProfiles = value.enforceProfiles;
}

/**
 * Counts a FHIR request against the quota of ``--rate-limit`` (a fixed window from the first
 * request): the RateLimit headers to send, and whether the quota is spent (then 429).
 */
function rateLimit() {
  const limit = behaviour.rateLimit;
  if (!limit) {
    return undefined;
  }
  const now = Date.now();
  if (!quota || now - quota.start >= limit.window * 1000) {
    quota = { start: now, used: 0 };
  }
  const exceeded = quota.used >= limit.requests;
  if (!exceeded) {
    quota.used++;
  }
  const reset = Math.max(1, Math.ceil((quota.start + limit.window * 1000 - now) / 1000));
  return {
    exceeded,
    headers: {
      ratelimit: `"fhirInteractions";r=${limit.requests - quota.used};t=${reset}`,
      'ratelimit-policy': `"fhirInteractions";q=${limit.requests};w=${limit.window}`,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Bulk Data export

function exportKickOff(ctx, level, groupId) {
  count('export', level === 'group' ? 'Group' : level === 'patient' ? 'Patient' : undefined);
  if (ctx.patient) {
    return outcomeReply(403, 'Bulk export is not available to a patient-bound token', 'forbidden');
  }
  const jobId = bulk.kickOff({
    level,
    groupId,
    query: ctx.url.searchParams,
    headers: ctx.headers,
    requestUrl: `${ctx.base}/${ctx.path}${ctx.url.search}`,
    requiresAccessToken: auth.enabled,
  });
  return outcomeReply(202, 'Export started', 'informational', { 'content-location': `${ctx.base}/$export-status/${jobId}` });
}

function exportStatus(ctx, jobId) {
  if (ctx.method === 'DELETE') {
    count('export-delete');
    return bulk.cancel(jobId)
      ? outcomeReply(202, 'Export deleted', 'informational')
      : outcomeReply(404, `No export ${jobId}`, 'not-found');
  }
  count('export-status');
  if (ctx.method !== 'GET') {
    return outcomeReply(405, `${ctx.method} is not allowed here`, 'not-supported');
  }
  const result = bulk.poll(jobId, `${ctx.base}/$export-file`);
  if (result.status === 404) {
    return outcomeReply(404, `No export ${jobId}`, 'not-found');
  }
  if (result.status === 202) {
    return { status: 202, headers: { 'retry-after': String(retryAfter), 'x-progress': result.progress } };
  }
  const expires = new Date(Date.now() + 3600_000).toUTCString();
  return { status: 200, headers: { expires }, body: result.manifest, contentType: 'application/json' };
}

function exportFile(ctx, jobId, name) {
  count('export-file');
  const text = bulk.file(jobId, name);
  if (text === undefined) {
    return outcomeReply(404, `No file ${name} in export ${jobId}`, 'not-found');
  }
  return { status: 200, body: text, contentType: 'application/fhir+ndjson' };
}

// ---------------------------------------------------------------------------------------------
// Metadata

let capabilityCache;
function capabilityStatement(base) {
  capabilityCache ??= buildCapabilityStatement();
  return { ...capabilityCache, implementation: { description: 'fhir-cml test FHIR server', url: base } };
}

function buildCapabilityStatement() {
  const exportOperation = (name) => ({ name: 'export', definition: `http://hl7.org/fhir/uv/bulkdata/OperationDefinition/${name}` });
  const security = {};
  if (auth.enabled) {
    security.service = [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] },
    ];
  }
  if (opts['smart-authorize-url'] && opts['smart-token-url']) {
    security.extension = [
      {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [
          { url: 'authorize', valueUri: opts['smart-authorize-url'] },
          { url: 'token', valueUri: opts['smart-token-url'] },
          ...(opts['introspection-url'] ? [{ url: 'introspect', valueUri: opts['introspection-url'] }] : []),
        ],
      },
    ];
  }
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: startedAt,
    publisher: 'fhir-cml',
    kind: 'instance',
    instantiates: ['http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data'],
    software: { name: 'fhir-cml test FHIR server', version: VERSION },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        ...(Object.keys(security).length ? { security } : {}),
        resource: resourceTypes.map((type) => ({
          type,
          interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'].map(
            (code) => ({ code })
          ),
          versioning: 'versioned-update',
          readHistory: true,
          updateCreate: true,
          conditionalCreate: true,
          conditionalUpdate: true,
          conditionalDelete: 'single',
          searchParam: Object.values(globalSchema.types[type]?.searchParams ?? {})
            .filter((param) => SEARCHABLE_TYPES.has(param.type) && param.code !== '_project')
            .map((param) => ({ name: param.code, type: param.type, ...(param.url ? { definition: param.url } : {}) })),
          ...(type === 'Patient' ? { operation: [exportOperation('patient-export')] } : {}),
          ...(type === 'Group' ? { operation: [exportOperation('group-export')] } : {}),
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
        operation: [exportOperation('export')],
      },
    ],
  };
}

function smartConfiguration() {
  if (!opts['smart-authorize-url'] || !opts['smart-token-url']) {
    return outcomeReply(404, 'No SMART configuration: start the server with --smart-authorize-url and --smart-token-url', 'not-found');
  }
  return {
    status: 200,
    contentType: 'application/json',
    body: {
      authorization_endpoint: opts['smart-authorize-url'],
      token_endpoint: opts['smart-token-url'],
      ...(opts['introspection-url'] ? { introspection_endpoint: opts['introspection-url'] } : {}),
      grant_types_supported: ['authorization_code', 'client_credentials'],
      code_challenge_methods_supported: ['S256'],
      capabilities: [
        'launch-ehr',
        'launch-standalone',
        'client-public',
        'client-confidential-symmetric',
        'context-ehr-patient',
        'context-standalone-patient',
        'permission-patient',
        'permission-v2',
      ],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Test-only administration, outside the FHIR base

function newStats() {
  return { since: new Date().toISOString(), requests: 0, byMethod: {}, byInteraction: {}, byResourceType: {}, bundleEntries: 0, failedEntries: 0 };
}

function count(interaction, type) {
  stats.byInteraction[interaction] = (stats.byInteraction[interaction] ?? 0) + 1;
  if (type) {
    const byType = (stats.byResourceType[type] ??= {});
    byType[interaction] = (byType[interaction] ?? 0) + 1;
  }
}

async function admin(method, path, body, headers) {
  const json = (value) => ({ status: 200, body: value, contentType: 'application/json' });
  if (method === 'POST' && path === '/_admin/reset') {
    store.clear();
    bulk.clear();
    await seedPackage(); // a server keeps the guides it has loaded
    setBehaviour(startBehaviour);
    generation++;
    return json({ reset: true });
  }
  if (method === 'GET' && path === '/_admin/behaviour') {
    return json(behaviour);
  }
  if (method === 'POST' && path === '/_admin/behaviour') {
    setBehaviour(parseBehaviour({ ...behaviour, ...(parseJson(body) ?? {}) }));
    return json(behaviour);
  }
  if (method === 'GET' && path === '/_admin/stats') {
    return json({ ...stats, fullScans: store.fullScans });
  }
  if (method === 'POST' && path === '/_admin/stats/reset') {
    stats = newStats();
    store.fullScans = {};
    return json({ ...stats, fullScans: store.fullScans });
  }
  if (method === 'POST' && path === '/_admin/load') {
    const resources = resourcesToLoad(body, headers['content-type'] ?? '');
    const types = {};
    await store.withSeeding(() => {
      for (const resource of resources) {
        store.createResourceSync(resource, undefined, true);
        types[resource.resourceType] = (types[resource.resourceType] ?? 0) + 1;
      }
    });
    return json({ loaded: resources.length, types });
  }
  return outcomeReply(404, `No route for ${method} ${path}`, 'not-found');
}

/** The loaded package's conformance resources, stored as they are (readable and searchable). */
async function seedPackage() {
  if (!fhirPackage) {
    return;
  }
  await store.withSeeding(() => {
    for (const resource of fhirPackage.resources) {
      store.createResourceSync(deepCopy(resource), undefined, true);
    }
  });
}

function deepCopy(value) {
  return JSON.parse(JSON.stringify(value));
}

/**
 * Resources from a Bundle (any type; `urn:uuid:` references between its entries are resolved),
 * a JSON array, a single resource, or NDJSON. Ids and meta.lastUpdated given are kept.
 */
function resourcesToLoad(body, contentType) {
  let resources;
  let fullUrls = [];
  if (/ndjson/.test(contentType)) {
    resources = body.split('\n').filter((line) => line.trim()).map((line) => JSON.parse(line));
  } else {
    const data = JSON.parse(body);
    if (Array.isArray(data)) {
      resources = data;
    } else if (data?.resourceType === 'Bundle') {
      resources = (data.entry ?? []).map((e) => e.resource);
      fullUrls = (data.entry ?? []).map((e) => e.fullUrl);
    } else {
      resources = [data];
    }
  }
  const references = new Map();
  resources.forEach((resource, i) => {
    if (!resource || !knownTypes.has(resource.resourceType)) {
      throw Object.assign(new Error(`Not a resource of a known type at position ${i}`), { status: 400 });
    }
    if (fullUrls[i]?.startsWith('urn:uuid:')) {
      resource.id ??= generateId();
      references.set(fullUrls[i], `${resource.resourceType}/${resource.id}`);
    }
  });
  if (references.size) {
    const rewrite = (value) => {
      if (Array.isArray(value)) {
        value.forEach(rewrite);
      } else if (value && typeof value === 'object') {
        for (const [key, item] of Object.entries(value)) {
          if (key === 'reference' && references.has(item)) {
            value[key] = references.get(item);
          } else {
            rewrite(item);
          }
        }
      }
    };
    resources.forEach(rewrite);
  }
  return resources;
}

// ---------------------------------------------------------------------------------------------

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  });
}

server.listen(Number.parseInt(opts.port, 10), opts.host, () => {
  console.log(`listening on http://${opts.host}:${server.address().port}${basePath}`);
});
