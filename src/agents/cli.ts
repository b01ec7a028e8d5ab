import { parseArgs } from 'node:util';
import { ZodError } from 'zod';
import { noMoreArguments, UsageError } from '../cli-usage.ts';
import { ConfigError, loadConfig } from '../config/env.ts';
import { openDatabase } from '../hub.ts';
import { commandLogger } from '../logger.ts';
import { deleteAgent, findAgentByEmail, getAgent, listAgents } from '../store/agents.ts';
import { migrate } from '../store/migrate.ts';
import { createAgent, DuplicateEmailError, NewAgentSchema } from './accounts.ts';

export const AGENT_USAGE = `  agent add --name N --email E [--role agent|supervisor|admin]
            [--bots a,b] [--queues q1,q2] [--capacity 5]   create an agent; prints its id and token
            (the password: AGENT_PASSWORD, else stdin's first line; --password P puts it in ps and history)
  agent list [--json]                          every agent
  agent remove <id|email>                      delete an agent (its conversations go back to the bot)`;

const list = (s: string | undefined) =>
  s === undefined
    ? undefined
    : s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);

const AGENT_ACTIONS = ['add', 'list', 'remove'];
/** More than any password takes (MAX_PASSWORD_LENGTH): a stdin that is a file is not read whole. */
const PASSWORD_READ_LIMIT = 4096;

/** The first line of `input` (without its line end): read until a newline or its end. */
async function firstLine(input: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of input) {
    text += chunk.toString();
    if (text.includes('\n') || text.length > PASSWORD_READ_LIMIT) break;
  }
  return text.split('\n')[0]!.replace(/\r$/, '');
}

/**
 * The new agent's password, kept off the command line where it can be: `--password` when given,
 * else AGENT_PASSWORD, else the first line of stdin when it is not a terminal (a pipe, a file).
 */
async function newAgentPassword(
  option: string | undefined,
  env: NodeJS.ProcessEnv,
  stdin: NodeJS.ReadStream,
): Promise<string> {
  const password = option ?? (env.AGENT_PASSWORD || (stdin.isTTY ? '' : await firstLine(stdin)));
  if (!password)
    throw new UsageError(
      'agent add needs a password: set AGENT_PASSWORD, or write it to its stdin (--password P works too, but stays in the shell history)',
    );
  return password;
}

/** `switchboard agent add|list|remove`: agent accounts, straight in the database. */
export async function runAgentCommand(args: string[]): Promise<number> {
  const [action = '', ...rest] = args;
  if (!AGENT_ACTIONS.includes(action))
    throw new UsageError(
      `${action ? `unknown action "agent ${action}"` : 'agent needs an action'}: use add, list or remove`,
    );
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      name: { type: 'string' },
      email: { type: 'string' },
      password: { type: 'string' },
      role: { type: 'string' },
      bots: { type: 'string' },
      queues: { type: 'string' },
      capacity: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (action === 'remove') {
    if (!positionals[0]) throw new UsageError('agent remove takes the agent id or e-mail address');
    noMoreArguments('agent remove', positionals.slice(1));
  } else {
    noMoreArguments(`agent ${action}`, positionals);
  }
  if (action === 'add')
    for (const required of ['name', 'email'] as const)
      if (values[required] === undefined) throw new UsageError(`agent add needs --${required}`);
  const password =
    action === 'add' ? await newAgentPassword(values.password, process.env, process.stdin) : undefined;
  const config = loadConfig();
  const logger = commandLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const db = await openDatabase(config, logger);
  try {
    await migrate(db, logger);
    if (action === 'add') {
      let input: ReturnType<typeof NewAgentSchema.parse>;
      try {
        input = NewAgentSchema.parse({
          name: values.name,
          email: values.email,
          password,
          ...(values.role ? { role: values.role } : {}),
          ...(values.bots !== undefined ? { bots: list(values.bots) } : {}),
          ...(values.queues !== undefined ? { queues: list(values.queues) } : {}),
          ...(values.capacity !== undefined ? { capacity: Number(values.capacity) } : {}),
        });
      } catch (err) {
        if (err instanceof ZodError)
          throw new ConfigError(
            `agent add: ${err.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`,
          );
        throw err;
      }
      try {
        const { agent, token } = await createAgent(db, input);
        process.stdout.write(
          values.json
            ? `${JSON.stringify({ agent_id: agent.id, token })}\n`
            : `agent_id\t${agent.id}\ntoken\t${token}\n`,
        );
        return 0;
      } catch (err) {
        if (err instanceof DuplicateEmailError) throw new ConfigError(err.message);
        throw err;
      }
    }
    if (action === 'list') {
      const agents = await listAgents(db);
      if (values.json) process.stdout.write(`${JSON.stringify(agents, null, 2)}\n`);
      else
        for (const a of agents)
          process.stdout.write(
            `${[a.id, a.email, a.name, a.role, a.bots.join(','), a.queues.join(','), a.capacity, a.status].join('\t')}\n`,
          );
      return 0;
    }
    if (action === 'remove') {
      const key = positionals[0]!;
      const agent = /^[0-9a-f-]{36}$/i.test(key) ? await getAgent(db, key) : await findAgentByEmail(db, key);
      if (!agent) {
        process.stderr.write(`no agent "${key}"\n`);
        return 1;
      }
      // Their open conversations end with the agent (the FK sets agent_id null); the bot takes over
      // at the person's next message through the engine's check of the handoff's state.
      await db.query(
        `UPDATE handoffs SET state = 'ended', ended_at = now(), end_reason = 'agent_offline'
         WHERE agent_id = $1 AND state = 'assigned'`,
        [agent.id],
      );
      await deleteAgent(db, agent.id);
      process.stdout.write(`removed ${agent.id} (${agent.email})\n`);
      return 0;
    }
    throw new UsageError(`unknown action "agent ${action}": use add, list or remove`);
  } finally {
    await db.close();
  }
}
