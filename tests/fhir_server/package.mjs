// A FHIR NPM package (package.tgz) loaded into the test server, as a real server loads an
// implementation guide: its conformance resources become readable and searchable, and its
// StructureDefinitions (with snapshots) become profiles that every write claiming them in
// meta.profile is validated against (a write claiming a profile the server does not know is
// stored unchecked, as most servers do).
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { loadDataType, validateResource } from '@medplum/core';

/** The files of a .tgz as name -> Buffer (ustar; regular files only). */
export function untar(path) {
  const data = gunzipSync(readFileSync(path));
  const files = new Map();
  let at = 0;
  while (at + 512 <= data.length) {
    const header = data.subarray(at, at + 512);
    if (header.every((b) => b === 0)) {
      break;
    }
    const text = (start, end) => header.subarray(start, end).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(text(124, 136).trim() || '0', 8);
    const prefix = text(345, 500);
    const name = prefix ? `${prefix}/${text(0, 100)}` : text(0, 100);
    const type = text(156, 157) || '0';
    at += 512;
    if (type === '0') {
      files.set(name, data.subarray(at, at + size));
    }
    at += Math.ceil(size / 512) * 512;
  }
  return files;
}

/**
 * The package's resources (package/*.json, not its examples) and its profiles, url -> the
 * StructureDefinition as loaded into the validator (extensions first, so profiles using them
 * find their definitions).
 */
export function loadPackage(path) {
  const files = untar(path);
  const manifest = JSON.parse(files.get('package/package.json'));
  const resources = [...files]
    .filter(([name]) => /^package\/[^/]+\.json$/.test(name) && !name.endsWith('/package.json'))
    .map(([, data]) => JSON.parse(data))
    .filter((r) => typeof r.resourceType === 'string' && typeof r.id === 'string');
  const definitions = resources.filter((r) => r.resourceType === 'StructureDefinition' && r.snapshot);
  definitions.sort((a, b) => Number(b.type === 'Extension') - Number(a.type === 'Extension'));
  const profiles = new Map();
  for (const sd of definitions) {
    loadDataType(sd);
    profiles.set(sd.url, sd);
  }
  return { name: `${manifest.name}#${manifest.version}`, resources, profiles };
}

/** Validates a resource against each loaded profile it claims; throws on the first error. */
export function validateProfiles(resource, profiles) {
  for (const url of resource.meta?.profile ?? []) {
    const profile = profiles.get(url.split('|')[0]);
    if (profile) {
      validateResource(resource, { profile });
    }
  }
}
