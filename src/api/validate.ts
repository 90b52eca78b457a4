import type { z } from 'zod';
import { AgentError } from './errors.js';
import { valueAt } from '../common/value-at.js';

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}


/** Validate a verb's params; on failure throw INVALID_PARAMS naming each bad field and what it got. */
export function parseParams<S extends z.ZodType>(schema: S, params: unknown, verb: string): z.output<S> {
  const result = schema.safeParse(params ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(params)';
    if (issue.code === 'unrecognized_keys') return `unknown parameter(s) ${issue.keys.join(', ')}`;
    return `${field}: ${issue.message} (got ${describe(valueAt(params, issue.path))})`;
  });
  throw new AgentError('INVALID_PARAMS', `${verb}: invalid params: ${problems.join('; ')}`, {
    issues: result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}
