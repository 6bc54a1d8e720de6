// Optional bearer-token protection: a fixed list of tokens, or OAuth 2.0 token introspection
// (RFC 7662). A token bound to a patient (`patient` in the introspection response, or
// `token:patientId` in the list) confines the caller to that patient's compartment.

export class Auth {
  /**
   * @param {object} options
   * @param {string[]} [options.tokens] - accepted tokens, each `token` or `token:patientId`
   * @param {string} [options.introspectionUrl] - RFC 7662 endpoint to POST `token=` to
   * @param {string} [options.clientId] - HTTP Basic credentials for the introspection endpoint
   * @param {string} [options.clientSecret]
   */
  constructor({ tokens = [], introspectionUrl, clientId, clientSecret } = {}) {
    this.tokens = new Map();
    for (const entry of tokens) {
      const colon = entry.lastIndexOf(':');
      if (colon > 0) {
        this.tokens.set(entry.slice(0, colon), { active: true, patient: entry.slice(colon + 1) });
      } else {
        this.tokens.set(entry, { active: true });
      }
    }
    this.introspectionUrl = introspectionUrl;
    this.basic = clientId ? Buffer.from(`${clientId}:${clientSecret ?? ''}`).toString('base64') : undefined;
  }

  get enabled() {
    return this.tokens.size > 0 || Boolean(this.introspectionUrl);
  }

  /**
   * Checks the request's bearer token.
   * @returns {Promise<{ok: true, patient?: string, user?: string} | {ok: false, status: number, error?: string, message: string}>}
   */
  async check(headers) {
    if (!this.enabled) {
      return { ok: true };
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
    if (!match) {
      return { ok: false, status: 401, message: 'A bearer token is required' };
    }
    const token = match[1];
    let info = this.tokens.get(token);
    if (!info && this.introspectionUrl) {
      try {
        info = await this.introspect(token);
      } catch (err) {
        return { ok: false, status: 503, message: `Token introspection failed: ${err.message}` };
      }
    }
    if (info?.active !== true) {
      return { ok: false, status: 401, error: 'invalid_token', message: 'The bearer token is not valid' };
    }
    // `sub` naming a FHIR resource (SMART's fhirUser, e.g. Practitioner/123) may be read by the
    // user's own token whatever its patient binding: `openid fhirUser` grants that.
    const user = typeof info.sub === 'string' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9.-]+$/.test(info.sub) ? info.sub : undefined;
    return { ok: true, patient: typeof info.patient === 'string' && info.patient ? info.patient : undefined, user };
  }

  async introspect(token) {
    const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.basic) {
      headers.authorization = `Basic ${this.basic}`;
    }
    const response = await fetch(this.introspectionUrl, {
      method: 'POST',
      headers,
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    return response.json();
  }
}
