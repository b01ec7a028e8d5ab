import { Ajv2020 } from 'ajv/dist/2020.js';

// biome-ignore lint/suspicious/noExplicitAny: a JSON document, walked by path
type Json = Record<string, any>;

/** One exchange the contract judged. */
export interface Exchange {
  method: string;
  path: string;
  status: number;
  requestBody?: unknown;
  responseBody?: unknown;
}

/**
 * Checks real requests and responses against the hub's OpenAPI document: the operation exists, the
 * status is one it lists, the JSON answer matches that status's schema, and a request the hub took
 * (2xx) matches the request body's schema. Returns the problems (empty: conforms).
 */
export function openApiContract(document: Json) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(document, 'openapi');
  const templates = Object.keys(document.paths as Json).map((template) => ({
    template,
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }));
  const pointer = (parts: string[]) =>
    `openapi#/${parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;
  const resolve = (node: Json): { node: Json; parts?: string[] } => {
    if (typeof node.$ref !== 'string') return { node };
    const parts = node.$ref.slice(2).split('/');
    let at: Json = document;
    for (const p of parts) at = at[p];
    return { node: at, parts };
  };
  const validate = (parts: string[], value: unknown): string[] => {
    const check = ajv.getSchema(pointer(parts)) ?? ajv.compile({ $ref: pointer(parts) });
    return check(value) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
  };
  const judged: Exchange[] = [];

  return {
    /** Every exchange judged so far. */
    judged,
    check(exchange: Exchange): string[] {
      judged.push(exchange);
      const path = exchange.path.split('?')[0]!;
      const method = exchange.method.toLowerCase();
      const found = templates.find((t) => t.pattern.test(path) && document.paths[t.template][method]);
      const where = `${exchange.method} ${path} → ${exchange.status}`;
      if (!found) {
        // The ops routes, pages and webhooks are outside the document; an unknown path or method
        // under /api is still answered with the documented error shape.
        if (!path.startsWith('/api/')) return [];
        if (exchange.status >= 400 && exchange.responseBody !== undefined)
          return validate(['components', 'schemas', 'Error'], exchange.responseBody).map(
            (p) => `${where}: ${p}`,
          );
        return [`${where}: no such operation in the document`];
      }
      const op = document.paths[found.template][method] as Json;
      const opParts = ['paths', found.template, method];
      const problems: string[] = [];
      const listed = op.responses[String(exchange.status)];
      const response = listed ?? op.responses.default;
      // An error status is listed too: `default` (the error shape) is for what no route plans for.
      if (!listed) problems.push(`${where}: status not in the document`);
      const resolved = resolve(response);
      const parts = resolved.parts ?? [...opParts, 'responses', listed ? String(exchange.status) : 'default'];
      if (resolved.node.content?.['application/json'] && exchange.responseBody !== undefined)
        problems.push(
          ...validate([...parts, 'content', 'application/json', 'schema'], exchange.responseBody).map(
            (p) => `${where}: response ${p}`,
          ),
        );
      if (exchange.status < 300 && op.requestBody && exchange.requestBody !== undefined)
        problems.push(
          ...validate(
            [...opParts, 'requestBody', 'content', 'application/json', 'schema'],
            exchange.requestBody,
          ).map((p) => `${where}: request ${p}`),
        );
      return problems;
    },
  };
}
