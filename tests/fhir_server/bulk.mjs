// FHIR Bulk Data Access 2.0 export, over the store: system, Patient and Group level kick-off,
// status polling (202 a configurable number of times, then the manifest), NDJSON downloads and
// cancellation. The data is read when the export is kicked off, so `transactionTime` is exact.
import { generateId, matchesSearchRequest, parseSearchRequest } from '@medplum/core';

const OUTPUT_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
const KNOWN_PARAMS = new Set(['_type', '_since', '_outputFormat', '_typeFilter']);

export class BulkExports {
  constructor(store, resourceTypes, { polls = 1, retryAfter = 1, linesPerFile = 0 } = {}) {
    this.store = store;
    this.resourceTypes = new Set(resourceTypes);
    this.polls = polls;
    this.retryAfter = retryAfter;
    this.linesPerFile = linesPerFile;
    this.jobs = new Map();
  }

  clear() {
    this.jobs.clear();
  }

  /**
   * Starts an export. `level` is 'system', 'patient' or 'group'; `query` is a URLSearchParams.
   * Returns the job id, or throws an Error with `.status` for a bad request.
   */
  kickOff({ level, groupId, query, headers, requestUrl, requiresAccessToken }) {
    const lenient = /handling\s*=\s*lenient/.test(headers.prefer ?? '');
    if (!/respond-async/.test(headers.prefer ?? '')) {
      throw requestError(400, 'The export requires the header Prefer: respond-async');
    }
    const accept = headers.accept;
    if (accept && !/application\/fhir\+json|application\/json|\*\/\*/.test(accept)) {
      throw requestError(400, `Unsupported Accept for $export: ${accept}`);
    }
    const messages = [];
    for (const name of new Set(query.keys())) {
      if (!KNOWN_PARAMS.has(name)) {
        if (!lenient) {
          throw requestError(400, `Unsupported $export parameter: ${name}`);
        }
        messages.push(`Ignored unsupported $export parameter: ${name}`);
      }
    }
    const format = query.get('_outputFormat');
    if (format && !OUTPUT_FORMATS.has(format)) {
      throw requestError(400, `Unsupported _outputFormat: ${format}`);
    }
    const types = query.getAll('_type').flatMap((v) => v.split(',')).map((t) => t.trim()).filter(Boolean);
    for (const type of types) {
      if (!this.resourceTypes.has(type)) {
        throw requestError(400, `Unknown resource type in _type: ${type}`);
      }
    }
    let since;
    if (query.has('_since')) {
      since = Date.parse(query.get('_since'));
      if (!/^\d{4}-\d{2}-\d{2}T/.test(query.get('_since')) || Number.isNaN(since)) {
        throw requestError(400, `_since must be a FHIR instant: ${query.get('_since')}`);
      }
    }
    const typeFilters = new Map();
    for (const filter of query.getAll('_typeFilter').flatMap((v) => v.split(','))) {
      const request = parseSearchRequest(decodeURIComponent(filter));
      typeFilters.set(request.resourceType, [...(typeFilters.get(request.resourceType) ?? []), request]);
    }

    const transactionTime = new Date().toISOString();
    const selected = this.select(level, groupId, types);
    const byType = new Map();
    for (const resource of selected) {
      if (since !== undefined && !(Date.parse(resource.meta?.lastUpdated ?? '') > since)) {
        continue;
      }
      const filters = typeFilters.get(resource.resourceType);
      if (filters && !filters.some((f) => matchesSearchRequest(resource, f))) {
        continue;
      }
      const lines = byType.get(resource.resourceType) ?? [];
      lines.push(JSON.stringify(resource));
      byType.set(resource.resourceType, lines);
    }

    const id = generateId();
    const files = new Map();
    const output = [];
    for (const type of [...byType.keys()].sort()) {
      const lines = byType.get(type);
      const size = this.linesPerFile > 0 ? this.linesPerFile : lines.length;
      for (let start = 0, part = 1; start < lines.length; start += size, part++) {
        const chunk = lines.slice(start, start + size);
        const name = `${type}-${part}.ndjson`;
        files.set(name, chunk.join('\n') + '\n');
        output.push({ type, name, count: chunk.length });
      }
    }
    const error = [];
    if (messages.length) {
      const outcomes = messages.map((text) => ({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'warning', code: 'not-supported', details: { text } }],
      }));
      files.set('errors-1.ndjson', outcomes.map((o) => JSON.stringify(o)).join('\n') + '\n');
      error.push({ type: 'OperationOutcome', name: 'errors-1.ndjson', count: outcomes.length });
    }
    this.jobs.set(id, {
      pollsLeft: this.polls,
      files,
      manifest: { transactionTime, request: requestUrl, requiresAccessToken, output, error },
    });
    return id;
  }

  select(level, groupId, types) {
    const wanted = (type) => types.length === 0 || types.includes(type);
    if (level === 'system') {
      return [...this.resourceTypes].filter(wanted).flatMap((type) => [...this.store.resourcesOfType(type).values()]);
    }
    let patients;
    if (level === 'group') {
      const group = this.store.resourcesOfType('Group').get(groupId);
      if (!group) {
        throw requestError(404, `Group/${groupId} not found`);
      }
      patients = (group.member ?? [])
        .filter((m) => !m.inactive)
        .map((m) => /^(?:.*\/)?Patient\/([^/]+)$/.exec(m.entity?.reference ?? '')?.[1])
        .filter(Boolean);
    } else {
      patients = [...this.store.compartments.keys()];
    }
    const result = [];
    for (const type of [...this.store.compartmentTypes()].filter(wanted).sort()) {
      const byId = this.store.resourcesOfType(type);
      const seen = new Set();
      for (const patient of patients) {
        for (const id of this.store.compartmentIds(patient, type)) {
          if (!seen.has(id) && byId.has(id)) {
            seen.add(id);
            result.push(byId.get(id));
          }
        }
      }
    }
    return result;
  }

  /** Status of a job: { status: 202 | 200 | 404, manifest? } with file URLs made absolute. */
  poll(id, fileBaseUrl) {
    const job = this.jobs.get(id);
    if (!job) {
      return { status: 404 };
    }
    if (job.pollsLeft > 0) {
      const done = this.polls - job.pollsLeft;
      job.pollsLeft--;
      return { status: 202, progress: `${Math.round((100 * done) / Math.max(this.polls, 1))}% complete` };
    }
    const withUrl = ({ type, name, count }) => ({ type, url: `${fileBaseUrl}/${id}/${name}`, count });
    const { output, error, ...rest } = job.manifest;
    return { status: 200, manifest: { ...rest, output: output.map(withUrl), error: error.map(withUrl) } };
  }

  /** NDJSON text of a finished job's file, or undefined. */
  file(id, name) {
    const job = this.jobs.get(id);
    return job && job.pollsLeft <= 0 ? job.files.get(name) : undefined;
  }

  cancel(id) {
    return this.jobs.delete(id);
  }
}

function requestError(status, message) {
  const err = new Error(message);
  err.status = status;
  return err;
}
