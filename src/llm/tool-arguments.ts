import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';

type Schema = Record<string, unknown>;

const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keywords that already say what an object may hold beyond its `properties`. */
const OPEN_KEYWORDS = ['additionalProperties', 'patternProperties', 'unevaluatedProperties'];

/**
 * The schema with every object closed (`additionalProperties: false`) unless it says otherwise:
 * a model's arguments hold the declared parameters and nothing else. Objects are closed at the
 * top, under `properties`, `items` and in `$defs`/`definitions`; the branches of `allOf`,
 * `anyOf` and `oneOf` are left as written (closing each branch would refuse what the
 * combination allows).
 */
export function closeObjects(schema: Schema): Schema {
  const out: Schema = { ...schema };
  const isObject = out.type === 'object' || (out.type === undefined && isSchema(out.properties));
  if (isObject && !OPEN_KEYWORDS.some((k) => k in out)) out.additionalProperties = false;
  if (isSchema(out.properties))
    out.properties = Object.fromEntries(
      Object.entries(out.properties).map(([k, v]) => [k, isSchema(v) ? closeObjects(v) : v]),
    );
  if (isSchema(out.items)) out.items = closeObjects(out.items);
  for (const key of ['$defs', 'definitions'])
    if (isSchema(out[key]))
      out[key] = Object.fromEntries(
        Object.entries(out[key]).map(([k, v]) => [k, isSchema(v) ? closeObjects(v) : v]),
      );
  return out;
}

/** One line per problem, naming the argument: `times: must be >= 1`, `secret: not a parameter of this tool`. */
function describeError(e: ErrorObject): string {
  const at = e.instancePath.split('/').slice(1).join('.');
  const join = (name: string) => (at ? `${at}.${name}` : name);
  if (e.keyword === 'additionalProperties')
    return `${join(String(e.params.additionalProperty))}: not a parameter of this tool`;
  if (e.keyword === 'required') return `${join(String(e.params.missingProperty))}: is required`;
  return `${at || '(arguments)'}: ${e.message ?? 'is not valid'}`;
}

export type ArgumentCheck = { ok: true } | { ok: false; problems: string[] };

/** A tool's parameters as the model is shown them and as its arguments are checked. */
export interface ToolArguments {
  /** The declared schema, objects closed: what the model is given. */
  schema: Schema;
  check(args: unknown): ArgumentCheck;
}

/**
 * Compiles a tool's JSON Schema with ajv (one instance per bot, so that two bots' `$id`s never
 * collide). Throws when the schema is not one ajv can use.
 */
export function compileToolArguments(ajv: Ajv, parameters: Schema): ToolArguments {
  const schema = closeObjects(parameters);
  const validate: ValidateFunction = ajv.compile(schema);
  return {
    schema,
    check(args) {
      if (validate(args)) return { ok: true };
      return { ok: false, problems: (validate.errors ?? []).map(describeError) };
    },
  };
}

/**
 * The validator tool schemas are compiled with: every error reported (the model fixes them all
 * at once), nothing coerced or filled in (the tool gets what the model sent), and unknown
 * keywords or formats tolerated rather than fatal (bots copy schemas from providers' docs).
 */
export function toolValidator(): Ajv {
  // Required here, not imported above: a hub whose bots declare no tools never loads ajv.
  const { Ajv: AjvClass } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  return new AjvClass({ allErrors: true, strict: false, logger: false });
}
